"""`zoo train generator --domain lorelei`: the peeps StyleGAN2 fine-tuned on lorelei renders (Toonify recipe).

Toonify (Pinkney & Adler 2020) transfers a StyleGAN2 to a new style by a short fine-tune that *starts from the source
weights*, so the two generators stay aligned (a W code means "the same face" in both) — the condition ReStyle's
encoder bootstrapping and HyperStyle's domain adaptation rely on (restyle#41; anchors-wave2 §3, §4.5). Here:

* G, D and G_ema start from the peeps training state (`training_state/peeps_generator/state.pt`, sha256-pinned);
  G's mapping network starts from (and stays equal to) the peeps *EMA* mapping: it is frozen (`frozen=("style.",)`),
  so both generators see the same W distribution and share `latent_avg`;
* fresh Adam optimisers, the peeps recipe otherwise (non-saturating loss, lazy R1 gamma 0.2, EMA with ramp-up, style
  mixing 0.9, batch 32, lr 0.002), 1000 steps (anchors §4.5: 1-2k steps = 12-25 CPU-min at 0.75 CPU-s/step).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from zoo.cards import sha256_file
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import load_generator, save_generator
from zoo.training.checkpointing import load_training_state, restoring, rng_state, save_atomic
from zoo.training.stylegan2_gan import GAN_STATE_KEYS, GanConfig, build_models, save_grid, train_gan
from zoo_peeps.generator_training import PEEPS_GAN, RESOLUTION

FROZEN = ("style.",)  # the mapping network: shared with peeps
LORELEI_GAN = GanConfig(**{**PEEPS_GAN.__dict__, "max_steps": 1000, "seed": 1, "checkpoint_every": 50,
                           "sample_every": 250})


def source_state_path() -> Path:
    """The sha256-verified peeps training state (CheckpointError naming it when missing or altered)."""
    from zoo_peeps.domain import TRAINING_STATE

    return TRAINING_STATE.resolve()


def init_from_source(out: Path, cfg: GanConfig = LORELEI_GAN, source: Path | None = None) -> None:
    """Write `out/state.pt` at step 0 from the peeps state: G (mapping replaced by the EMA mapping), D, G_ema, fresh
    optimisers over the trainable parameters, empty log. No-op when `out/state.pt` exists (resume)."""
    if (out / "state.pt").exists():
        return
    src_path = source or source_state_path()
    st = load_training_state(src_path, GAN_STATE_KEYS, "the peeps generator")
    torch.manual_seed(cfg.seed)
    g, d, g_ema = build_models(cfg)
    with restoring(src_path, "the peeps generator"):
        g.load_state_dict(st["g"]); d.load_state_dict(st["d"]); g_ema.load_state_dict(st["g_ema"])
    g.style.load_state_dict(g_ema.style.state_dict())
    ratio = cfg.d_reg_every / (cfg.d_reg_every + 1)
    g_optim = torch.optim.Adam([p for k, p in g.named_parameters() if not k.startswith(FROZEN)], lr=cfg.lr,
                               betas=(0.0, 0.99))
    d_optim = torch.optim.Adam(d.parameters(), lr=cfg.lr * ratio, betas=(0.0, 0.99**ratio))
    out.mkdir(parents=True, exist_ok=True)
    save_atomic({"config": json.loads(json.dumps(asdict(cfg))), "g": g.state_dict(), "d": d.state_dict(),
                 "g_ema": g_ema.state_dict(), "g_optim": g_optim.state_dict(), "d_optim": d_optim.state_dict(),
                 "step": 0, "wall_seconds": 0.0, "log": [], "rng": rng_state(),
                 "source": {"path": str(src_path), "sha256": sha256_file(src_path), "step": int(st["step"])}},
                out / "state.pt")


def export_generator(run_dir: Path, dest: Path) -> dict:
    """Write the EMA generator of `run_dir/state.pt` (fp16, rosinality layout) with the peeps mapping and the peeps
    `latent_avg` (shared by construction; the EMA mapping's largest difference from the shipped fp16 peeps mapping,
    relative to each tensor's largest magnitude, is reported: fp16 rounding and EMA arithmetic only)."""
    from zoo_peeps.domain import PeepsDomain

    st = load_training_state(run_dir / "state.pt", GAN_STATE_KEYS, "the lorelei generator")
    peeps = load_generator(PeepsDomain().weights["generator"].resolve())
    with restoring(run_dir / "state.pt", "the lorelei generator"):
        cfg = GanConfig(**{**st["config"], "channels": {int(k): v for k, v in st["config"]["channels"].items()}})
        g = Generator(cfg.size, cfg.style_dim, cfg.n_mlp, channels=cfg.channels)
        g.load_state_dict(st["g_ema"])
    drift = max(float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)) for a, b in
                zip(g.style.state_dict().values(), peeps.generator.style.state_dict().values()))
    g.style.load_state_dict(peeps.generator.style.state_dict())
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_generator(dest, g, peeps.latent_avg, half=True,
                   extra={"training": {"step": st["step"], "wall_seconds": st["wall_seconds"],
                                       "source": "peeps generator (zoo_peeps)"}})
    return {"step": int(st["step"]), "wall_seconds": float(st["wall_seconds"]), "sha256": sha256_file(dest),
            "mapping_drift_before_copy": drift}


def run(out: Path, max_minutes: float | None, max_steps: int | None, device: str = "cpu") -> dict:
    """Fine-tune / resume the lorelei generator in `out` (state.pt, samples/, generator.pt)."""
    from .dataset import load_split

    cfg = LORELEI_GAN if max_steps is None else GanConfig(**{**LORELEI_GAN.__dict__, "max_steps": max_steps})
    init_from_source(out, cfg)
    data = load_split("train", RESOLUTION)
    (out / "config.json").write_text(json.dumps({**cfg.__dict__, "frozen": FROZEN}, indent=2, default=str))
    t0 = time.time()
    summary = train_gan(data.images, out, cfg, device=device, max_minutes=max_minutes, frozen=FROZEN)
    summary["export"] = export_generator(out, out / "generator.pt")
    summary["call_seconds"] = time.time() - t0
    return summary


def install_generator(run_dir: Path, docs_dir: Path | None = None) -> dict:
    """Export into the package weights, write samples (peeps vs lorelei from the same z), KID on lorelei identity
    features vs the render floor, the model card and the sha256 (needs the lorelei identity model)."""
    from zoo_peeps.domain import PeepsDomain
    from zoo_peeps.quality import quality_report, sample

    from .dataset import load_split
    from .domain import WEIGHTS_DIR, LoreleiDomain
    from .export import register_weights

    dest = WEIGHTS_DIR / "generator.pt"
    info = export_generator(run_dir, dest)
    g = load_generator(dest).generator
    docs_dir = docs_dir or Path(__file__).resolve().parents[2] / "docs" / "images"
    docs_dir.mkdir(parents=True, exist_ok=True)
    pg = PeepsDomain().generator().generator
    pairs = torch.stack([sample(pg, 16, seed=2024), sample(g, 16, seed=2024)], 1).reshape(32, 3, 32, 32)
    save_grid(pairs, docs_dir / "lorelei_vs_peeps_samples.png", nrow=8)
    domain = LoreleiDomain()
    quality = quality_report(g, domain.identity_model(), load_split("test", RESOLUTION).to_tensor(),
                             load_split("train", RESOLUTION, limit=1200).to_tensor())
    quality_src = quality_report(pg, domain.identity_model(), load_split("test", RESOLUTION).to_tensor(),
                                 load_split("train", RESOLUTION, limit=1200).to_tensor())
    st = load_training_state(run_dir / "state.pt", GAN_STATE_KEYS, "the lorelei generator")
    card = {
        "model": f"StyleGAN2 (rosinality layout) {RESOLUTION}x{RESOLUTION}, the peeps architecture; EMA, fp16",
        "recipe": "Toonify-style fine-tune of the peeps generator (G, D, G_ema from training_state/peeps_generator, "
                  "sha256-pinned), mapping network frozen and equal to the peeps EMA mapping (latent_avg shared), "
                  f"fresh Adam lr {LORELEI_GAN.lr} betas (0, 0.99), batch {LORELEI_GAN.batch}, lazy R1 gamma "
                  f"{LORELEI_GAN.resolved_r1():.2f}, EMA with ramp-up, style mixing 0.9; no layer swapping",
        "data": "lorelei train split: identity seeds 0..2999 x 8 variations (the peeps seeds), 32x32",
        "steps": info["step"], "images seen": info["step"] * LORELEI_GAN.batch,
        "wall time (s)": round(info["wall_seconds"], 1), "seed": LORELEI_GAN.seed,
        "mapping: max relative difference of the EMA mapping from the shipped peeps one before the exact copy":
            f"{info['mapping_drift_before_copy']:.1e} (fp16 storage rounding)",
        "quality (lorelei identity-embedder features; KID x1e3 vs the 1200 lorelei test renders)": quality,
        "same measure for the unchanged peeps generator (domain gap)": {k: quality_src[k] for k in ("kid_x1e3",)},
        "resume": "./run zoo train generator --domain lorelei --out RUN_DIR --install (RUN_DIR/state.pt resumes; "
                  "the run directory is not shipped)",
        "training log (last)": st["log"][-1] if st["log"] else {},
    }
    entry = register_weights("generator", dest, command="zoo train generator --domain lorelei --install", card=card)
    (WEIGHTS_DIR / "generator_quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return {"weights": entry, "quality": quality, "peeps_generator_quality": quality_src, **info}


if __name__ == "__main__":  # python -m zoo_lorelei.generator_training OUT [MINUTES] [STEPS]
    import os
    import sys

    torch.set_num_threads(int(os.environ.get("ZOO_THREADS", "2")))
    res = run(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None,
              int(sys.argv[3]) if len(sys.argv) > 3 else None)
    print(json.dumps(res, indent=2, default=str))
