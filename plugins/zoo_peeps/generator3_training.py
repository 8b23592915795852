"""The StyleGAN3-T of the embedded domain `peeps3`: recipe, (resumable) training run and export.

Size (anchors-wave2 §4.4, §6(a)): 32 px, 4 synthesis layers, <= 64 channels, margin 4, w_dim 128, 2 mapping layers
(the official T mapping depth), 226,823 generator parameters -- the largest SG3 that sees about as many images in 3
CPU-hours as the shipped peeps StyleGAN2 did (research prototype: ~1.9 CPU-s per batch-32 step, ~186k images; this
implementation, measured: ~2.5 CPU-s per step at 1 thread on the loaded 2-core box, so 4300 steps = 138k images).
The discriminator is the project's StyleGAN2 one with the peeps channel table. Data: the *aligned* peeps renders
(pose zeroed, `peeps3_data`), 3000 identities x 8 variations; the pose goes back in through the user transform.

Rebuild (resumes from `OUT/state.pt`; stops after MINUTES of wall time, rerun to continue):

    ZOO_THREADS=2 nice -n 10 .venv/bin/python -m zoo_peeps.generator3_training training_state/peeps3_generator 180

Writes OUT/state.pt (every 100 steps), OUT/samples/*.png, OUT/config.json, OUT/generator.pt (the EMA generator in
zoo's StyleGAN3 format, NVlabs keys; loads with zoo.stylegan3.load_generator / load_any_generator).

Ship it as the `peeps3` domain's weights (plugins/zoo_peeps/weights3/: generator + card with KID vs the render floor,
InterFaceGAN / StyleSpace directions + card, docs/peeps3_samples.png and docs/peeps3_pose_sweep.png):

    nice -n 10 .venv/bin/python -m zoo_peeps.peeps3_export training_state/peeps3_generator --threads 2
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from zoo.cards import sha256_file
from zoo.stylegan3 import Generator
from zoo.stylegan3.checkpoints import save_generator
from zoo.training.checkpointing import load_training_state, restoring
from zoo.training.stylegan3_gan import GAN3_STATE_KEYS, Gan3Config, load_gan3_state, train_gan3

RESOLUTION = 32

PEEPS3_GAN = Gan3Config(
    generator=dict(z_dim=128, c_dim=0, w_dim=128, img_resolution=RESOLUTION, img_channels=3,
                   mapping_kwargs={"num_layers": 2}, channel_base=4096, channel_max=64, num_layers=4,
                   margin_size=4),
    d_channels={4: 128, 8: 128, 16: 64, 32: 32},  # the peeps StyleGAN2 table (generator_training.PEEPS_GAN)
    batch=32,
    g_lr=0.0025,  # official T
    d_lr=0.002,
    r1=0.2,  # as the peeps StyleGAN2 (the ADA 'auto' gamma let D win outright there)
    max_steps=4300,  # 138k images: 3 CPU-hours at the 2.5 CPU-s per step measured here (1 thread, load ~9)
    seed=0,
    checkpoint_every=100,
    sample_every=500,
)


def export_generator3(run_dir: Path, dest: Path) -> dict:
    """Write the EMA generator of `run_dir/state.pt` to `dest` (zoo StyleGAN3 format, float32, NVlabs keys;
    `mapping.w_avg` is the tracked average). Raises CheckpointError naming the state file when unusable."""
    state_path = run_dir / "state.pt"
    st = load_training_state(state_path, GAN3_STATE_KEYS, "the StyleGAN3 generator")
    with restoring(state_path, "the StyleGAN3 generator"):
        cfg = Gan3Config(**{**st["config"], "d_channels": {int(k): v for k, v in st["config"]["d_channels"].items()}})
        g = Generator(**cfg.generator)
        g.load_state_dict(st["g_ema"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_generator(dest, g, extra={"training": {"step": st["step"], "wall_seconds": st["wall_seconds"]}})
    return {"step": st["step"], "wall_seconds": st["wall_seconds"], "sha256": sha256_file(dest)}


def run(out: Path, max_minutes: float | None, max_steps: int | None = None, *, cfg: Gan3Config = PEEPS3_GAN,
        n_ids: int | None = None, workers: int = 1, device: str = "cpu") -> dict:
    """Train / resume the peeps3 generator in `out` (state.pt, samples/, config.json, generator.pt).

    An existing `out/state.pt` is checked before the data are rendered: CheckpointError / ResumeMismatchError naming
    it when it cannot be resumed (left untouched). `n_ids` renders fewer train identities (smoke tests).
    """
    from .peeps3_data import load_aligned_split

    if max_steps is not None:
        cfg = Gan3Config(**{**cfg.__dict__, "max_steps": max_steps})
    if (out / "state.pt").exists():
        load_gan3_state(out / "state.pt", cfg)
    images, _ = load_aligned_split("train", cfg.size, n_ids=n_ids, workers=workers)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
    t0 = time.time()
    summary = train_gan3(images, out, cfg, device=device, max_minutes=max_minutes)
    summary["export"] = export_generator3(out, out / "generator.pt")
    summary["call_seconds"] = time.time() - t0
    return summary


if __name__ == "__main__":  # python -m zoo_peeps.generator3_training OUT [MINUTES]
    import os
    import sys

    torch.set_num_threads(int(os.environ.get("ZOO_THREADS", "2")))
    res = run(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None,
              workers=int(os.environ.get("ZOO_RENDER_WORKERS", "2")))
    print(json.dumps(res, indent=2, default=str))
