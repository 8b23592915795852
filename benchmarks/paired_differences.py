"""Paired per-image differences between methods of a `zoo bench` run (same images, so the image-to-image spread
cancels): mean difference ± standard error and t for each metric, with "better"/"worse" in the metric's direction.

The default pairs are the orderings the HyperStyle paper's Table 1 reports (ReStyle vs its base, pSp vs e4e,
HyperStyle vs every pure encoder and vs PTI).

Usage::

    python benchmarks/paired_differences.py zoo-runs/board-peeps                 # writes benchmarks/board/peeps/paired.md
    python benchmarks/paired_differences.py RUN --pairs restyle_psp:psp --split ood --out -
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from zoo.bench.results import mean_stderr

HERE = Path(__file__).resolve().parent
PAIRS = ("restyle_psp:psp", "restyle_e4e:e4e", "psp:e4e", "hyperstyle:psp", "hyperstyle:e4e",
         "hyperstyle:restyle_psp", "hyperstyle:restyle_e4e", "hyperstyle:pti")


class MissingMethod(ValueError):
    pass


def verdict(mean: float | None, se: float | None, higher_is_better: bool) -> tuple[float | None, str]:
    """(t, 'better' / 'worse' for a, or 'tie (abs t < 2)')."""
    t = mean / se if mean is not None and se else None
    if t is None or abs(t) < 2:
        return t, "tie (abs t < 2)"
    return t, "better" if (t > 0) == higher_is_better else "worse"


def paired_table(rows: pd.DataFrame, pairs: list[tuple[str, str]], higher_is_better: dict[str, bool],
                 split: str) -> pd.DataFrame:
    """One row per (pair, metric): n, mean(a − b), its standard error, t and the verdict for a."""
    rec = rows[(rows["kind"] == "reconstruction") & (rows["split"] == split)]
    out = []
    for a, b in pairs:
        ra, rb = rec[rec["method"] == a].set_index("index"), rec[rec["method"] == b].set_index("index")
        if ra.empty or rb.empty:
            raise MissingMethod(f"no {split} reconstructions of '{a if ra.empty else b}' in this run")
        for metric, higher in higher_is_better.items():
            if metric not in ra or metric not in rb:
                continue
            mean, se, n = mean_stderr(ra[metric] - rb[metric])
            t, word = verdict(mean, se, higher)
            out.append({"a": a, "b": b, "metric": metric, "n": n, "mean a−b": mean, "se": se, "t": t, "a is": word})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a zoo bench run folder (rows.jsonl + results.json)")
    ap.add_argument("--pairs", nargs="*", default=list(PAIRS), help="a:b pairs (difference a − b)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=str(HERE / "board" / "peeps" / "paired.md"), help="markdown file, or - ")
    args = ap.parse_args(argv)
    if not (args.run / "rows.jsonl").is_file() or not (args.run / "results.json").is_file():
        print(f"Error: {args.run} is not a zoo bench run folder (no rows.jsonl / results.json)", file=sys.stderr)
        return 1
    pairs = []
    for p in args.pairs:
        if p.count(":") != 1:
            print(f"Error: pair '{p}' is not METHOD:METHOD", file=sys.stderr)
            return 2
        pairs.append(tuple(p.split(":")))
    results = json.loads((args.run / "results.json").read_text())
    higher = {m: bool(info.get("higher_is_better")) for m, info in results.get("metrics", {}).items()}
    rows = pd.read_json(args.run / "rows.jsonl", lines=True)
    try:
        table = paired_table(rows, pairs, higher, args.split)
    except MissingMethod as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    md = (f"Paired per-image differences, {args.split} split of `{args.run.name}` (mean of a − b ± standard error; "
          f"`python benchmarks/paired_differences.py`)\n\n"
          + table.to_markdown(index=False, floatfmt=".4f") + "\n")
    if args.out == "-":
        print(md)
    else:
        Path(args.out).write_text(md)
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
