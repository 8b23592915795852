"""One training step per method, as the official coaches do it (generator frozen in every case).

* pSp (`psp`) and the W-encoder (`w_encoder`): codes = E(x) + latent_avg, y_hat = G(codes) (randomize_noise=True
  as the official training forward), one Ranger step on L2 + LPIPS + ID (+ W-norm, 0 for encoding).
* e4e: the latent discriminator is updated first (official order), then the encoder with the pSp terms +
  lambda_adv * adversarial + lambda_delta * delta regularisation; the progressive stage comes from the schedule.
* ReStyle-pSp: n_iters_per_batch iterations on the same batch; iteration 0 starts from the average image
  y_0 = G(latent_avg) and latent_avg; every iteration's loss is back-propagated immediately, y_{t-1} and
  codes_{t-1} are detached between iterations, one optimiser step per batch (official `perform_train_iteration_
  on_batch`).
* ReStyle-e4e: as ReStyle-pSp plus e4e's terms per iteration on the full codes; the discriminator is updated once per
  batch and sees the raw residual output E(x || y_0) (no latent_avg added), as the official ReStyle-e4e coach.
  With `recipe.progressive` False (stylegan3-editing's ReStyle-e4e on StyleGAN3, `progressive_steps` None) every
  delta is on from the first step, all codes are discriminated and there is no delta regularisation.
* StyleGAN3 generators (`zoo.encoders.generators`): every render is the aligned one (identity user transform, as
  stylegan3-editing's coaches), randomize_noise has no effect (no noise inputs), real codes for the latent
  discriminator are mapped from z [B, z_dim] with `recipe.real_w_truncation` (stylegan3-editing: 0.7).
* HyperStyle: codes and y_0 from the frozen W-encoder (eval mode, no grad); per-iteration losses on
  G(codes, W * (1 + sum of deltas)); only the hypernetwork is optimised; randomize_noise=False (official).

`reconstruct(x, n_iters)` runs the inference path (eval mode, fixed noise) and returns the per-iteration images,
used for validation metrics and grids.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.encoders import average_image, hyperstyle_steps, initial_inversion, pool_to, restyle_steps
from zoo.encoders.generators import render_aligned, sample_w
from zoo.encoders.psp import ProgressiveStage
from zoo.stylegan2 import Generator

from .configs import EncoderConfig, build_module
from .e4e_losses import (
    LatentDiscriminatorTrainer,
    ProgressiveSchedule,
    delta_regularisation,
    dims_to_discriminate,
    encoder_adversarial_loss,
)
from .losses import ReconstructionLoss
from .ranger import Ranger


def make_optimizer(params: Any, name: str, lr: float) -> torch.optim.Optimizer:
    if name == "ranger":
        return Ranger(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r} (ranger, adamw, adam)")


class Trainer:
    """Base: owns the trainable module and its optimiser; subclasses implement `train_step` and `reconstruct`."""

    iterative = False
    progressive = False

    def __init__(self, cfg: EncoderConfig, recipe: Any, generator: Generator, latent_avg: torch.Tensor,
                 loss: ReconstructionLoss, device: torch.device, w_encoder: nn.Module | None = None) -> None:
        self.cfg, self.recipe, self.device = cfg, recipe, device
        self.generator = generator.eval().requires_grad_(False)
        self.latent_avg = latent_avg.to(device).float()  # [n_styles, D]
        self.loss = loss
        self.module = build_module(cfg, generator.layer_slots()).to(device).train()
        self.optimizer = make_optimizer(self.module.parameters(), recipe.optimizer, recipe.lr)
        self.w_encoder = w_encoder
        self.stage: int | None = None

    # ------------------------------------------------------------------ hooks
    def set_progress(self, progress: float) -> bool:
        """Update schedules from the run's progress in [0, 1]; True when something changed."""
        return False

    def train_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, n_iters: int) -> list[torch.Tensor]:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(), "stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("stage") is not None:
            self._apply_stage(int(state["stage"]))

    def _apply_stage(self, stage: int) -> None:
        self.stage = stage

    def _render(self, codes: torch.Tensor, randomize_noise: bool) -> torch.Tensor:
        return render_aligned(self.generator, codes, randomize_noise)


# --------------------------------------------------------------------------------------------- single pass
class PSPTrainer(Trainer):
    """pSp / W-encoder: codes = E(x) (+ latent_avg), one reconstruction loss."""

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        if out.ndim == 2:
            out = out.unsqueeze(1).repeat(1, self.cfg.n_styles, 1)
        return out + self.latent_avg.unsqueeze(0)

    def extra_losses(self, codes: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return codes.new_zeros(()), {}

    def before_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        return {}

    def train_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        self.module.train()
        logs = self.before_step(x, step)
        codes = self.codes(x)
        y_hat = self._render(codes, self.recipe.randomize_noise)
        loss, rec_logs = self.loss(y_hat, x, codes, self.latent_avg)
        extra, extra_logs = self.extra_losses(codes)
        total = loss + extra
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return {**logs, **rec_logs, **extra_logs, "loss": float(total.detach())}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, n_iters: int) -> list[torch.Tensor]:
        self.module.eval()
        return [self._render(self.codes(x), False)]


class E4EMixin:
    """Progressive stage + latent discriminator + delta regularisation (shared by e4e and ReStyle-e4e)."""

    progressive = True
    cfg: EncoderConfig
    recipe: Any
    module: nn.Module
    generator: Generator
    device: torch.device
    stage: int | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the trainer it is mixed into
        self._init_e4e()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.e4e_state()}  # type: ignore[misc]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # type: ignore[misc]
        self.load_e4e_state(state)

    def _init_e4e(self) -> None:
        r = self.recipe
        self.schedule = (ProgressiveSchedule(self.cfg.n_styles, r.progressive_start, r.progressive_step_every)
                         if r.progressive else None)
        self.disc = (LatentDiscriminatorTrainer(self.cfg.style_dim, lr=r.w_discriminator_lr, r1=r.r1,
                                                d_reg_every=r.d_reg_every, pool_size=r.w_pool_size,
                                                device=self.device)
                     if r.w_discriminator_lambda > 0 else None)
        self._apply_stage(0 if self.schedule is not None else int(ProgressiveStage.Inference))

    def _apply_stage(self, stage: int) -> None:
        self.stage = stage
        self.module.set_progressive_stage(stage)  # type: ignore[operator]

    def set_progress(self, progress: float) -> bool:
        if self.schedule is None:  # not progressive: all deltas on from the start
            return False
        stage = max(self.schedule.stage(progress), self.stage or 0)  # never goes back (e.g. a longer resumed run)
        if stage != self.stage:
            self._apply_stage(stage)
            return True
        return False

    def dims(self) -> list[int]:
        return dims_to_discriminate(int(self.stage or 0), self.cfg.n_styles)

    def discriminator_step(self, fake_codes: torch.Tensor, step: int) -> dict[str, float]:
        if self.disc is None:
            return {}
        with torch.no_grad():
            real_w = sample_w(self.generator, fake_codes.shape[0], self.device, self.recipe.real_w_truncation,
                              self.latent_avg[0])
        real_w, fake_w = self.disc.sample_latents(real_w, fake_codes.detach(), self.dims())
        return self.disc.step(real_w, fake_w, step)

    def e4e_losses(self, latent: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        r = self.recipe
        total = latent.new_zeros(())
        logs: dict[str, float] = {}
        if self.disc is not None:
            adv = encoder_adversarial_loss(self.disc.discriminator, latent, self.dims())
            total = total + r.w_discriminator_lambda * adv
            logs["adv"] = float(adv.detach())
        if r.delta_norm_lambda > 0 and self.schedule is not None:  # official: only while progressive
            delta = delta_regularisation(latent, int(self.stage or 0), 2)
            total = total + r.delta_norm_lambda * delta
            logs["delta"] = float(delta.detach())
        logs["stage"] = float(self.stage or 0)
        return total, logs

    def e4e_state(self) -> dict[str, Any]:
        return {"disc": self.disc.state_dict() if self.disc is not None else None}

    def load_e4e_state(self, state: dict[str, Any]) -> None:
        if self.disc is not None and state.get("disc") is not None:
            self.disc.load_state_dict(state["disc"])


class E4ETrainer(E4EMixin, PSPTrainer):
    def before_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        if self.disc is None:
            return {}
        with torch.no_grad():
            fake = self.codes(x)  # e4e: encoder output + latent_avg
        return self.discriminator_step(fake, step)

    def extra_losses(self, codes: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.e4e_losses(codes)


# --------------------------------------------------------------------------------------------- ReStyle
class ReStyleTrainer(Trainer):
    iterative = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feedback = pool_to((self.cfg.input_size, self.cfg.input_size))
        self.avg_image = average_image(self.generator, self.latent_avg, self.feedback)  # [1, 3, h, w]

    def iteration_losses(self, codes: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return codes.new_zeros(()), {}

    def before_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        return {}

    def train_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        self.module.train()
        logs = self.before_step(x, step)
        self.optimizer.zero_grad(set_to_none=True)
        for it in restyle_steps(self.module, self.generator, self.latent_avg, x, self.recipe.n_iters_per_batch,
                                avg_image=self.avg_image, feedback=self.feedback,
                                randomize_noise=self.recipe.randomize_noise, detach=True):
            loss, rec_logs = self.loss(it.feedback, x, it.codes, self.latent_avg)
            extra, extra_logs = self.iteration_losses(it.codes)
            total = loss + extra
            total.backward()  # inside the loop: the graph of iteration t is freed before t + 1 (official)
            if it.index == 0:
                logs["loss_it0"] = float(total.detach())
            last = {**rec_logs, **extra_logs, "loss": float(total.detach())}  # logged: the last iteration's (official)
        self.optimizer.step()
        return {**logs, **last}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, n_iters: int) -> list[torch.Tensor]:
        self.module.eval()
        return [it.image for it in restyle_steps(self.module, self.generator, self.latent_avg, x, n_iters,
                                                  avg_image=self.avg_image, feedback=self.feedback)]


class ReStyleE4ETrainer(E4EMixin, ReStyleTrainer):
    def before_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        if self.disc is None:
            return {}
        with torch.no_grad():  # raw residual of the first iteration (no latent_avg), as the official coach
            fake = self.module(torch.cat([x, self.avg_image.expand(x.shape[0], -1, -1, -1)], dim=1))
        return self.discriminator_step(fake, step)

    def iteration_losses(self, codes: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.e4e_losses(codes)


# --------------------------------------------------------------------------------------------- HyperStyle
class HyperStyleTrainer(Trainer):
    iterative = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.w_encoder is None:
            raise ValueError("HyperStyle training needs a trained, frozen W-encoder")
        self.w_encoder = self.w_encoder.to(self.device).eval().requires_grad_(False)
        self.feedback = pool_to((self.cfg.input_size, self.cfg.input_size))

    def initial(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return initial_inversion(self.w_encoder, self.generator, self.latent_avg, x, self.feedback)

    def train_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        self.module.train()
        codes, _, y0 = self.initial(x)
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        for it in hyperstyle_steps(self.module, self.generator, x, codes, y0, self.recipe.n_iters_per_batch,
                                   feedback=self.feedback, randomize_noise=False, detach=True):
            loss, rec_logs = self.loss(it.feedback, x)
            loss.backward()
            if it.index == 0:
                logs["loss_it0"] = float(loss.detach())
            logs.update(rec_logs)  # logged: the last iteration's (official)
        self.optimizer.step()
        return logs

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, n_iters: int) -> list[torch.Tensor]:
        self.module.eval()
        codes, init_image, y0 = self.initial(x)
        return [init_image] + [it.image for it in hyperstyle_steps(self.module, self.generator, x, codes, y0,
                                                                   n_iters, feedback=self.feedback)]


TRAINERS: dict[str, type[Trainer]] = {
    "psp": PSPTrainer, "w_encoder": PSPTrainer, "e4e": E4ETrainer, "restyle_psp": ReStyleTrainer,
    "restyle_e4e": ReStyleE4ETrainer, "hyperstyle": HyperStyleTrainer,
}
