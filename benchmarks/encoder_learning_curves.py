"""Learning curves of the peeps encoder runs: the evidence behind the issue-6 ordering (do ReStyle and HyperStyle
beat their bases at equal optimiser steps, and what does the wall-time budget allow?).

Reads the run directories written by `zoo train <method> --out DIR` (their `state.pt` holds the whole training log
and validation history) and writes, next to the published board:

* `learning_curves.csv` — one row per (method, kind, step): kind `train` = mean training L2 / LPIPS of the last
  iteration over the 100 steps ending at `step`; kind `val` = held-out validation (64 train-split images, inference
  path) of the iteration the shipped inverter uses (`val_iter`, ReStyle 5, HyperStyle its embedded n_iters);
* `learning_curves.png` — validation L2 against optimiser steps and against CPU minutes (HyperStyle's minutes
  include its W-encoder's);
* a markdown table on stdout: training L2 at equal steps.

Usage::

    python benchmarks/encoder_learning_curves.py --runs runs/enc          # <runs>/<method>/state.pt
    python benchmarks/encoder_learning_curves.py                          # default run dirs (<cache>/runs/peeps/...)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
METHODS = ("psp", "e4e", "restyle_psp", "restyle_e4e", "w_encoder", "hyperstyle")
EQUAL_STEPS = (500, 1000, 1500, 2000, 3000, 3800)
WINDOW = 100


def shipped_n_iters(method: str) -> int:
    """The iteration count the shipped embedded inverter runs (1 for single-pass encoders)."""
    from zoo import registry

    if method not in registry.list_inverters():
        return 1  # HyperStyle's W-encoder: single pass
    cls = registry.get_inverter_class(method)
    default = getattr(cls.Options(), "n_iters", 1)
    return int(cls.embedded_options().get("n_iters", default))


def run_rows(method: str, run_dir: Path, minutes_offset: float = 0.0) -> list[dict[str, Any]]:
    """Rows of the CSV for one run directory (its state.pt, loaded weights-only)."""
    from zoo.training.checkpointing import load_checkpoint

    state = load_checkpoint(run_dir / "state.pt")
    rows: list[dict[str, Any]] = []
    log = pd.DataFrame([r for r in state["log"] if "l2" in r])
    for end in range(WINDOW, int(log["step"].max()) + 1, WINDOW):
        win = log[(log["step"] > end - WINDOW) & (log["step"] <= end)]
        if len(win):
            rows.append({"method": method, "kind": "train", "step": end,
                         "minutes": round(minutes_offset + float(win["wall"].max()) / 60, 2),
                         "l2": round(float(win["l2"].mean()), 5), "lpips": round(float(win["lpips"].mean()), 5)})
    it = min(shipped_n_iters(method), int(state["recipe"].get("val_iters", 1)))
    for v in state.get("val_history", []):
        per_iter = v["iterations"]  # HyperStyle's list starts with its W-encoder's inversion (iteration 0)
        first = len(per_iter) - int(state["recipe"].get("val_iters", 1)) if len(per_iter) > 1 else 0
        m = per_iter[first + it - 1] if len(per_iter) > 1 else per_iter[0]
        rows.append({"method": method, "kind": "val", "step": v["step"],
                     "minutes": round(minutes_offset + v["wall"] / 60, 2), "val_iter": it if len(per_iter) > 1 else 1,
                     "l2": round(m["l2"], 5), "lpips": round(m["lpips"], 5), "id_sim": round(m["id_sim"], 4)})
    return rows


def equal_steps_table(df: pd.DataFrame) -> str:
    """Training L2 (last iteration, 100-step mean) of each method at the same optimiser steps."""
    train = df[df["kind"] == "train"].pivot(index="method", columns="step", values="l2")
    cols = [s for s in EQUAL_STEPS if s in train.columns]
    table = train[cols].reindex([m for m in METHODS if m in train.index])
    return table.to_markdown(floatfmt=".3f")


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    val = df[df["kind"] == "val"]
    for method, g in val.groupby("method", sort=False):
        for ax, x in zip(axes, ("step", "minutes")):
            ax.plot(g[x], g["l2"], marker="o", ms=3, label=method)
    axes[0].set_xlabel("optimiser steps (batch 8)")
    axes[1].set_xlabel("CPU minutes (1 thread; HyperStyle incl. its W-encoder)")
    axes[0].set_ylabel("validation L2 (32 px, shipped iteration count)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("peeps encoders: validation L2 during training")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=None, help="folder with one run directory per method")
    ap.add_argument("--out", type=Path, default=HERE / "board" / "peeps", help="where to write the CSV and PNG")
    args = ap.parse_args(argv)
    from zoo_encoders.train import default_run_dir

    rows: list[dict[str, Any]] = []
    w_minutes = 0.0
    for method in METHODS:
        run_dir = args.runs / method if args.runs else default_run_dir(method, "peeps")
        if not (run_dir / "state.pt").exists():
            print(f"skipping {method}: no {run_dir / 'state.pt'}", file=sys.stderr)
            continue
        got = run_rows(method, run_dir, w_minutes if method == "hyperstyle" else 0.0)
        if method == "w_encoder":
            w_minutes = max(r["minutes"] for r in got)
        rows += got
    if not rows:
        print("Error: no run directories found; pass --runs DIR (DIR/<method>/state.pt)", file=sys.stderr)
        return 1
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "learning_curves.csv", index=False)
    plot(df, args.out / "learning_curves.png")
    print(equal_steps_table(df))
    last = df[df["kind"] == "val"].groupby("method", sort=False).tail(1)
    print()
    print(last[["method", "step", "minutes", "val_iter", "l2", "lpips", "id_sim"]].to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
