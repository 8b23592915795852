"""ReStyle encoders (restyle-encoder `restyle_psp_encoders.py` / `restyle_e4e_encoders.py`) and the ReStyle iteration.

Encoders (input = concat(x, y_prev): 6 channels officially, at input_size 256):
* `BackboneEncoder` (IR-SE50) / `ResNetBackboneEncoder` (ResNet34): every one of the n_styles map2style blocks
  GradualStyleBlock(C, style_dim, input_size/16) reads the final map -> residual codes [B, n_styles, style_dim].
* `ProgressiveBackboneEncoder` / `ResNetProgressiveBackboneEncoder` (ReStyle-e4e): w0 = styles[0](map) repeated,
  plus deltas styles[i](map) for 1 <= i <= progressive_stage.
* `ResNetGradualStyleEncoder`: the pSp FPN head over ResNet34 (taps at the ends of layer2/3/4 = body.6/12/15).

Iteration (`restyle_steps` / `run_restyle`), images in [-1, 1]:
  y_0 = pool(G(latent_avg)) (randomize_noise=False), codes_0 = E(cat(x, y_0)) + latent_avg,
  codes_t = E(cat(x, y_{t-1})) + codes_{t-1},  y_t = pool(G(codes_t)),
where pool = adaptive average pooling to the encoder input size (the official `face_pool`, AdaptiveAvgPool2d(256)).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..stylegan2 import Generator
from .backbones import (
    TOTAL_STRIDE,
    GradualStyleBlock,
    IRSEBackbone,
    IRSEConfig,
    ResNetBackbone,
    ResNetConfig,
    check_input,
    check_input_size,
)
from .generators import render_aligned
from .psp import COARSE_IND, MIDDLE_IND, FPNStyleHead, ProgressiveStage

Feedback = Callable[[torch.Tensor], torch.Tensor]


class LastMapStyleHead:
    """Mixin: n_styles GradualStyleBlock(C, style_dim, input_size/16) all reading the backbone's final map."""

    styles: nn.ModuleList
    out_channels: int

    def _init_style_head(self, n_styles: int, style_dim: int, input_size: int) -> None:
        check_input_size(input_size)
        self.n_styles = self.style_count = n_styles
        self.style_dim = style_dim
        self.input_size = input_size
        spatial = input_size // TOTAL_STRIDE
        self.styles = nn.ModuleList(GradualStyleBlock(self.out_channels, style_dim, spatial) for _ in range(n_styles))

    def _final_map(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_nc, self.input_size, type(self).__name__)  # type: ignore[attr-defined]
        return self.body(self.stem_forward(x))  # type: ignore[attr-defined]

    def _all_styles(self, x: torch.Tensor) -> torch.Tensor:
        feat = self._final_map(x)
        return torch.stack([style(feat) for style in self.styles], dim=1)

    def _progressive_styles(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        feat = self._final_map(x)
        w0 = self.styles[0](feat)
        codes = [w0] + [w0 + self.styles[i](feat) for i in range(1, min(stage + 1, self.n_styles))]
        codes += [w0] * (self.n_styles - len(codes))
        return torch.stack(codes, dim=1)


class BackboneEncoder(LastMapStyleHead, IRSEBackbone):
    """ReStyle-pSp IR-SE50 encoder: x [B, input_nc, S, S] -> residual codes [B, n_styles, style_dim]."""

    def __init__(
        self, n_styles: int = 18, input_nc: int = 6, style_dim: int = 512, input_size: int = 256,
        backbone: IRSEConfig | None = None,
    ) -> None:
        IRSEBackbone.__init__(self, input_nc, backbone)
        self._init_style_head(n_styles, style_dim, input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._all_styles(x)


class ResNetBackboneEncoder(LastMapStyleHead, ResNetBackbone):
    """ReStyle-pSp ResNet34 encoder: x [B, input_nc, S, S] -> residual codes [B, n_styles, style_dim]."""

    def __init__(
        self, n_styles: int = 18, input_nc: int = 6, style_dim: int = 512, input_size: int = 256,
        backbone: ResNetConfig | None = None,
    ) -> None:
        ResNetBackbone.__init__(self, input_nc, backbone)
        self._init_style_head(n_styles, style_dim, input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._all_styles(x)


class ProgressiveBackboneEncoder(LastMapStyleHead, IRSEBackbone):
    """ReStyle-e4e IR-SE50 encoder: codes[:, 0] = w0, codes[:, i] = w0 + delta_i (i <= progressive_stage)."""

    def __init__(
        self, n_styles: int = 18, input_nc: int = 6, style_dim: int = 512, input_size: int = 256,
        backbone: IRSEConfig | None = None, progressive_stage: int = ProgressiveStage.Inference,
    ) -> None:
        IRSEBackbone.__init__(self, input_nc, backbone)
        self._init_style_head(n_styles, style_dim, input_size)
        self.progressive_stage = int(progressive_stage)

    def set_progressive_stage(self, stage: int) -> None:
        self.progressive_stage = int(stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._progressive_styles(x, self.progressive_stage)


class ResNetProgressiveBackboneEncoder(LastMapStyleHead, ResNetBackbone):
    """ReStyle-e4e ResNet34 encoder: codes[:, 0] = w0, codes[:, i] = w0 + delta_i (i <= progressive_stage)."""

    def __init__(
        self, n_styles: int = 18, input_nc: int = 6, style_dim: int = 512, input_size: int = 256,
        backbone: ResNetConfig | None = None, progressive_stage: int = ProgressiveStage.Inference,
    ) -> None:
        ResNetBackbone.__init__(self, input_nc, backbone)
        self._init_style_head(n_styles, style_dim, input_size)
        self.progressive_stage = int(progressive_stage)

    def set_progressive_stage(self, stage: int) -> None:
        self.progressive_stage = int(stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._progressive_styles(x, self.progressive_stage)


class ResNetGradualStyleEncoder(FPNStyleHead, ResNetBackbone):
    """ReStyle's pSp FPN head over ResNet34: x [B, input_nc, S, S] -> codes [B, n_styles, style_dim]."""

    def __init__(
        self, n_styles: int = 18, input_nc: int = 6, style_dim: int = 512, input_size: int = 256,
        backbone: ResNetConfig | None = None, coarse_ind: int = COARSE_IND, middle_ind: int = MIDDLE_IND,
    ) -> None:
        ResNetBackbone.__init__(self, input_nc, backbone)
        self._init_fpn_head(n_styles, style_dim, input_size, coarse_ind, middle_ind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._psp_forward(x)


# --------------------------------------------------------------------------------------------- iteration
def pool_to(size: tuple[int, int] | torch.Size) -> Feedback:
    """The official `face_pool`: adaptive average pooling of generator outputs to the encoder input size."""
    target = (int(size[0]), int(size[1]))

    def _pool(image: torch.Tensor) -> torch.Tensor:
        return image if tuple(image.shape[-2:]) == target else F.adaptive_avg_pool2d(image, target)

    return _pool


def latent_avg_wplus(latent_avg: torch.Tensor, n_styles: int) -> torch.Tensor:
    """latent_avg [D], [1, D] or [n_styles, D] -> [n_styles, D]."""
    if latent_avg.ndim == 1:
        latent_avg = latent_avg.unsqueeze(0)
    if latent_avg.ndim != 2 or latent_avg.shape[0] not in (1, n_styles):
        raise ValueError(f"latent_avg must be [D], [1, D] or [{n_styles}, D], got {tuple(latent_avg.shape)}")
    return latent_avg.expand(n_styles, -1)


@torch.no_grad()
def average_image(generator: Generator, latent_avg: torch.Tensor, feedback: Feedback) -> torch.Tensor:
    """ReStyle's y_0: G(latent_avg repeated n_latent times) with randomize_noise=False (StyleGAN3: the aligned
    render, identity transform), pooled to the encoder input -> [1, 3, h, w]."""
    codes = latent_avg_wplus(latent_avg, generator.n_latent).unsqueeze(0)
    return feedback(render_aligned(generator, codes, randomize_noise=False)).detach()


@dataclass
class ReStyleStep:
    """One ReStyle iteration: codes_t [B, n_styles, D], image_t = G(codes_t) [B, 3, G, G] (raw, ~[-1, 1]) and
    feedback_t = pooled image_t [B, 3, h, w] (the next iteration's y_t)."""

    index: int
    codes: torch.Tensor
    image: torch.Tensor
    feedback: torch.Tensor


@dataclass
class ReStyleResult:
    """Per-iteration codes [B, n_styles, D] and images [B, 3, G, G]; `avg_image` = y_0 [1, 3, h, w]."""

    codes: list[torch.Tensor]
    images: list[torch.Tensor]
    avg_image: torch.Tensor


def restyle_steps(
    encoder: nn.Module, generator: Generator, latent_avg: torch.Tensor, x: torch.Tensor, n_iters: int = 5, *,
    avg_image: torch.Tensor | None = None, feedback: Feedback | None = None, randomize_noise: bool = False,
    detach: bool = True,
) -> Iterator[ReStyleStep]:
    """Yield the ReStyle iterations for images x [B, 3, h, w] in [-1, 1] (h, w = the encoder input size).

    encoder: residual encoder taking [B, 6, h, w] -> [B, n_styles, D]; latent_avg [D] or [n_styles, D].
    feedback: maps a generator output to the next encoder input (default: adaptive avg-pool to x's size; e.g. the
    cars domain crops then pools). detach=True cuts the graph between iterations like the official training loop
    (y_{t-1} and codes_{t-1} detached), so each step's loss can be back-propagated inside the loop.
    randomize_noise: False at inference (official), True in official training (no effect on StyleGAN3).
    generator: StyleGAN2 or StyleGAN3 (`zoo.encoders.generators`): the encoder always sees the aligned renders
    (StyleGAN3: identity user transform, as stylegan3-editing's `run_on_batch`).
    """
    if n_iters < 1:
        raise ValueError(f"n_iters must be >= 1, got {n_iters}")
    fb = feedback or pool_to(x.shape[-2:])
    if avg_image is None:
        avg_image = average_image(generator, latent_avg, fb)
    lat = latent_avg_wplus(latent_avg, generator.n_latent).unsqueeze(0).to(x)
    avg_image = avg_image.unsqueeze(0) if avg_image.ndim == 3 else avg_image  # official stores [3, h, w]
    y_prev = avg_image.to(x).expand(x.shape[0], -1, -1, -1)
    codes_prev: torch.Tensor | None = None
    for t in range(n_iters):
        if detach and codes_prev is not None:
            y_prev, codes_prev = y_prev.detach(), codes_prev.detach()
        residual = encoder(torch.cat([x, y_prev], dim=1))
        codes = residual + (lat if codes_prev is None else codes_prev)
        image = render_aligned(generator, codes, randomize_noise)
        y = fb(image)
        yield ReStyleStep(t, codes, image, y)
        y_prev, codes_prev = y, codes


def run_restyle(
    encoder: nn.Module, generator: Generator, latent_avg: torch.Tensor, x: torch.Tensor, n_iters: int = 5, *,
    avg_image: torch.Tensor | None = None, feedback: Feedback | None = None, randomize_noise: bool = False,
) -> ReStyleResult:
    """Run all ReStyle iterations (see `restyle_steps`); returns per-iteration codes and images."""
    fb = feedback or pool_to(x.shape[-2:])
    if avg_image is None:
        avg_image = average_image(generator, latent_avg, fb)
    codes, images = [], []
    for step in restyle_steps(encoder, generator, latent_avg, x, n_iters, avg_image=avg_image, feedback=fb,
                              randomize_noise=randomize_noise):
        codes.append(step.codes)
        images.append(step.image)
    return ReStyleResult(codes, images, avg_image)
