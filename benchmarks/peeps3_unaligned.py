"""Unaligned inversion on the embedded StyleGAN3 domain peeps3 (issue 16 item 4, stylegan3-editing's recipe): invert
the *aligned* crop of each test image, render the codes with the image's pose (r, tx, ty) through the Fourier input's
user transform, and compare with the *unaligned* render (the ordinary peeps test image) -- the face should come back
where it was. Also reported: the aligned reconstruction vs the aligned crop, the unaligned image vs the aligned crop
(the no-transform baseline: what you would get by ignoring the pose), and, for the same methods, the peeps StyleGAN2
inverting the unaligned renders directly (`--sg2`, the SG2 vs SG3 pairing of the bench: same targets, same order).

Metrics: L2 = the zoo's `l2` metric (MSE of [-1, 1] images resized to 256, pSp/HyperStyle evaluation), ID = the
`id` metric with peeps' identity model (cosine of embeddings, higher is better); mean and std over the images.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/peeps3_unaligned.py --n 16 --methods optim_wplus,pti \
        --quick --sg2
    # encoders, once shipped for peeps3: --methods psp,e4e,restyle_psp

Pose source: `--pose renderer` (default; the renderer's exact pose = `Domain.poses`), `landmarks` (recovered from the
renderer's eye landmarks, zoo_peeps.peeps3_align.landmark_pose) or `scorer` (peeps' pose heads on the unaligned image,
an image-only estimate). Writes `benchmarks/peeps3_unaligned/results.json` and `results.md` (or `--out`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugins"))

import zoo  # noqa: E402
from zoo.registry import create_metric, get_domain  # noqa: E402


def _stats(x: torch.Tensor) -> dict[str, float]:
    return {"mean": round(float(x.mean()), 5), "std": round(float(x.std()) if len(x) > 1 else 0.0, 5)}


def _poses(source: str, dom, n: int) -> torch.Tensor:  # noqa: ANN001
    from zoo_peeps import peeps3_align

    truth = dom.poses("test", n)
    if source == "renderer":
        return truth
    if source == "landmarks":
        return torch.tensor([peeps3_align.landmark_pose(*p) for p in truth.tolist()], dtype=torch.float64)
    return peeps3_align.scorer_pose(dom.unaligned_images("test", n))


def run(methods: list[str], n: int, quick: bool, pose_source: str, sg2: bool, steps: int | None) -> dict:
    dom = get_domain("peeps3")
    aligned, unaligned = dom.images("test", n), dom.unaligned_images("test", n)
    poses = _poses(pose_source, dom, n)
    l2, ident = create_metric("l2"), create_metric("id")

    def scores(pred: torch.Tensor, target: torch.Tensor, domain) -> dict:  # noqa: ANN001
        with torch.no_grad():
            return {"l2": _stats(l2.score(pred.clamp(-1, 1), target, domain)),
                    "id": _stats(ident.score(pred.clamp(-1, 1), target, domain))}

    out: dict = {"n": n, "split": "test", "pose_source": pose_source, "quick": quick, "steps": steps,
                 "baseline: aligned crop vs unaligned render": scores(aligned, unaligned, dom), "methods": {}}
    pose_err = (poses - dom.poses("test", n)).abs()
    out["pose_error"] = {"r_max_deg": round(float(pose_err[:, 0].max()), 4),
                         "t_max_pct": round(float(pose_err[:, 1:].max() * 100), 4)}
    for method in methods:
        opts = {} if steps is None else {"steps": steps, **({"pivot_steps": steps} if method == "pti" else {})}
        inverter = zoo.create_inverter_for(method, dom, opts, quick=quick)
        t0 = time.time()
        inv = inverter.invert(aligned, dom)
        seconds = time.time() - t0
        moved = inv.with_transform(tuple(poses[:, i].float() for i in range(3)))
        out["methods"][method] = {
            "aligned: reconstruction vs aligned crop": scores(inv.reconstructions, aligned, dom),
            "unaligned: reconstruction with the pose vs unaligned render": scores(moved.reconstructions, unaligned,
                                                                                   dom),
            "unaligned without the pose (aligned reconstruction) vs unaligned render": scores(inv.reconstructions,
                                                                                               unaligned, dom),
            "seconds_per_image": round(seconds / n, 2),
            "options": dataclasses.asdict(inverter.options) if dataclasses.is_dataclass(inverter.options) else {}}
        print(method, json.dumps(out["methods"][method]["unaligned: reconstruction with the pose vs unaligned "
                                                          "render"]), flush=True)
        if sg2:
            peeps = get_domain("peeps")
            inv2 = zoo.create_inverter_for(method, peeps, opts, quick=quick).invert(unaligned, peeps)
            out["methods"][method]["peeps StyleGAN2 on the unaligned renders directly"] = scores(
                inv2.reconstructions, unaligned, peeps)
    out["machine"] = f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, CPU"
    out["generator_sha256"] = dom.weights["generator"].sha256
    return out


def to_markdown(res: dict) -> str:
    lines = [f"# peeps3: unaligned inversion ({res['n']} test images, pose: {res['pose_source']}, "
             f"{'quick' if res['quick'] else 'default'} options{'' if res['steps'] is None else ', steps ' + str(res['steps'])})",
             "", f"generator sha256 `{res['generator_sha256'][:12]}`; pose error vs the renderer: r max "
             f"{res['pose_error']['r_max_deg']}°, t max {res['pose_error']['t_max_pct']} %; {res['machine']}.",
             "L2 = MSE of [-1, 1] images at 256 px (lower is better); ID = cosine of peeps identity embeddings "
             "(higher is better); mean ± std over images.", "",
             "| method | comparison | L2 ↓ | ID ↑ |", "|---|---|---|---|"]
    b = res["baseline: aligned crop vs unaligned render"]
    lines.append(f"| – | aligned crop vs unaligned render (no inversion) | {b['l2']['mean']:.4f} ± {b['l2']['std']:.4f} "
                 f"| {b['id']['mean']:.3f} ± {b['id']['std']:.3f} |")
    for m, r in res["methods"].items():
        for k, v in r.items():
            if isinstance(v, dict) and "l2" in v:
                lines.append(f"| {m} | {k} | {v['l2']['mean']:.4f} ± {v['l2']['std']:.4f} | "
                             f"{v['id']['mean']:.3f} ± {v['id']['std']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--methods", default="optim_wplus,pti", help="comma-separated inverters that run on StyleGAN3")
    ap.add_argument("--quick", action="store_true", help="the methods' quick options (zoo bench --quick)")
    ap.add_argument("--steps", type=int, default=None, help="override the optimisation steps (pti: both stages)")
    ap.add_argument("--pose", choices=["renderer", "landmarks", "scorer"], default="renderer")
    ap.add_argument("--sg2", action="store_true", help="also invert the unaligned renders with the peeps StyleGAN2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "peeps3_unaligned")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = run([m.strip() for m in args.methods.split(",") if m.strip()], args.n, args.quick, args.pose, args.sg2,
              args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (args.out / "results.md").write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    main()
