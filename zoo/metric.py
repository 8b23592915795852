"""The `Metric` interface (torchmetrics shape: per-image `score`, plus `update` / `compute` / `reset`).

Every metric's inputs are validated once, here: `Metric.__init_subclass__` wraps the `score` a subclass defines so
that `check_inputs` runs before it (a plugin cannot forget the checks, and its `score` keeps the usual signature).
"""

from __future__ import annotations

import functools
import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .cards import Card
from .errors import InputError

if TYPE_CHECKING:
    from .domain import Domain

_active = threading.local()  # ids of the metrics inside a checked `score` (so super().score() checks only once)


def _side(size: int | tuple[int, int]) -> tuple[int, int]:
    """256 -> (256, 256); (192, 256) -> (192, 256)."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _span(x: torch.Tensor) -> tuple[float, float] | None:
    """(min, max) of the non-NaN values of `x` (+-inf count), None when there are none."""
    v = x.detach()
    if v.numel() == 0:
        return None
    nan = torch.isnan(v)
    if bool(nan.any()):
        v = v[~nan]
        if v.numel() == 0:
            return None
    lo, hi = torch.aminmax(v.float())
    return float(lo), float(hi)


def _fmt(span: tuple[float, float]) -> str:
    return f"[{span[0]:.4g}, {span[1]:.4g}]"


class Metric(ABC):
    """Compares reconstructions with targets, both [B, 3, H, W] in [-1, 1]; higher_is_better says the direction.

    Subclasses implement `score`; it is wrapped so that `check_inputs` validates (pred, target) first and raises
    `InputError` (one line, naming the metric) for wrong shapes, too small images and the wrong value range.
    Class attributes a subclass may set: `min_size` (smallest image side in px the metric is defined for, at the
    size it computes on) with `min_size_reason`, and `paired_pixels` (False when pred and target are embedded
    separately, so their H, W may differ). Instances may set `size` (the side both images are resized to first,
    None: computed at the input size) and `check_value_range = False` to skip the value-range test.
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    card: ClassVar[Card]
    version: ClassVar[str] = "1"
    min_size: ClassVar[int] = 1
    min_size_reason: ClassVar[str] = ""
    paired_pixels: ClassVar[bool] = True
    # Accepted values: [-1 - value_margin, 1 + value_margin]. The bench clamps reconstructions to [-1, 1] before
    # scoring, but a direct caller may pass raw generator outputs, which overshoot far more than "slightly"
    # (peeps: up to ±2.19 over 256 samples, 9.5 % of the pixels beyond ±1); [0, 255] data is still caught.
    value_margin: ClassVar[float] = 2.0
    # [0, 1] data is flagged when pred and target both lie entirely in [0, 1], each spans at least this much
    # (constant or flat test images pass) and the batch holds at least `unit_range_min_batch` images.
    unit_range_min_spread: ClassVar[float] = 0.5
    unit_range_min_batch: ClassVar[int] = 2

    size: int | tuple[int, int] | None = None
    check_value_range: bool = True

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.reset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("score")
        if inspect.isfunction(fn) and not getattr(fn, "__isabstractmethod__", False):
            cls.score = _checked(fn)  # type: ignore[method-assign]

    def unavailable_reason(self, domain: Domain | None = None) -> str | None:
        """None when the metric can run (weights present); else a one-line reason with the command that fixes it."""
        return None

    def model_for(self, domain: Domain | None = None) -> str | None:
        """The model this metric actually uses on `domain`, in words, when that differs by domain (e.g. the id
        metric: CurricularFace on faces with user weights, the domain's own embedder on peeps); None otherwise.
        Recorded per domain in the bench results and shown under the leaderboards."""
        return None

    @abstractmethod
    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        """Per-image scores [B] (NaN where undefined) of pred, target [B, 3, H, W] in [-1, 1].

        Raises InputError (via `check_inputs`, which runs first) for inputs that break the contract.
        """

    # ------------------------------------------------------------------------------------------ input checks
    def check_inputs(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Validate a (pred, target) pair; InputError '<metric>: ...' (one line, with the fix) otherwise.

        * both float tensors [B, 3, H, W] with the same B; the same H, W unless the metric resizes both to `size`
          (or embeds them separately: `paired_pixels = False`);
        * the side the metric computes on (`size`, else the input's H and W) is at least `min_size`;
        * values in [-1, 1] up to `value_margin` (NaN ignored): [0, 255] data is reported as such; [0, 1] data is
          reported when pred and target both lie in [0, 1], each spans >= `unit_range_min_spread` and B >=
          `unit_range_min_batch` (a single pair cannot be told from a bright [-1, 1] image: none of its pixels
          darker than mid-grey in any channel).
        """
        who = self.name
        for what, x in (("pred", pred), ("target", target)):
            if not isinstance(x, torch.Tensor):
                raise InputError(f"{who}: {what} must be a tensor [B, 3, H, W] in [-1, 1], got {type(x).__name__}")
            if x.ndim != 4 or x.shape[1] != 3 or 0 in x.shape[-2:]:
                raise InputError(f"{who}: {what} must be [B, 3, H, W] (RGB) in [-1, 1], got {tuple(x.shape)}")
            if not x.is_floating_point():
                raise InputError(f"{who}: {what} must be a float tensor in [-1, 1], got {x.dtype}; convert with "
                                 "x.float() / 127.5 - 1")
        if pred.shape[0] != target.shape[0]:
            raise InputError(f"{who}: pred has {pred.shape[0]} images, target {target.shape[0]}")
        if self.paired_pixels and self.size is None and pred.shape != target.shape:
            raise InputError(f"{who}: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in size")
        self._check_size(pred, target)
        if self.check_value_range:
            self._check_range(pred, target)

    def check_size_option(self) -> None:
        """InputError when the comparison `size` is below `min_size` (constructors call it to fail early)."""
        if self.size is not None:
            h, w = _side(self.size)
            if min(h, w) < self.min_size:
                why = f" ({self.min_size_reason})" if self.min_size_reason else ""
                raise InputError(f"{self.name}: the comparison size {h}x{w} is below the metric's minimum side "
                                 f"{self.min_size} px{why}; use size >= {self.min_size}")

    def _check_size(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if self.size is not None:
            self.check_size_option()
            return
        why = f" ({self.min_size_reason})" if self.min_size_reason else ""
        for what, x in (("pred", pred), ("target", target)):
            h, w = x.shape[-2:]
            if min(h, w) < self.min_size:
                raise InputError(f"{self.name}: images must be at least {self.min_size}x{self.min_size} px{why}, "
                                 f"{what} is {h}x{w}; resize them (or keep the metric's default size)")

    def _check_range(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        who, limit = self.name, 1.0 + self.value_margin
        spans = {"pred": _span(pred), "target": _span(target)}
        for what, span in spans.items():
            if span is None or (-limit <= span[0] and span[1] <= limit):
                continue
            lo, hi = span
            if lo >= -1.05 and limit < hi <= 255 * 1.05:
                raise InputError(f"{who}: images must be in [-1, 1] (got [0, 255]: {what} spans {_fmt(span)}); "
                                 "convert with x / 127.5 - 1")
            raise InputError(f"{who}: images must be in [-1, 1] (got {what} in {_fmt(span)}); rescale to [-1, 1] "
                             "(reconstructions: x.clamp(-1, 1))")
        p, t = spans["pred"], spans["target"]
        if (p is not None and t is not None and pred.shape[0] >= self.unit_range_min_batch
                and all(s[0] >= 0.0 and s[1] <= 1.0 and s[1] - s[0] >= self.unit_range_min_spread for s in (p, t))):
            raise InputError(f"{who}: images must be in [-1, 1] (got [0, 1]: pred spans {_fmt(p)}, target "
                             f"{_fmt(t)}); convert with x * 2 - 1")

    # ------------------------------------------------------------------------------ torchmetrics-style accumulation
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


def _checked(score: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """`score` with `check_inputs` run first (once per call chain: a subclass calling super().score() is not
    checked twice)."""

    @functools.wraps(score)
    def checked(self: Metric, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None,
                *args: Any, **kwargs: Any) -> torch.Tensor:
        active: set[int] = _active.__dict__.setdefault("ids", set())
        if id(self) in active:
            return score(self, pred, target, domain, *args, **kwargs)
        self.check_inputs(pred, target)
        active.add(id(self))
        try:
            return score(self, pred, target, domain, *args, **kwargs)
        finally:
            active.discard(id(self))

    return checked
