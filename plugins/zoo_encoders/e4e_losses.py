"""e4e's extra training terms (omertov/encoder4editing `training/coach.py`), also used by ReStyle-e4e.

* Progressive training: stage i enables delta_i; officially stages start at step `progressive_start` (20k) and one
  more delta is enabled every `progressive_step_every` (2k) steps, up to delta_{n_styles-1}. Here the thresholds
  are fractions of the run's budget (default: start at 20 %, one delta every 5 %); see `ProgressiveSchedule`.
* Delta regularisation: sum_{i=1..stage} mean_b ||w_i - w_0||_2 (delta_norm 2), lambda 2e-4, while progressive.
* Latent discriminator `LatentCodesDiscriminator(style_dim, 4)`: 3 x [Linear, LeakyReLU(0.2)] + Linear(., 1)
  (keys mlp.{0,2,4,6}); non-saturating logistic losses; real w = mapping(z ~ N(0, I)); fake w = the encoder's codes
  on the discriminated dims (0..stage while progressive); both through 50-entry `LatentCodesPool`s (50 % swap);
  D: Adam lr 2e-5, R1 (gamma 10) every 16 steps scaled by gamma/2 * 16; encoder adversarial term
  mean_i softplus(-D(w_i)) over the discriminated dims, lambda 0.1.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import autograd, nn


class LatentCodesDiscriminator(nn.Module):
    """e4e's W discriminator: w [B, style_dim] -> logit [B, 1]."""

    def __init__(self, style_dim: int = 512, n_mlp: int = 4) -> None:
        super().__init__()
        self.style_dim = style_dim
        layers: list[nn.Module] = []
        for _ in range(n_mlp - 1):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(style_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mlp(w)


class LatentCodesPool:
    """e4e's history pool of latent codes (like CycleGAN's image pool). query(ws): ws [B, D] or [B, n, D] (then one
    random code of the n per sample); until full, codes are stored and returned; then, with probability 1/2, a
    stored code is returned and replaced by the new one, else the new code is returned."""

    def __init__(self, pool_size: int = 50) -> None:
        self.pool_size = pool_size
        self.ws: list[torch.Tensor] = []

    def query(self, ws: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return ws
        out = []
        for w in ws:
            if w.ndim == 2:
                w = w[random.randint(0, len(w) - 1)]
            if len(self.ws) < self.pool_size:
                self.ws.append(w)
                out.append(w)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.pool_size - 1)
                tmp = self.ws[i].clone()
                self.ws[i] = w
                out.append(tmp)
            else:
                out.append(w)
        return torch.stack(out, 0)

    def state_dict(self) -> dict:
        return {"pool_size": self.pool_size, "ws": torch.stack(self.ws) if self.ws else torch.zeros(0)}

    def load_state_dict(self, state: dict) -> None:
        self.pool_size = int(state["pool_size"])
        ws = state["ws"]
        self.ws = [w.clone() for w in ws] if ws.numel() else []


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Stage as a function of training progress p in [0, 1] (fraction of the run's step or time budget).

    Official: stage i >= 1 from step 20000 + (i - 1) * 2000 of max 500k. With a ~100x shorter run the W-only phase
    and the per-delta phases are scaled to the budget: stage i >= 1 from p = start + (i - 1) * every.
    """

    n_styles: int
    start: float = 0.2
    every: float = 0.05

    def thresholds(self) -> list[float]:
        """Progress at which stage i begins, for i = 0 .. n_styles - 1."""
        return [0.0] + [self.start + (i - 1) * self.every for i in range(1, self.n_styles)]

    def stage(self, progress: float) -> int:
        return max(i for i, t in enumerate(self.thresholds()) if progress >= t - 1e-12)


def dims_to_discriminate(stage: int, n_styles: int) -> list[int]:
    """Official `get_dims_to_discriminate`: the style indices 0..stage (all of them after the last stage)."""
    return list(range(min(stage, n_styles - 1) + 1))


def delta_regularisation(latent: torch.Tensor, stage: int, delta_norm: int = 2) -> torch.Tensor:
    """sum_{i=1..stage} mean_b ||latent[:, i] - latent[:, 0]||_p for latent [B, n_styles, D]."""
    first = latent[:, 0]
    total = latent.new_zeros(())
    for i in range(1, min(stage, latent.shape[1] - 1) + 1):
        total = total + torch.norm(latent[:, i] - first, delta_norm, dim=1).mean()
    return total


def encoder_adversarial_loss(discriminator: nn.Module, latent: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """mean over dims of softplus(-D(latent[:, i])).mean() (non-saturating; D's parameters frozen by the caller)."""
    loss = latent.new_zeros(())
    for i in dims:
        loss = loss + F.softplus(-discriminator(latent[:, i])).mean()
    return loss / len(dims)


class LatentDiscriminatorTrainer:
    """Owns D, its optimiser and the two pools; `step(real_w, fake_w, global_step)` = one official D update."""

    def __init__(self, style_dim: int, *, lr: float = 2e-5, r1: float = 10.0, d_reg_every: int = 16,
                 pool_size: int = 50, n_mlp: int = 4, device: str | torch.device = "cpu") -> None:
        self.discriminator = LatentCodesDiscriminator(style_dim, n_mlp).to(device)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr)
        self.r1, self.d_reg_every = r1, d_reg_every
        self.real_pool, self.fake_pool = LatentCodesPool(pool_size), LatentCodesPool(pool_size)
        self.discriminator.requires_grad_(False)

    def sample_latents(self, real_w: torch.Tensor, fake_w: torch.Tensor, dims: list[int] | None) -> tuple[
            torch.Tensor, torch.Tensor]:
        """Official `sample_real_and_fake_latents` after the encoder pass: restrict fake codes [B, n, D] to the
        discriminated dims, pass both through the pools, keep w0 if still 3-D (no pool)."""
        if dims is not None and fake_w.ndim == 3:
            fake_w = fake_w[:, dims, :]
        real_w = self.real_pool.query(real_w)
        fake_w = self.fake_pool.query(fake_w)
        if fake_w.ndim == 3:
            fake_w = fake_w[:, 0, :]
        return real_w, fake_w

    def step(self, real_w: torch.Tensor, fake_w: torch.Tensor, global_step: int) -> dict[str, float]:
        d = self.discriminator
        d.requires_grad_(True)
        real_w, fake_w = real_w.detach(), fake_w.detach()
        real_loss = F.softplus(-d(real_w)).mean()
        fake_loss = F.softplus(d(fake_w)).mean()
        loss = real_loss + fake_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        logs = {"d_real": float(real_loss.detach()), "d_fake": float(fake_loss.detach())}
        if global_step % self.d_reg_every == 0:
            real_w = real_w.detach().requires_grad_(True)
            real_pred = d(real_w)
            (grad,) = autograd.grad(real_pred.sum(), real_w, create_graph=True)
            r1_loss = grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()
            self.optimizer.zero_grad(set_to_none=True)
            (self.r1 / 2 * r1_loss * self.d_reg_every + 0 * real_pred[0]).sum().backward()
            self.optimizer.step()
            logs["d_r1"] = float(r1_loss.detach())
        d.requires_grad_(False)
        return logs

    def state_dict(self) -> dict:
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "real_pool": self.real_pool.state_dict(), "fake_pool": self.fake_pool.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.real_pool.load_state_dict(state["real_pool"])
        self.fake_pool.load_state_dict(state["fake_pool"])
