"""Adversarial StyleGAN3 training on CPU: the project's GAN recipe (`stylegan2_gan`: non-saturating logistic loss,
lazy R1 on reals, EMA generator with ramp-up, the project's StyleGAN2 discriminator) with the official SG3 settings.

Source: NVlabs/stylegan3 @ c233a919 `train.py` / `training/loss.py` / `training/training_loop.py` (anchors-wave2 §1.5,
§4.4): the discriminator of every SG3 config is the StyleGAN2 one; no style mixing and no path-length regulariser; R1
every 16 D steps; `ema_kimg = batch * 10 / 32` with ramp-up 0.05; G lr 0.0025 (T), D lr 0.002; the fakes of the D
step are generated with `update_emas=True` (tracks `mapping.w_avg` and every layer's `magnitude_ema`), those of the G
step without. Not reproduced: the R config's D-input blur (`blur_init_sigma`), mixed precision, augmentation.

Resumable like `stylegan2_gan`: `state.pt` in the run directory (G, D, G_ema incl. their buffers, optimisers, step,
RNG states), rewritten atomically every `checkpoint_every` steps and when `max_minutes` runs out; sample grids with a
fixed z in `samples/`; the EMA generator in NVlabs layout via `zoo.stylegan3.checkpoints.save_generator`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import autograd, nn

from ..stylegan2.discriminator import Discriminator
from ..stylegan3 import Generator
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
from .stylegan2_gan import _requires_grad, save_grid

GAN3_STATE_KEYS = ("config", "g", "d", "g_ema", "g_optim", "d_optim", "step", "wall_seconds", "log", "rng")
VOLATILE = ("max_steps", "checkpoint_every", "sample_every")


@dataclass
class Gan3Config:
    """Hyper-parameters of a StyleGAN3 run (JSON-serialised into the run directory and the model card).

    `generator`: keyword arguments of `zoo.stylegan3.Generator` (NVlabs constructor); `d_channels`: the project's
    StyleGAN2 discriminator channel table {resolution: channels}.
    """

    generator: dict[str, Any] = field(default_factory=lambda: dict(
        z_dim=128, c_dim=0, w_dim=128, img_resolution=32, img_channels=3, mapping_kwargs={"num_layers": 2},
        channel_base=4096, channel_max=64, num_layers=4, margin_size=4))
    d_channels: dict[int, int] = field(default_factory=lambda: {4: 128, 8: 128, 16: 64, 32: 32})
    batch: int = 32
    g_lr: float = 0.0025
    d_lr: float = 0.002
    r1: float = 0.2
    d_reg_every: int = 16
    ema_kimg: float | None = None  # None -> batch * 10 / 32 (official)
    ema_rampup: float = 0.05
    max_steps: int = 6000
    seed: int = 0
    checkpoint_every: int = 100
    sample_every: int = 500
    n_sample: int = 64

    @property
    def size(self) -> int:
        return int(self.generator["img_resolution"])

    def resolved_ema_kimg(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else self.batch * 10 / 32

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def build_models3(cfg: Gan3Config) -> tuple[Generator, Discriminator, Generator]:
    """(G, D, G_ema) for `cfg`; G_ema a copy of G (buffers included), frozen, eval mode."""
    g = Generator(**cfg.generator)
    d = Discriminator(cfg.size, channels={int(k): int(v) for k, v in cfg.d_channels.items()})
    g_ema = Generator(**cfg.generator)
    g_ema.load_state_dict(g.state_dict())
    g_ema.eval()
    _requires_grad(g_ema, False)
    return g, d, g_ema


@torch.no_grad()
def accumulate3(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """EMA of the parameters; buffers (w_avg, magnitude_ema, filters) copied, as NVlabs' training loop does."""
    ema_params = dict(ema.named_parameters())
    for k, p in model.named_parameters():
        ema_params[k].mul_(decay).add_(p.detach(), alpha=1 - decay)
    ema_buffers = dict(ema.named_buffers())
    for k, b in model.named_buffers():
        ema_buffers[k].copy_(b)


def load_gan3_state(state_path: str | Path, cfg: Gan3Config) -> dict:
    """The `state.pt` of a run made with `cfg` (up to its volatile settings). Raises CheckpointError naming the file
    (unreadable / foreign / code-bearing) or ResumeMismatchError (another config)."""
    st = load_training_state(state_path, GAN3_STATE_KEYS, "the StyleGAN3 generator")
    with restoring(state_path, "the StyleGAN3 generator"):
        same = {k: v for k, v in dict(st["config"]).items() if k not in VOLATILE}
    if same != {k: v for k, v in cfg.to_json().items() if k not in VOLATILE}:
        raise ResumeMismatchError(f"{state_path} was made with a different config; use a new --out directory "
                                  f"(or {RESTART_HINT})")
    return st


def generate(g: Generator, batch: int, device: torch.device, update_emas: bool) -> torch.Tensor:
    """Fakes [batch, 3, R, R] from N(0, I) z, no style mixing (SG3 configs), truncation 1."""
    z = torch.randn(batch, g.z_dim, device=device)
    ws = g.mapping(z, None, update_emas=update_emas)
    return g.synthesis(ws, update_emas=update_emas)


def train_gan3(images: np.ndarray, run_dir: str | Path, cfg: Gan3Config, *, device: str = "cpu",
               max_minutes: float | None = None, on_checkpoint: Callable[[int, Generator], None] | None = None,
               on_step: Callable[[int, float], None] | None = None) -> dict:
    """Train (or resume) a StyleGAN3 on `images` uint8 [N, H, W, 3] (H = W = cfg.size); returns a summary dict
    {step, wall_seconds, finished, seconds_per_step (this call), log_tail}.

    Stops at `cfg.max_steps` or after `max_minutes` of wall time in this call (then saves; rerun to resume).
    `on_step(step, seconds)` is called after every step (timing). Raises ValueError for images of another size,
    CheckpointError / ResumeMismatchError when `run_dir/state.pt` cannot be resumed.
    """
    import random

    run_dir = Path(run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.pt"
    dev = torch.device(device)
    if images.ndim != 4 or images.shape[1] != cfg.size or images.shape[2] != cfg.size:
        raise ValueError(f"images must be [N, {cfg.size}, {cfg.size}, 3] uint8, got {list(images.shape)}")
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()

    random.seed(cfg.seed); np.random.seed(cfg.seed); torch.manual_seed(cfg.seed)  # init; a resume restores RNGs
    g, d, g_ema = build_models3(cfg)
    g, d, g_ema = g.to(dev), d.to(dev), g_ema.to(dev)
    ratio = cfg.d_reg_every / (cfg.d_reg_every + 1)
    g_optim = torch.optim.Adam(g.parameters(), lr=cfg.g_lr, betas=(0.0, 0.99), eps=1e-8)
    d_optim = torch.optim.Adam(d.parameters(), lr=cfg.d_lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
    step, wall = 0, 0.0
    log: list[dict] = []
    if state_path.exists():
        st = load_gan3_state(state_path, cfg)
        with restoring(state_path, "the StyleGAN3 generator"):
            g.load_state_dict(st["g"]); d.load_state_dict(st["d"]); g_ema.load_state_dict(st["g_ema"])
            g_optim.load_state_dict(st["g_optim"]); d_optim.load_state_dict(st["d_optim"])
            step, wall, log = int(st["step"]), float(st["wall_seconds"]), list(st["log"])
            set_rng_state(st["rng"])
    sample_z = torch.randn(cfg.n_sample, g.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1)).to(dev)
    ema_nimg_full = cfg.resolved_ema_kimg() * 1000

    def save_state() -> None:
        save_atomic({"config": cfg.to_json(), "g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(),
                     "g_optim": g_optim.state_dict(), "d_optim": d_optim.state_dict(), "step": step,
                     "wall_seconds": wall, "log": log, "rng": rng_state()}, state_path)
        if on_checkpoint is not None:
            on_checkpoint(step, g_ema)

    t_call = t_last = time.time()
    start_step = step
    stats: dict[str, float] = {}
    with StopRequest() as stop:  # Ctrl-C / SIGTERM: finish the step, save, return
        while step < cfg.max_steps:
            idx = torch.randint(0, data.shape[0], (cfg.batch,))
            real = data[idx].to(dev).float().div_(127.5).sub_(1.0)

            # --- discriminator (fakes with update_emas=True, as NVlabs' Dmain phase)
            _requires_grad(g, False); _requires_grad(d, True)
            with torch.no_grad():
                fake = generate(g, cfg.batch, dev, update_emas=True)
            d_loss = F.softplus(d(fake)).mean() + F.softplus(-d(real)).mean()
            d_optim.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optim.step()
            if step % cfg.d_reg_every == 0:
                real.requires_grad_(True)
                (grad,) = autograd.grad(d(real).sum(), real, create_graph=True)
                r1_pen = grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()
                d_optim.zero_grad(set_to_none=True)
                (cfg.r1 / 2 * r1_pen * cfg.d_reg_every).backward()
                d_optim.step()
                stats["r1"] = r1_pen.item()

            # --- generator
            _requires_grad(g, True); _requires_grad(d, False)
            g_loss = F.softplus(-d(generate(g, cfg.batch, dev, update_emas=False))).mean()
            g_optim.zero_grad(set_to_none=True)
            g_loss.backward()
            g_optim.step()

            # --- EMA with ramp-up (parameters averaged, buffers copied)
            nimg = (step + 1) * cfg.batch
            ema_nimg = min(ema_nimg_full, nimg * cfg.ema_rampup) if cfg.ema_rampup else ema_nimg_full
            accumulate3(g_ema, g, 0.5 ** (cfg.batch / max(ema_nimg, 1e-8)))

            step += 1
            now = time.time()
            wall += now - t_last
            if on_step is not None:
                on_step(step, now - t_last)
            t_last = now
            stats.update(d=d_loss.item(), g=g_loss.item())
            if step % 50 == 0:
                log.append({"step": step, "wall": round(wall, 1), **{k: round(v, 4) for k, v in stats.items()}})
            if step % cfg.sample_every == 0 or step == cfg.max_steps:
                with torch.no_grad():
                    save_grid(g_ema.synthesis(g_ema.mapping(sample_z, None)), run_dir / "samples" / f"{step:06d}.png")
            out_of_time = (max_minutes is not None and (now - t_call) > max_minutes * 60) or stop.requested
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or out_of_time:
                save_state()
            if out_of_time:
                break
    done = step - start_step
    return {"step": step, "wall_seconds": wall, "finished": step >= cfg.max_steps,
            "seconds_per_step": (time.time() - t_call) / done if done else None, "log_tail": log[-3:]}
