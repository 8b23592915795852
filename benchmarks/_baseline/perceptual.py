"""Frozen copy of zoo_optim._common.Perceptual as of commit 13bb0df (the issue-20 baseline): lpips package
internals, one AlexNet pass per image set."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    down = size < x.shape[-1] or size < x.shape[-2]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=down)


class Perceptual:
    """Differentiable LPIPS-AlexNet v0.1 distance split into `features` and `distance`, so a target's features are
    computed once per inversion instead of at every step (the NVlabs projector does the same with its VGG).

    Images [B, 3, H, W] in [-1, 1] are resized to `size` x `size` first (None: used as they are).
    `distance(features(x), features(y))` equals `lpips_model(resize(x), resize(y)).flatten()`.
    """

    def __init__(self, model: object, size: int | None) -> None:
        self.model = model
        self.size = size

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        from lpips import normalize_tensor

        if self.size is not None:
            x = resize_to(x, self.size)
        outs = self.model.net(self.model.scaling_layer(x))
        return [normalize_tensor(o) for o in outs]

    def distance(self, f0: Sequence[torch.Tensor], f1: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-image LPIPS [B] between two feature lists."""
        total = None
        for k, (a, b) in enumerate(zip(f0, f1)):
            d = self.model.lins[k]((a - b) ** 2).mean((1, 2, 3))
            total = d if total is None else total + d
        return total

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(x), self.features(y))
