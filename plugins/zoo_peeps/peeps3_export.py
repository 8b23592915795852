"""Finalise the peeps3 StyleGAN3 (issue 16 item 5): ship the generator of a finished run with its model card, KID on
identity features vs the render floor, README images, and InterFaceGAN + StyleSpace directions with their card.

    nice -n 10 .venv/bin/python -m zoo_peeps.peeps3_export training_state/peeps3_generator [--threads 2]

Steps (everything lands in `plugins/zoo_peeps/weights3/`, sha256 + card per file in its manifest.json):

1. generator: the EMA generator of `RUN/state.pt` (`generator3_training.export_generator3`, float32, zoo StyleGAN3
   format) -> `weights3/generator.pt`; `docs/peeps3_samples.png` (64 samples, psi 1) and `docs/peeps3_pose_sweep.png`
   (rows = samples, the same w rendered with r = -10, -5, 0, 5, 10 degrees, then tx = -0.06, +0.06, ty = -0.06,
   +0.06 through the user transform); quality as peeps' (`quality.quality_report`: KID x1e3 on peeps identity-
   embedder features of 2000 samples vs the 1200 aligned test renders, and the render floor = KID of the first 1200
   aligned train renders vs the same test renders) -> `weights3/generator_quality.json` and the card.
2. directions (InterFaceGAN, Shen et al. 2020; StyleSpace, Wu et al. 2021), as peeps' `directions.py` but labelled by
   peeps' attribute scorers directly (the generator is aligned, so no pseudo-alignment `w[:, 0] = w_avg` trick of
   stylegan3-editing is needed, anchors-wave2 §2.4): `N_SAMPLES` mapped z (psi 1) scored; per attribute the official
   `train_boundary` (top / bottom ratio, 70 / 30 split, linear SVM; held-out accuracy in the card) for each of
   `RATIOS`, the one whose +-3 edits move the scorer most on `SELECT_SAMPLES` other samples kept; unit normal x std
   of the projection (step 1 = one std of W). StyleSpace: the official signal-to-noise channel detection on the
   1000 best-scoring samples (ToRGB excluded), top `CHANNEL_CANDIDATES` checked by the same edit test, best kept.
   Edited regions: the renderer's on/off pixel difference with the pose zeroed (aligned frame).
   Note: the scorers that label the samples are the ones the bench measures edits with (peeps used a separate
   reconstruction-trained labeller); the card says so.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import save_file

from zoo.training.stylegan2_gan import save_grid

from .models import ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
COMMAND = "nice -n 10 .venv/bin/python -m zoo_peeps.peeps3_export training_state/peeps3_generator"
N_SAMPLES = 10_000
SEED = 11
RATIOS = (0.02, 0.1, 0.25)
SPLIT = 0.7
POSITIVE_BANK = 1000
CHANNEL_CANDIDATES = 3
STYLESPACE_SCALE = 5.0
SELECT_SAMPLES = 64
SELECT_SEED = 12
REGION_PAIRS = 128
REGION_LEVEL = 0.25
SWEEP_R = (-10.0, -5.0, 0.0, 5.0, 10.0)
SWEEP_T = (-0.06, 0.06)


@torch.no_grad()
def pose_sweep(g: torch.nn.Module, path: Path, n: int = 6, seed: int = 7) -> list[tuple[float, float, float]]:
    """PNG grid: row i = sample i (z from `seed`, psi 1), columns = the same w rendered with the poses returned
    ((r, 0, 0) for r in SWEEP_R, then (0, tx, 0), (0, 0, ty) for tx, ty in SWEEP_T)."""
    z = torch.randn(n, g.z_dim, generator=torch.Generator().manual_seed(seed)).to(g.device)
    w = g.style(z)
    poses = [(r, 0.0, 0.0) for r in SWEEP_R] + [(0.0, t, 0.0) for t in SWEEP_T] + [(0.0, 0.0, t) for t in SWEEP_T]
    cols = [g.synthesis(w, transform=p).clamp(-1, 1).cpu() for p in poses]
    save_grid(torch.stack(cols, 1).reshape(n * len(poses), *cols[0].shape[1:]), path, nrow=len(poses))
    return poses


def ship_generator(run_dir: Path, weights_dir: Path, docs_dir: Path = DOCS) -> dict:
    """Step 1 of the module doc. Returns {weights entry, quality, step, wall_seconds}."""
    from zoo.stylegan3.checkpoints import load_generator
    from zoo.training.checkpointing import load_training_state
    from zoo.training.stylegan3_gan import GAN3_STATE_KEYS

    from .dataset import images_to_tensor
    from .domain import PeepsDomain
    from .export import register_weights
    from .generator3_training import PEEPS3_GAN, RESOLUTION, export_generator3
    from .peeps3_data import load_aligned_split
    from .quality import quality_report, sample

    t0 = time.time()
    dest = weights_dir / "generator.pt"
    info = export_generator3(run_dir, dest)
    g = load_generator(dest).generator
    n_params = sum(p.numel() for p in g.parameters())
    docs_dir.mkdir(parents=True, exist_ok=True)
    save_grid(sample(g, 64, seed=2024), docs_dir / "peeps3_samples.png")
    pose_sweep(g, docs_dir / "peeps3_pose_sweep.png")
    renders = images_to_tensor(load_aligned_split("test", RESOLUTION, workers=2)[0])
    reference = images_to_tensor(load_aligned_split("train", RESOLUTION, limit=1200)[0])
    quality = quality_report(g, PeepsDomain().identity_model(), renders, reference)
    st = load_training_state(run_dir / "state.pt", GAN3_STATE_KEYS, "the StyleGAN3 generator")
    cfg = PEEPS3_GAN
    card = {
        "model": f"StyleGAN3-T {RESOLUTION}x{RESOLUTION} (zoo.stylegan3, NVlabs parameter names): "
                 f"{json.dumps(cfg.generator)}; {n_params:,} parameters; EMA generator, float32 storage; "
                 f"n_latent {g.n_latent} (ws[:, 0] drives the Fourier input)",
        "recipe": f"zoo.training.stylegan3_gan (plugins/zoo_peeps/generator3_training.py PEEPS3_GAN): batch "
                  f"{cfg.batch}, G lr {cfg.g_lr}, D lr {cfg.d_lr}, R1 gamma {cfg.r1} every {cfg.d_reg_every} steps, "
                  f"EMA ramp-up {cfg.ema_rampup}; D = the project's StyleGAN2 discriminator {cfg.d_channels}",
        "data": "peeps3 aligned train renders (peeps train split with the pose zeroed): 3000 identities x 8 "
                "variations, 32x32",
        "train command": "ZOO_THREADS=2 nice -n 10 .venv/bin/python -m zoo_peeps.generator3_training "
                         "training_state/peeps3_generator MINUTES (resumes from state.pt)",
        "steps": info["step"], "max_steps": cfg.max_steps, "images seen": info["step"] * cfg.batch,
        "wall time (s)": round(info["wall_seconds"], 1), "seed": cfg.seed,
        "quality (peeps identity-embedder features; KID x1e3 vs the 1200 aligned test renders; floor = 1200 aligned "
        "train renders vs the same)": quality,
        "training log (last)": st["log"][-1] if st["log"] else {},
        "README images": "docs/peeps3_samples.png (psi 1), docs/peeps3_pose_sweep.png (user transform sweep)",
        "finalised in (s)": round(time.time() - t0, 1),
    }
    entry = register_weights("generator", dest, command=COMMAND, card=card, weights_dir=weights_dir,
                             domain="peeps3")
    (weights_dir / "generator_quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return {"weights": entry, "quality": quality, **info, "params": n_params}


# ------------------------------------------------------------------------------------------------------ directions
def aligned_edit_regions(size: int, pairs: int = REGION_PAIRS, level: float = REGION_LEVEL, seed: int = 0,
                         first_seed: int = 2_000_000) -> dict[str, torch.Tensor]:
    """As `directions.edit_regions` but in the aligned frame (pose zeroed): per binary attribute a 0/1 mask
    [size, size] of the pixels where toggling it changes the render (mean over `pairs` identities >= `level` x
    max)."""
    from . import avatars
    from .directions import _toggle

    rng = np.random.default_rng(seed)
    out = {}
    for attr in ATTRIBUTES:
        acc = np.zeros((size, size))
        for i in range(pairs):
            ident = avatars.sample_identity(first_seed + i)
            base = replace(avatars.sample_attributes(first_seed + i, 0), rotation_deg=0.0, tx=0.0, ty=0.0)
            on, off = _toggle(attr, base, rng)
            a = avatars.render(ident, on, size).astype(np.float64)
            b = avatars.render(ident, off, size).astype(np.float64)
            acc += np.abs(a - b).mean(-1) / 127.5
        acc /= pairs
        out[attr] = torch.from_numpy(acc >= level * acc.max()).float()
    return out


def cached_edit_regions(size: int, pairs: int = REGION_PAIRS) -> dict[str, torch.Tensor]:
    """`aligned_edit_regions` cached in `<zoo cache>/peeps3/v1/regions_{size}_{pairs}_{level}.pt` (renderer-only,
    independent of the generator; weights-only tensors)."""
    from .dataset import cache_root

    path = cache_root() / "peeps3" / "v1" / f"regions_{size}_{pairs}_{REGION_LEVEL}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    regions = aligned_edit_regions(size, pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(regions, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return regions


@torch.no_grad()
def scored_samples(g: torch.nn.Module, scorer: torch.nn.Module, n: int, seed: int, batch: int = 500) -> dict:
    """{"w": [n, w_dim], "scores": {attribute: [n]}} of n mapped z (psi 1) rendered aligned and scored."""
    z = torch.randn(n, g.z_dim, generator=torch.Generator().manual_seed(seed))
    ws, scores = [], []
    for i in range(0, n, batch):
        w = g.style(z[i : i + batch].to(g.device))
        ws.append(w.cpu())
        out = scorer(g.synthesis(w).clamp(-1, 1))
        scores.append({k: v.cpu() for k, v in out.items()})
    return {"w": torch.cat(ws), "scores": {k: torch.cat([s[k] for s in scores]) for k in scores[0]}}


def fit_directions3(g: torch.nn.Module, scorer: torch.nn.Module, samples: dict
                    ) -> tuple[dict[str, torch.Tensor], dict[str, dict], dict[str, dict]]:
    """InterFaceGAN boundaries (ratio chosen by the edit test) and StyleSpace channels of the labelled samples ->
    (directions {attribute: [w_dim]}, boundary reports, StyleSpace reports)."""
    from zoo_editors.fitting import step_unit, train_boundary

    from .directions import edit_effect, pick_stylespace_channels

    shim = SimpleNamespace(generator=lambda: SimpleNamespace(generator=g))
    w_sel = g.style(torch.randn(SELECT_SAMPLES, g.z_dim, generator=torch.Generator().manual_seed(SELECT_SEED)))
    w = samples["w"].float()
    dirs, report = {}, {}
    for name in ATTRIBUTES:
        fits = {}
        for ratio in RATIOS:
            b = train_boundary(w, samples["scores"][name].float(), ratio=ratio, split=SPLIT)
            unit = step_unit(w, b.normal)
            fits[ratio] = (b, unit, edit_effect(shim, scorer, name, w_sel, direction=b.normal * unit))
        ratio = max(fits, key=lambda r: fits[r][2])
        b, unit, _ = fits[ratio]
        dirs[name] = (b.normal * unit).contiguous()
        report[name] = {**b.report, "ratio": ratio, "step_unit_w_norm": round(unit, 4),
                        "scorer_effect_at_3 per ratio": {str(r): round(v[2], 4) for r, v in fits.items()}}
    stylespace = pick_stylespace_channels(
        g, w, samples["scores"], lambda name, channel: edit_effect(shim, scorer, name, w_sel, channel=channel),
        effect_key="scorer_effect_at_3", candidates=CHANNEL_CANDIDATES)
    return dirs, report, stylespace


def ship_directions(weights_dir: Path) -> dict:
    """Step 2 of the module doc, on the generator registered in `weights_dir`."""
    from zoo.cards import sha256_file
    from zoo.stylegan3.checkpoints import load_generator

    from .domain import PeepsDomain
    from .export import register_weights

    times: dict[str, float] = {}
    t0 = time.time()
    g_path = weights_dir / "generator.pt"
    g = load_generator(g_path).generator.eval()
    for p in g.parameters():
        p.requires_grad_(False)
    scorer = PeepsDomain().attribute_model()
    samples = scored_samples(g, scorer, N_SAMPLES, SEED)
    times["samples"] = round(time.time() - t0, 1)
    t0 = time.time()
    dirs, report, stylespace = fit_directions3(g, scorer, samples)
    times["fit"] = round(time.time() - t0, 1)
    t0 = time.time()
    regions = cached_edit_regions(g.img_resolution)
    times["regions"] = round(time.time() - t0, 1)
    units = ("each direction = unit normal x std of <w, n> over the samples: step 1 = one standard deviation of W "
             "along it (GANSpace's unit); edits add it to every W+ code (the official editors)")
    tensors = {**dirs, **{f"region/{k}": v.contiguous() for k, v in regions.items()}}
    path = weights_dir / "directions.safetensors"
    save_file(tensors, str(path), metadata={"fit": json.dumps(report), "units": units,
                                            "stylespace": json.dumps({k: v["channel"] for k, v in stylespace.items()}),
                                            "generator_sha256": sha256_file(g_path)})
    card = {"method": "InterFaceGAN (Shen et al. 2020) boundaries in W, official train_boundary (top/bottom ratio by "
                      f"score, {SPLIT:.0%} fit / rest held out, linear SVM; ratio from {list(RATIOS)} by the scorer's "
                      f"response to +-3 edits of {SELECT_SAMPLES} other samples); StyleSpace (Wu et al. 2021) "
                      f"channels by the official signal-to-noise detection (bank {POSITIVE_BANK}, top "
                      f"{CHANNEL_CANDIDATES}, sign and channel by the same check, step = {STYLESPACE_SCALE} channel "
                      "stds)",
            "labels": "peeps' attribute scorers (weights/attributes.safetensors) on the aligned samples -- the same "
                      "scorers the bench measures edits with, so a bench edit score on peeps3 is not independent "
                      "of the fit (peeps used a separate reconstruction-trained labeller)",
            "samples": f"{N_SAMPLES} mapped z (psi 1), seed {SEED}, aligned renders (identity transform)",
            "generator": f"weights3/generator.pt sha256 {sha256_file(g_path)}",
            "held-out accuracy (InterFaceGAN val_accuracy)": {k: v["val_accuracy"] for k, v in report.items()},
            "wall time (s)": round(sum(times.values()), 1), "stage wall times (s)": dict(times),
            "fit": {k: json.dumps(v) for k, v in report.items()},
            "stylespace channels": {k: json.dumps(v) for k, v in stylespace.items()},
            "edited regions": {k: f"{int(v.sum())} of {v.numel()} pixels (aligned renders, on/off difference >= "
                                  f"{REGION_LEVEL} x max over {REGION_PAIRS} identities)" for k, v in regions.items()},
            "units": units, "seed": SEED}
    entry = register_weights("directions", path, command=COMMAND, card=card, weights_dir=weights_dir,
                             domain="peeps3")
    return {"weights": entry, "directions": report, "stylespace": stylespace, "seconds": times}


def main(argv: list[str] | None = None) -> dict:
    from .domain3 import WEIGHTS_DIR

    ap = argparse.ArgumentParser(prog="python -m zoo_peeps.peeps3_export", description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path, help="the generator run (its state.pt)")
    ap.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="default: plugins/zoo_peeps/weights3")
    ap.add_argument("--docs-dir", type=Path, default=DOCS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", choices=["generator", "directions"], action="append", default=[])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict = {}
    if "generator" not in args.skip:
        out["generator"] = ship_generator(args.run_dir, args.weights_dir, args.docs_dir)
        print(json.dumps(out["generator"], indent=2, default=str), flush=True)
    if "directions" not in args.skip:
        out["directions"] = ship_directions(args.weights_dir)
        print(json.dumps(out["directions"], indent=2, default=str), flush=True)
    return out


if __name__ == "__main__":
    main()
