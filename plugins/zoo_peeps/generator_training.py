"""`zoo train generator --domain peeps`: the StyleGAN2 recipe of the embedded domain and its export.

Why 32x32: on the reference machine (2 CPU cores, shared with rendering and other jobs) one training step
(batch 32, G + D, one thread) takes ~2.3 s at 32x32 with the channel table below, i.e. ~50k images seen per hour;
64x64 costs about 4x more per image, so within the 4-hour budget it would see ~50k images in total, far too few
for a StyleGAN2 to reach clean samples. 32x32 keeps the faces, accessories and expressions legible (see the
README's sample grid) and keeps every downstream encoder cheap to train.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from zoo.cards import sha256_file
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import save_generator
from zoo.training.checkpointing import load_training_state, restoring
from zoo.training.stylegan2_gan import GAN_STATE_KEYS, GanConfig, load_gan_state, save_grid, train_gan

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

RESOLUTION = 32

PEEPS_GAN = GanConfig(
    size=RESOLUTION,
    style_dim=128,
    n_mlp=4,
    channels={4: 128, 8: 128, 16: 64, 32: 32},
    batch=32,
    lr=0.002,
    r1=0.2,  # the ADA 'auto' gamma (0.0064 here) let D win outright within 300 steps (d loss 0.006, g 8.5)
    max_steps=30_000,
    seed=0,
    checkpoint_every=100,
    sample_every=500,
)


def export_generator(run_dir: Path, dest: Path, n_mean: int = 10_000) -> dict:
    """Write the EMA generator of `run_dir/state.pt` as a fp16 rosinality-layout file with latent_avg.

    Raises CheckpointError naming the state file when it is unreadable, foreign or does not fit its config.
    """
    state_path = run_dir / "state.pt"
    st = load_training_state(state_path, GAN_STATE_KEYS, "the generator")
    with restoring(state_path, "the generator"):
        cfg = GanConfig(**{**st["config"], "channels": {int(k): v for k, v in st["config"]["channels"].items()}})
        g = Generator(cfg.size, cfg.style_dim, cfg.n_mlp, channels=cfg.channels)
        g.load_state_dict(st["g_ema"])
    with torch.no_grad():
        z = torch.randn(n_mean, cfg.style_dim, generator=torch.Generator().manual_seed(123))
        latent_avg = g.style(z).mean(0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_generator(dest, g, latent_avg, half=True, extra={"training": {"step": st["step"],
                                                                       "wall_seconds": st["wall_seconds"]}})
    return {"step": st["step"], "wall_seconds": st["wall_seconds"], "sha256": sha256_file(dest)}


def run(out: Path, max_minutes: float | None, max_steps: int | None, device: str = "cpu") -> dict:
    """Train / resume the peeps generator in `out` (state.pt, samples/, generator.pt).

    An existing `out/state.pt` is checked before the data are loaded: CheckpointError / ResumeMismatchError naming it
    when it cannot be resumed (it is left untouched).
    """
    from .dataset import load_split

    cfg = PEEPS_GAN if max_steps is None else GanConfig(**{**PEEPS_GAN.__dict__, "max_steps": max_steps})
    if (out / "state.pt").exists():
        load_gan_state(out / "state.pt", cfg)  # fail fast, before rendering / loading the training split
    data = load_split("train", RESOLUTION)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.__dict__, indent=2, default=str))
    t0 = time.time()
    summary = train_gan(data.images, out, cfg, device=device, max_minutes=max_minutes)
    summary["export"] = export_generator(out, out / "generator.pt")
    summary["call_seconds"] = time.time() - t0
    return summary


def install_generator(run_dir: Path, docs_dir: Path = DOCS_IMAGES) -> dict:
    """Export the EMA generator into the package weights (fp16), write the sample grid and truncation sweep,
    measure KID on identity features and write the model card + sha256 (needs the identity model installed)."""
    from .dataset import load_split
    from .domain import WEIGHTS_DIR, PeepsDomain
    from .export import register_weights
    from .quality import quality_report, sample, truncation_sweep

    dest = WEIGHTS_DIR / "generator.pt"
    info = export_generator(run_dir, dest)
    domain = PeepsDomain()
    loaded = __import__("zoo.stylegan2.checkpoints", fromlist=["load_generator"]).load_generator(dest)
    g = loaded.generator
    docs_dir.mkdir(parents=True, exist_ok=True)
    save_grid(sample(g, 64, seed=2024), docs_dir / "peeps_samples.png")
    truncation_sweep(g, loaded.latent_avg, docs_dir / "peeps_truncation.png")
    renders = load_split("test", RESOLUTION).to_tensor()
    reference = load_split("train", RESOLUTION, limit=1200).to_tensor()
    quality = quality_report(g, domain.identity_model(), renders, reference)
    st = load_training_state(run_dir / "state.pt", GAN_STATE_KEYS, "the generator")
    card = {
        "model": f"StyleGAN2 (rosinality layout) {RESOLUTION}x{RESOLUTION}, style_dim {PEEPS_GAN.style_dim}, "
                 f"n_mlp {PEEPS_GAN.n_mlp}, channels {PEEPS_GAN.channels}; EMA generator, fp16 storage",
        "recipe": "non-saturating logistic loss, lazy R1 (every 16 steps, gamma "
                  f"{PEEPS_GAN.resolved_r1():.4f}), EMA with ramp-up, style mixing 0.9, Adam lr {PEEPS_GAN.lr} "
                  f"betas (0, 0.99), batch {PEEPS_GAN.batch}, no augmentation",
        "data": "peeps train split: 3000 identities x 8 variations, 32x32",
        "steps": info["step"], "images seen": info["step"] * PEEPS_GAN.batch,
        "wall time (s)": round(info["wall_seconds"], 1), "seed": PEEPS_GAN.seed,
        "quality (identity-embedder features; KID x1e3 vs the 1200 test renders)": quality,
        "resume": "./run zoo train generator --domain peeps --out training_state/peeps_generator --install "
                  "(continues from the committed state.pt; optimiser moments stored in bfloat16)",
        "training log (last)": st["log"][-1] if st["log"] else {},
    }
    entry = register_weights("generator", dest, command="zoo train generator --domain peeps --install", card=card)
    (WEIGHTS_DIR / "generator_quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return {"weights": entry, "quality": quality, **info}


if __name__ == "__main__":  # python -m zoo_peeps.generator_training OUT [MINUTES]
    import sys

    torch.set_num_threads(int(__import__("os").environ.get("ZOO_THREADS", "2")))
    res = run(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None, None)
    print(json.dumps(res, indent=2, default=str))
