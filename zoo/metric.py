"""The `Metric` interface (torchmetrics shape: per-image `score`, plus `update` / `compute` / `reset`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .cards import Card

if TYPE_CHECKING:
    from .domain import Domain


class Metric(ABC):
    """Compares reconstructions with targets, both [B, 3, H, W] in [-1, 1]; higher_is_better says the direction."""

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    card: ClassVar[Card]
    version: ClassVar[str] = "1"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.reset()

    def unavailable_reason(self, domain: Domain | None = None) -> str | None:
        """None when the metric can run (weights present); else a one-line reason with the command that fixes it."""
        return None

    @abstractmethod
    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        """Per-image scores [B] (NaN where undefined)."""

    # torchmetrics-style accumulation
    def reset(self) -> None:
        self._scores: list[torch.Tensor] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> None:
        self._scores.append(self.score(pred, target, domain).detach().cpu())

    def compute(self) -> torch.Tensor:
        """Mean over finite per-image scores seen since `reset`."""
        s = torch.cat(self._scores) if self._scores else torch.empty(0)
        s = s[torch.isfinite(s)]
        return s.mean() if s.numel() else torch.tensor(float("nan"))

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "higher_is_better": cls.higher_is_better, "version": cls.version,
                "card": cls.card.to_dict()}
