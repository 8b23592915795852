"""LPIPS of the shipped peeps encoders at several evaluation sizes, with paired differences between methods.

The encoders are trained with LPIPS on 64×64 upsamplings of the 32×32 images (CPU budget, see
zoo_encoders/train.py); the board scores LPIPS at 256×256, as the papers do at 1024 px. This shows how much of a
LPIPS gap between two encoders depends on the evaluation size.

Usage::

    python benchmarks/lpips_scale.py                         # 32 test images, sizes 64 128 256, Table-1 pairs
    python benchmarks/lpips_scale.py --limit 64 --sizes 64 256 --pairs restyle_psp:psp
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from paired_differences import verdict  # noqa: E402

from zoo.bench.results import mean_stderr  # noqa: E402

METHODS = ("psp", "e4e", "restyle_psp", "restyle_e4e", "hyperstyle")
PAIRS = ("restyle_psp:psp", "restyle_e4e:e4e", "hyperstyle:psp", "hyperstyle:restyle_psp")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=32, help="test images")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--pairs", nargs="*", default=list(PAIRS), help="a:b pairs (difference a − b)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from zoo.registry import create_inverter, get_domain
    from zoo_metrics.lpips_metric import LPIPS

    torch.set_num_threads(args.threads)
    pairs = [tuple(p.split(":")) for p in args.pairs]
    methods = sorted({m for p in pairs for m in p} | set(METHODS), key=lambda m: (m not in METHODS, m))
    peeps = get_domain("peeps")
    x = peeps.images("test", limit=args.limit)
    metrics = {s: LPIPS(size=s) for s in args.sizes}
    scores: dict[str, dict[int, torch.Tensor]] = {}
    print(f"LPIPS (mean over {len(x)} peeps test images) by evaluation size")
    print("| method | " + " | ".join(f"{s} px" for s in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for name in methods:
        inv = create_inverter(name, options=create_inverter(name).embedded_options())
        with torch.no_grad():
            y = inv.invert(x, peeps).reconstructions.clamp(-1, 1)
            scores[name] = {s: m.score(y, x, peeps).reshape(-1).cpu() for s, m in metrics.items()}
        print(f"| {name} | " + " | ".join(f"{scores[name][s].mean():.4f}" for s in args.sizes) + " |")
    print("\nPaired a − b (mean ± SE, t)")
    for a, b in pairs:
        cells = []
        for s in args.sizes:
            mean, se, _ = mean_stderr((scores[a][s] - scores[b][s]).tolist())
            t, word = verdict(mean, se, higher_is_better=False)
            cells.append(f"{s} px {mean:+.4f} ± {se:.4f} ({word})")
        print(f"{a} − {b}: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
