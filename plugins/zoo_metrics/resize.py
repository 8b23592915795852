"""Input checks and the comparison-size resize shared by the pixel metrics (anchors §11.1).

The papers' evaluation scripts load both images with PIL, `Resize((256, 256))` (bilinear; PIL antialiases when it
downsamples) and normalise to [-1, 1]. Here the images are already tensors in [-1, 1], so the same resize is done
with `F.interpolate(mode="bilinear", antialias=True when downsampling)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.errors import InputError

Size = int | tuple[int, int]


def as_hw(size: Size) -> tuple[int, int]:
    """`256` -> (256, 256); `(192, 256)` -> (192, 256) (height, width)."""
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def check_images(x: torch.Tensor, what: str = "images") -> None:
    """Raise InputError unless `x` is a float tensor [B, C, H, W] with C in {1, 3}."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] not in (1, 3):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{what} must be a tensor [B, 3, H, W] in [-1, 1], got {shape}")
    if not x.is_floating_point():
        raise InputError(f"{what} must be a float tensor in [-1, 1], got dtype {x.dtype}")


def resize_to(x: torch.Tensor, size: Size) -> torch.Tensor:
    """Bilinear resize of [B, C, H, W] to `size` (antialiased when any side shrinks); a no-op at the right size."""
    h, w = as_hw(size)
    if tuple(x.shape[-2:]) == (h, w):
        return x
    down = h < x.shape[-2] or w < x.shape[-1]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=down)


def prepare_pair(pred: torch.Tensor, target: torch.Tensor, size: Size | None,
                 device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a (pred, target) pair, move it to `device` as float32 and resize both to `size` (None: keep).

    pred, target: [B, C, H, W] in [-1, 1], same B and C (H, W may differ when `size` is given).
    Returns two tensors [B, C, h, w].
    """
    check_images(pred, "pred")
    check_images(target, "target")
    if pred.shape[:2] != target.shape[:2]:
        raise InputError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in batch or channels")
    if size is None and pred.shape != target.shape:
        raise InputError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in size")
    dtype = pred.dtype if pred.dtype == torch.float64 else torch.float32
    pred = pred.to(device=device, dtype=dtype)
    target = target.to(device=device, dtype=dtype)
    if size is not None:
        pred, target = resize_to(pred, size), resize_to(target, size)
    return pred, target
