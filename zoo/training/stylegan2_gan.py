"""Adversarial StyleGAN2 training on CPU (rosinality train.py recipe without path-length regularisation):
non-saturating logistic loss, lazy R1 on reals, EMA generator with ramp-up, style-mixing regularisation.

Resumable: `state.pt` in the run directory holds G, D, G_ema, optimisers, step and RNG states; it is rewritten
atomically every `checkpoint_every` steps. Sample grids are written to `samples/` with a fixed z.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import autograd, nn
from tqdm import tqdm

from ..stylegan2 import Generator
from ..stylegan2.discriminator import Discriminator
from .checkpointing import (
    RESTART_HINT,
    ResumeMismatchError,
    StopRequest,
    load_training_state,
    restoring,
    rng_state,
    save_atomic,
    set_rng_state,
)

GAN_STATE_KEYS = ("config", "g", "d", "g_ema", "g_optim", "d_optim", "step", "wall_seconds", "log", "rng")
VOLATILE = ("max_steps", "checkpoint_every", "sample_every")


@dataclass
class GanConfig:
    """Hyper-parameters of a StyleGAN2 run (JSON-serialised into the run directory and the model card)."""

    size: int = 32
    style_dim: int = 128
    n_mlp: int = 4
    channels: dict[int, int] = field(default_factory=lambda: {4: 256, 8: 256, 16: 128, 32: 64, 64: 32})
    batch: int = 16
    lr: float = 0.002
    r1: float | None = None  # None -> StyleGAN2-ADA 'auto' heuristic 0.0002 * size^2 / batch
    d_reg_every: int = 16
    mixing: float = 0.9
    ema_kimg: float | None = None  # None -> batch * 10 / 32 (ADA auto)
    ema_rampup: float = 0.05
    max_steps: int = 20_000
    seed: int = 0
    checkpoint_every: int = 200
    sample_every: int = 500
    n_sample: int = 64

    def resolved_r1(self) -> float:
        return self.r1 if self.r1 is not None else 0.0002 * self.size**2 / self.batch

    def resolved_ema_kimg(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else self.batch * 10 / 32


def _requires_grad(model: nn.Module, flag: bool) -> None:
    for p in model.parameters():
        p.requires_grad_(flag)


@torch.no_grad()
def _accumulate(ema: nn.Module, model: nn.Module, decay: float) -> None:
    ema_params = dict(ema.named_parameters())
    for k, p in model.named_parameters():
        ema_params[k].mul_(decay).add_(p.detach(), alpha=1 - decay)


def _mixing_noise(batch: int, dim: int, prob: float, device: torch.device) -> list[torch.Tensor]:
    if prob > 0 and random.random() < prob:
        return list(torch.randn(2, batch, dim, device=device).unbind(0))
    return [torch.randn(batch, dim, device=device)]


def build_models(cfg: GanConfig) -> tuple[Generator, Discriminator, Generator]:
    ch = {int(k): int(v) for k, v in cfg.channels.items()}
    g = Generator(cfg.size, cfg.style_dim, cfg.n_mlp, channels=ch)
    d = Discriminator(cfg.size, channels=ch)
    g_ema = Generator(cfg.size, cfg.style_dim, cfg.n_mlp, channels=ch)
    g_ema.load_state_dict(g.state_dict())
    g_ema.eval()
    _requires_grad(g_ema, False)
    return g, d, g_ema


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """Save images [N, 3, H, W] in [-1, 1] as a PNG grid."""
    from PIL import Image

    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * h, nrow * w), 255, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, r * h : (r + 1) * h, q * w : (q + 1) * w] = x[i]
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)


def load_gan_state(state_path: str | Path, cfg: GanConfig) -> dict:
    """The `state.pt` of a generator run made with `cfg` (up to its volatile settings), for resuming.

    Raises CheckpointError naming the file (unreadable, foreign or malicious file; see `load_training_state`) and
    ResumeMismatchError (an InputError and ValueError) when the run used another config.
    """
    st = load_training_state(state_path, GAN_STATE_KEYS, "the generator")
    with restoring(state_path, "the generator"):
        same = {k: v for k, v in dict(st["config"]).items() if k not in VOLATILE}
    if same != {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in VOLATILE}:
        raise ResumeMismatchError(f"{state_path} was made with a different config; use a new --out directory "
                                  f"(or {RESTART_HINT})")
    return st


def train_gan(
    images: np.ndarray,
    run_dir: str | Path,
    cfg: GanConfig,
    *,
    device: str = "cpu",
    max_minutes: float | None = None,
    on_checkpoint: Callable[[int, Generator], None] | None = None,
    frozen: tuple[str, ...] = (),
) -> dict:
    """Train (or resume) a StyleGAN2 on `images` uint8 [N, H, W, 3]; returns a summary dict.

    Stops at `cfg.max_steps` or after `max_minutes` of wall time in this call (then saves; rerun to resume).
    `frozen`: name prefixes of G parameters kept fixed (left out of G's optimiser and never given gradients), e.g.
    ("style.",) to keep the mapping network of a fine-tuned generator equal to its source's (Toonify-style transfer).
    Raises CheckpointError / ResumeMismatchError (see `load_gan_state`) when `run_dir/state.pt` cannot be resumed.
    """
    run_dir = Path(run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.pt"
    dev = torch.device(device)
    if images.shape[1] != cfg.size:
        raise ValueError(f"images are {images.shape[1]}px but the config says size={cfg.size}")
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8 [N, 3, H, W]

    random.seed(cfg.seed); np.random.seed(cfg.seed); torch.manual_seed(cfg.seed)  # init; a resume restores RNGs
    g, d, g_ema = build_models(cfg)
    g, d, g_ema = g.to(dev), d.to(dev), g_ema.to(dev)
    ratio = cfg.d_reg_every / (cfg.d_reg_every + 1)
    g_train = [p for k, p in g.named_parameters() if not k.startswith(tuple(frozen))]
    g_optim = torch.optim.Adam(g_train, lr=cfg.lr, betas=(0.0, 0.99))
    d_optim = torch.optim.Adam(d.parameters(), lr=cfg.lr * ratio, betas=(0.0, 0.99**ratio))
    step, wall = 0, 0.0
    log: list[dict] = []
    if state_path.exists():
        st = load_gan_state(state_path, cfg)
        with restoring(state_path, "the generator"):
            g.load_state_dict(st["g"]); d.load_state_dict(st["d"]); g_ema.load_state_dict(st["g_ema"])
            g_optim.load_state_dict(st["g_optim"]); d_optim.load_state_dict(st["d_optim"])
            step, wall, log = int(st["step"]), float(st["wall_seconds"]), list(st["log"])
            set_rng_state(st["rng"])
    sample_z = torch.randn(cfg.n_sample, cfg.style_dim, generator=torch.Generator().manual_seed(cfg.seed + 1)).to(dev)
    r1 = cfg.resolved_r1()
    ema_nimg_full = cfg.resolved_ema_kimg() * 1000

    def save_state() -> None:
        save_atomic({
            "config": json.loads(json.dumps(asdict(cfg))), "g": g.state_dict(), "d": d.state_dict(),
            "g_ema": g_ema.state_dict(), "g_optim": g_optim.state_dict(), "d_optim": d_optim.state_dict(),
            "step": step, "wall_seconds": wall, "log": log, "rng": rng_state(),
        }, state_path)
        if on_checkpoint is not None:
            on_checkpoint(step, g_ema)

    t_call = time.time()
    t_last = time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train generator", unit="step", dynamic_ncols=True)
    stats: dict[str, float] = {}
    with StopRequest() as stop:  # Ctrl-C / SIGTERM: finish the step, save, return
        while step < cfg.max_steps:
            idx = torch.randint(0, data.shape[0], (cfg.batch,))
            real = data[idx].to(dev).float().div_(127.5).sub_(1.0)

            # --- discriminator
            _requires_grad(g, False); _requires_grad(d, True)
            fake, _ = g(_mixing_noise(cfg.batch, cfg.style_dim, cfg.mixing, dev))
            d_loss = F.softplus(d(fake)).mean() + F.softplus(-d(real)).mean()
            d_optim.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optim.step()
            if step % cfg.d_reg_every == 0:
                real.requires_grad_(True)
                real_pred = d(real)
                (grad,) = autograd.grad(real_pred.sum(), real, create_graph=True)
                r1_pen = grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()
                d_optim.zero_grad(set_to_none=True)
                (r1 / 2 * r1_pen * cfg.d_reg_every).backward()
                d_optim.step()
                stats["r1"] = r1_pen.item()

            # --- generator
            _requires_grad(g, True); _requires_grad(d, False)
            for k, p in g.named_parameters():
                if frozen and k.startswith(tuple(frozen)):
                    p.requires_grad_(False)
            fake, _ = g(_mixing_noise(cfg.batch, cfg.style_dim, cfg.mixing, dev))
            g_loss = F.softplus(-d(fake)).mean()
            g_optim.zero_grad(set_to_none=True)
            g_loss.backward()
            g_optim.step()

            # --- EMA with ramp-up (StyleGAN2-ADA)
            nimg = (step + 1) * cfg.batch
            ema_nimg = min(ema_nimg_full, nimg * cfg.ema_rampup) if cfg.ema_rampup else ema_nimg_full
            _accumulate(g_ema, g, 0.5 ** (cfg.batch / max(ema_nimg, 1e-8)))

            step += 1
            now = time.time()
            wall += now - t_last
            t_last = now
            stats.update(d=d_loss.item(), g=g_loss.item())
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
            if step % 50 == 0:
                log.append({"step": step, "wall": round(wall, 1), **{k: round(v, 4) for k, v in stats.items()}})
            if step % cfg.sample_every == 0 or step == cfg.max_steps:
                with torch.no_grad():
                    sample, _ = g_ema([sample_z], randomize_noise=False)
                save_grid(sample, run_dir / "samples" / f"{step:06d}.png")
            out_of_time = (max_minutes is not None and (now - t_call) > max_minutes * 60) or stop.requested
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or out_of_time:
                save_state()
            if out_of_time:
                break
    bar.close()
    return {"step": step, "wall_seconds": wall, "finished": step >= cfg.max_steps, "log_tail": log[-3:]}
