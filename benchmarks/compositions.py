"""Composed methods `refiner@embedder` vs the built-in ones they vary (issue 14): paired per-image comparisons on the
same images, so the image-to-image spread cancels.

Questions (one `zoo bench` run, the pairs below, time per image included as a paired "metric"):

* PTI from an e4e pivot vs from its optimised pivot: `pti@e4e` − `pti`;
* HyperStyle from ReStyle-e4e codes vs from its W-encoder: `hyperstyle@restyle_e4e` − `hyperstyle`;
* W+ optimisation from pSp's codes vs from the mean latent: `optim_wplus@psp` − `optim_wplus`, and how many steps
  each start needs for the same LPIPS (`--steps-grid`: one bench run per step budget, the whole Karras schedule each
  time; the steps the mean-latent start needs to reach the pSp start's LPIPS are interpolated in log-steps).

The embedding of a composition is computed once per image and shared (bench cache `embeddings/`), and per-image
seconds of a composition include its embedding's.

Usage::

    python benchmarks/compositions.py                                  # 32 + 32 images, paper/embedded options
    python benchmarks/compositions.py --quick --limit 3 --no-ood --steps-grid 5,10,20 --out zoo-runs/comp-quick \\
        --md -                                                         # a smoke run (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from paired_differences import paired_table

from zoo.bench import BenchConfig, run_bench

PAIRS = (("pti@e4e", "pti"), ("hyperstyle@restyle_e4e", "hyperstyle"), ("optim_wplus@psp", "optim_wplus"))
STEPS_PAIR = ("optim_wplus@psp", "optim_wplus")
DEFAULT_GRID = (25, 50, 100, 200)


def bench(out: Path, methods: list[str], args: argparse.Namespace, options: dict[str, dict[str, Any]] | None = None,
          metrics: list[str] | None = None, ood: bool | None = None) -> dict[str, Any]:
    """One `zoo bench` run (resumed when `out` holds one), no editing sweep; returns its results dict."""
    cfg = BenchConfig(methods=methods, domains=[args.domain], metrics=metrics, editors=[], limit=args.limit,
                      quick=args.quick, out=str(out), batch_size=args.batch_size, seed=0, device=args.device,
                      ood=not args.no_ood if ood is None else ood, options=options or {}, threads=args.threads,
                      progress=False)
    outcome = run_bench(cfg, log=lambda line: print(line, file=sys.stderr))
    if outcome.failures:
        raise SystemExit(f"Error: {len(outcome.failures)} method run(s) failed: {outcome.failures}")
    return outcome.results


def paired(run: Path, results: dict[str, Any], split: str) -> pd.DataFrame:
    """Paired differences a − b of every PAIRS entry, each metric plus per-image seconds."""
    higher = {m: bool(info.get("higher_is_better")) for m, info in results["metrics"].items()}
    rows = pd.read_json(run / "rows.jsonl", lines=True)
    return paired_table(rows, list(PAIRS), {**higher, "seconds": False}, split)


def latency_table(results: dict[str, Any]) -> pd.DataFrame:
    """Per-image latency at batch size 1 (median after warm-up, IQR) of every method of the run: the time column of
    the leaderboard (unit seconds of batched methods are a batch's time split evenly, so their paired spread is 0)."""
    rows = [{"method": t["method"], "median s": t["latency"].get("median_s"), "IQR s": t["latency"].get("iqr_s"),
             "n": t["latency"].get("n")} for t in results["timing"]]
    return pd.DataFrame(rows).sort_values("method")


def mean_lpips(results: dict[str, Any], method: str, split: str) -> float:
    for a in results["aggregates"]:
        if a["method"] == method and a["split"] == split and a["metric"] == "lpips":
            return float(a["mean"])
    raise SystemExit(f"Error: no lpips aggregate of {method} on {split}")


def steps_to_reach(target: float, curve: list[tuple[int, float]]) -> float | None:
    """The step budget at which `curve` [(steps, lpips)] first reaches `target`, interpolated in log-steps; None
    when it never does within the grid."""
    prev = None
    for steps, value in curve:
        if value <= target:
            if prev is None:
                return float(steps)
            s0, v0 = prev
            f = (v0 - target) / (v0 - value) if v0 != value else 1.0
            return math.exp(math.log(s0) + f * (math.log(steps) - math.log(s0)))
        prev = (steps, value)
    return None


def steps_table(args: argparse.Namespace, grid: list[int]) -> pd.DataFrame:
    """Mean test LPIPS of both W+ starts per step budget, and the mean-latent steps matching each pSp-start LPIPS."""
    comp, base = STEPS_PAIR
    curves: dict[str, list[tuple[int, float]]] = {comp: [], base: []}
    for steps in grid:
        opts = {base: {"steps": steps}, comp: {"optim_wplus.steps": steps}}
        results = bench(Path(args.out) / f"steps-{steps}", [base, comp], args, opts, metrics=["lpips"], ood=False)
        for m, curve in curves.items():
            curve.append((steps, mean_lpips(results, m, "test")))
    rows = []
    for (steps, lp_comp), (_, lp_base) in zip(curves[comp], curves[base]):
        need = steps_to_reach(lp_comp, curves[base])
        rows.append({"steps": steps, f"lpips {comp}": lp_comp, f"lpips {base}": lp_base,
                     f"{base} steps for that lpips": "> grid" if need is None else round(need, 1)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domain", default="peeps")
    ap.add_argument("--limit", type=int, default=32, help="images per split (0 = whole split)")
    ap.add_argument("--quick", action="store_true", help="the methods' quick options (a smoke run)")
    ap.add_argument("--no-ood", action="store_true", help="skip the out-of-domain split")
    ap.add_argument("--out", default="zoo-runs/compositions-peeps", help="run folder (resumed when it exists)")
    ap.add_argument("--steps-grid", default=",".join(map(str, DEFAULT_GRID)),
                    help="W+ optimisation step budgets for steps-to-LPIPS ('' skips it)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--md", default=str(HERE / "board" / "peeps" / "compositions.md"), help="markdown file, or -")
    args = ap.parse_args(argv)
    grid = [int(s) for s in args.steps_grid.split(",") if s.strip()]

    methods = sorted({m for pair in PAIRS for m in pair})
    run = Path(args.out) / "pairs"
    results = bench(run, methods, args)
    splits = ["test"] + ([] if args.no_ood else ["ood"])
    parts = [f"Compositions on `{args.domain}`: {args.limit or 'all'} images per split"
             f"{', quick options' if args.quick else ''}; run `{run}` (`python benchmarks/compositions.py`).\n"]
    for split in splits:
        table = paired(run, results, split)
        parts.append(f"### Paired differences a − b, {split} split (mean ± standard error, t; seconds per image "
                     "include the embedding)\n\n" + table.to_markdown(index=False, floatfmt=".4f") + "\n")
    parts.append("### Time per image at batch size 1 (median after warm-up; compositions include the embedding)\n\n"
                 + latency_table(results).to_markdown(index=False, floatfmt=".4g") + "\n")
    if grid:
        parts.append("### W+ optimisation: from pSp's codes vs from the mean latent (test LPIPS per step budget)\n\n"
                     + steps_table(args, grid).to_markdown(index=False, floatfmt=".4f") + "\n")
    md = "\n".join(parts)
    if args.md == "-":
        print(md)
    else:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(md)
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
