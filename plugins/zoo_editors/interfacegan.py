"""InterFaceGAN (Shen et al. 2020): move W+ codes along a linear attribute boundary's normal, w' = w + step * n."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from zoo.cards import Card
from zoo.domain import Domain
from zoo.editor import Editor

from .layers import layer_mask


@dataclass(frozen=True)
class InterFaceGANOptions:
    first_layer: int = field(default=0, metadata={"help": "first W+ layer edited"})
    last_layer: int | None = field(default=None, metadata={"help": "last W+ layer edited (None: all)"})


class InterFaceGAN(Editor):
    """Directions come from the domain (`Domain.directions()`: [w_dim] or [n_styles, w_dim], in the domain's
    step units); latents [B, n_styles, w_dim] -> edited latents of the same shape."""

    name = "interfacegan"
    Options = InterFaceGANOptions
    card = Card(
        title="Interpreting the Latent Space of GANs for Semantic Face Editing",
        authors="Yujun Shen, Jinjin Gu, Xiaoou Tang, Bolei Zhou", year=2020,
        url="https://arxiv.org/abs/1907.10786", code_url="https://github.com/genforce/interfacegan",
        licence="MIT", citation="Shen et al., CVPR 2020",
    )

    def directions(self, domain: Domain) -> list[str]:
        return sorted(domain.directions())

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        d = domain.directions(latents.device)[direction].to(latents)
        if d.ndim == 1:
            d = d.expand(latents.shape[1], -1)
        mask = layer_mask(latents, self.options.first_layer, self.options.last_layer)
        return latents + step * d * mask
