"""Pieces shared by the optimisation-based inverters: a differentiable LPIPS with cached target features, the Karras
learning-rate schedule, the noise regulariser, per-image early stopping and per-image time accounting.

All per-image quantities are computed per sample and *summed* over the batch, so the gradient of image b's
parameters is exactly the gradient of image b's own loss (Adam is element-wise): a batch of images is optimised as
if each image were optimised alone.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from zoo_metrics.lpips_net import LPIPSAlex

_LPIPS_CACHE: dict[str, LPIPSAlex] = {}


def check_option_applies(options: Any, name: str, applies: bool, why: str) -> None:
    """Refuse an option that was set (away from its dataclass default) but cannot apply, instead of ignoring it.

    Raises InputError `option <name>=<value> has no effect: <why>`.
    """
    from zoo.errors import InputError

    default = next(f.default for f in dataclasses.fields(options) if f.name == name)
    value = getattr(options, name)
    if value != default and not applies:
        raise InputError(f"option {name}={value} has no effect: {why}")


def lpips_network(device: str | torch.device = "cpu") -> LPIPSAlex:
    """LPIPS-AlexNet v0.1 (zoo_metrics' `LPIPSAlex`: lpips.LPIPS(net='alex', version='0.1')'s weights and math, with
    the real ImageNet AlexNet backbone loaded by `build_lpips_alex`, never random weights; raises CheckpointError with
    the fix when the backbone is missing). `model(x, y)` -> [B, 1, 1, 1] as lpips.LPIPS. Frozen, eval mode, cached
    per device for the whole process."""
    key = str(torch.device(device))
    if key not in _LPIPS_CACHE:
        from zoo_metrics.lpips_metric import build_lpips_alex
        from zoo_metrics.lpips_net import LPIPSAlex

        model, _ = build_lpips_alex(device)
        _LPIPS_CACHE[key] = LPIPSAlex.from_lpips(model)
    return _LPIPS_CACHE[key]


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of [B, C, H, W] to size x size, antialiased when shrinking (the LPIPS metric's resize)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    down = size < x.shape[-1] or size < x.shape[-2]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=down)


class Perceptual:
    """Differentiable LPIPS-AlexNet v0.1 distance split into `features` and `distance`, so a target's features are
    computed once per inversion instead of at every step (the NVlabs projector does the same with its VGG).

    Images [B, 3, H, W] in [-1, 1] are resized to `size` x `size` first (None: used as they are).
    `distance(features(x), features(y))` equals `lpips_model(resize(x), resize(y)).flatten()`.
    """

    def __init__(self, model: LPIPSAlex, size: int | None) -> None:
        self.model = model
        self.size = size

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.size is not None:
            x = resize_to(x, self.size)
        return self.model.features(x)

    def distance(self, f0: Sequence[torch.Tensor], f1: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-image LPIPS [B] between two feature lists."""
        return self.model.distance(f0, f1)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(x), self.features(y))


def select_features(feats: Sequence[torch.Tensor], idx: Sequence[int]) -> list[torch.Tensor]:
    if len(idx) == feats[0].shape[0] and list(idx) == list(range(len(idx))):
        return list(feats)
    t = torch.as_tensor(list(idx), dtype=torch.long, device=feats[0].device)
    return [f.index_select(0, t) for f in feats]


def resolve_lpips_size(option: int | None, generator_size: int, official_native: bool = False) -> int | None:
    """LPIPS working size. `option` None = auto: 256 for the projectors (both official projectors compare at 256),
    and for PTI (`official_native`, which compares at the generator's resolution) the generator's resolution when it
    is >= 256, else 256 (AlexNet on a 32 px image has 1x1 maps from conv3 on; 256 is also what the LPIPS metric of the
    bench uses). 0 = the generator's resolution (no resize)."""
    if option is None:
        if official_native and generator_size >= 256:
            return None
        return 256
    if option <= 0:
        return None
    return int(option)


def karras_lr(t: float, lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """NVlabs / rosinality projector schedule at progress t = step / steps: linear warm-up over the first `rampup`,
    cosine ramp-down over the last `rampdown` (lr is 0 at step 0, as in the official code)."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp = ramp * min(1.0, t / rampup)
    return lr * ramp


def noise_regularize(noises: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image noise regulariser [B] of noise maps [B, 1, R, R]: for every map and pyramid level (2x2 mean pooling
    until 8x8), mean(n * roll(n, 1, x))^2 + mean(n * roll(n, 1, y))^2, means taken per image.

    This is rosinality's reshape-mean pyramid, which is numerically the NVlabs avg_pool2d(2) pyramid (both average
    non-overlapping 2x2 blocks); the only change is that the means are per image instead of over the batch.
    """
    total = None
    for n in noises:
        while True:
            r = (n * torch.roll(n, shifts=1, dims=3)).mean((1, 2, 3)).pow(2) \
                + (n * torch.roll(n, shifts=1, dims=2)).mean((1, 2, 3)).pow(2)
            total = r if total is None else total + r
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return total


@torch.no_grad()
def renormalize_(n: torch.Tensor) -> None:
    """Zero mean, unit variance per map (NVlabs: buf -= buf.mean(); buf *= buf.square().mean().rsqrt())."""
    n.sub_(n.mean())
    n.mul_(n.square().mean().rsqrt())


class Patience:
    """Per-image early stopping: image b stops once its loss has not improved by more than `tol` on its best value for
    `patience` consecutive steps. patience <= 0 disables it."""

    def __init__(self, n: int, patience: int, tol: float) -> None:
        self.patience = patience
        self.tol = tol
        self.best = [math.inf] * n
        self.since = [0] * n

    def update(self, idx: Sequence[int], values: torch.Tensor) -> list[int]:
        """Record this step's per-image `values` for images `idx`; returns the images that should stop now."""
        if self.patience <= 0:
            return []
        stop = []
        for b, v in zip(idx, values.detach().cpu().tolist()):
            if v < self.best[b] - self.tol:
                self.best[b], self.since[b] = v, 0
            else:
                self.since[b] += 1
                if self.since[b] >= self.patience:
                    stop.append(b)
        return stop


class ImageClock:
    """Per-image wall-clock seconds of a batched run: each timed region is split evenly among the images that took
    part in it (so an image that stopped early is charged only for the steps it ran)."""

    def __init__(self, n: int) -> None:
        self.seconds = [0.0] * n
        self._t = self.now()

    @staticmethod
    def now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def charge(self, idx: Sequence[int]) -> None:
        """Charge the time since the previous charge to images `idx` (evenly)."""
        t = self.now()
        if idx:
            share = (t - self._t) / len(idx)
            for b in idx:
                self.seconds[b] += share
        self._t = t

    def skip(self) -> None:
        """Start a new region without charging anybody (e.g. after an untimed step)."""
        self._t = self.now()

    def tensor(self) -> torch.Tensor:
        return torch.tensor(self.seconds, dtype=torch.float64)


@torch.no_grad()
def w_statistics(generator, n: int, seed: int = 123) -> tuple[torch.Tensor, float]:
    """(w_avg [1, D], w_std) of `n` mapped N(0, I) z drawn on the CPU with `torch.Generator().manual_seed(seed)`;
    w_std = sqrt(sum ||w - w_avg||^2 / n) as in both official projectors (NVlabs uses RandomState(123))."""
    dev = generator.device
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for chunk in range(0, n, 4096):
        z = torch.randn(min(4096, n - chunk), generator.style_dim, generator=gen).to(dev)
        ws.append(generator.style(z))
    w = torch.cat(ws)
    w_avg = w.mean(0, keepdim=True)
    w_std = float(((w - w_avg).pow(2).sum() / n).sqrt())
    return w_avg, w_std


# Documented settings for the embedded 32 px `peeps` domain where they differ from the paper defaults
# (applied by `zoo bench` through `Inverter.embedded_options()` when every benchmarked domain is embedded).
# Sized so that the default `zoo bench` fits 15 minutes on 2 CPU cores. Measured on 4 peeps test images (1 thread,
# busy box; bench LPIPS at 256 / MSE): optim 150 steps @ LPIPS-128 0.320 / 0.190 (7.9 s/img), 300 @ 128 0.308 /
# 0.175 (14 s/img), 300 @ 256 0.276 / 0.161 (37 s/img). LPIPS at 128 px keeps most of the gain of more steps at
# a third of the cost of 256 px; 64 px transferred poorly to the 256 px metric.
# PTI (same 4 images; bench LPIPS / 32 px MSE): the official pivot schedule (peak lr 0.01) under-fits in 100 steps
# (pivot 0.382 / 0.325); the projector's lr 0.1 for 200 steps gives 0.326 / 0.192. Tuning 100 steps at the official
# lr 3e-4 reaches 0.217 / 0.101, at 1e-3 0.162 / 0.065 (200 steps at 3e-4: 0.167 / 0.068 for 1.5x the time): the
# 0.8 M-parameter generator needs a larger step than the 30 M-parameter one the official 3e-4 x 350 steps is for.
EMBEDDED: dict[str, dict[str, object]] = {
    "optim": {"steps": 200, "mse": 1.0, "lpips_size": 128},
    "optim_wplus": {"steps": 200, "mse": 1.0, "lpips_size": 128},
    "pti": {"pivot_steps": 200, "pivot_lr": 0.1, "pivot_mse": 1.0, "steps": 100, "lr": 1e-3, "lpips_size": 128},
    "idinvert": {"lpips_size": 128},
    "idinvert_encoder": {},
}


class EmbeddedOptionsMixin:
    """`embedded_options()` from the EMBEDDED table by the inverter's registered name."""

    name: str

    @classmethod
    def embedded_options(cls) -> dict[str, object]:
        return dict(EMBEDDED.get(cls.name, {}))
