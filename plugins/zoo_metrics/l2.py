"""L2: per-image mean squared error on [-1, 1] images at the comparison size (lower is better)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from zoo.cards import Card
from zoo.metric import Metric

from .resize import Size, prepare_pair

if TYPE_CHECKING:
    from zoo.domain import Domain


class L2(Metric):
    """`torch.nn.MSELoss()` of each (pred, target) pair: the mean over C×H×W at `size` (default 256×256)."""

    name = "l2"
    higher_is_better = False
    version = "1"
    card = Card(
        title="L2 (mean squared error) reconstruction metric",
        url="https://github.com/yuval-alaluf/hyperstyle/blob/main/scripts/calc_losses_on_images.py",
        notes="MSE over C×H×W of [-1, 1] images resized to 256×256 (bilinear), one score per image, as in the "
              "pSp / ReStyle / HyperStyle evaluation scripts.",
    )

    def __init__(self, device: str | torch.device = "cpu", size: Size | None = 256) -> None:
        super().__init__(device)
        self.size = size
        self.check_size_option()

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        """pred, target [B, 3, H, W] in [-1, 1] -> MSE [B] (>= 0); InputError for other inputs (`check_inputs`)."""
        p, t = prepare_pair(pred, target, self.size, self.device)
        return (p - t).pow(2).flatten(1).mean(1)
