"""Peak memory of `zoo invert` against the number of images: it streams images from disk in batches and writes
each batch's results as it finishes, so peak RSS should not grow with N.

    python benchmarks/invert_memory.py                      # hyperstyle, N = 16 and 128 (a couple of minutes)
    python benchmarks/invert_memory.py --method psp --sizes 16,128,512 --mode both

Each measurement runs in a fresh Python process (peak RSS = that process's ru_maxrss). The inputs are the embedded
domain's test renders upscaled to 256 x 256 PNGs (user photos are larger than the domain resolution; every file is
resized on load). `--mode one-call` measures the pre-streaming behaviour for comparison: all images loaded at once and
inverted in one `invert` call. Prints one JSON line per measurement and a summary table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
mode, method, folder, out = sys.argv[1:5]
t = time.perf_counter()
if mode == "streamed":
    from zoo.cli import main
    try:
        main(["invert", method, folder, "--out", out], standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, exc.code
else:  # the old command: every image loaded, one invert call, everything kept until the end
    from zoo import registry
    from zoo.bench.inputs import load_folder
    dom = registry.get_domain("peeps")
    inv = registry.create_inverter(method)
    images = load_folder(folder, dom.resolution).images
    inv.prepare(dom)
    result = inv.invert(images, dom)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_rss_mb": round(peak_mb, 1), "seconds": round(time.perf_counter() - t, 1)}))
"""


def make_inputs(folder: Path, n: int, size: int) -> None:
    """`n` PNGs of `size` x `size` (the peeps test renders, cycled, upscaled)."""
    import torch
    from PIL import Image

    from zoo import registry

    folder.mkdir(parents=True, exist_ok=True)
    x = registry.get_domain("peeps").images("test", limit=min(n, 64))
    for i in range(n):
        arr = ((x[i % len(x)].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(arr).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"img_{i:05d}.png")


def measure(mode: str, method: str, folder: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, method, str(folder), str(out)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="hyperstyle")
    parser.add_argument("--sizes", default="16,128", help="comma-separated numbers of images")
    parser.add_argument("--image-size", type=int, default=256, help="side of the input PNGs")
    parser.add_argument("--mode", choices=("streamed", "one-call", "both"), default="streamed")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = ["streamed", "one-call"] if args.mode == "both" else [args.mode]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = Path(tmp) / f"in_{n}"
            make_inputs(folder, n, args.image_size)
            for mode in modes:
                t = time.perf_counter()
                row = {"method": args.method, "mode": mode, "n_images": n,
                       **measure(mode, args.method, folder, Path(tmp) / f"out_{mode}_{n}")}
                row["wall_s"] = round(time.perf_counter() - t, 1)
                print(json.dumps(row), flush=True)
                rows.append(row)
    print(f"\n{'mode':10} {'N':>6} {'peak RSS (MB)':>14}")
    for r in rows:
        print(f"{r['mode']:10} {r['n_images']:>6} {r['peak_rss_mb']:>14.1f}")


if __name__ == "__main__":
    main()
