"""Pure-PyTorch StyleGAN2 ops (rosinality semantics, no CUDA extensions).

`upfirdn2d` follows rosinality's `upfirdn2d_native`: upsample by zero insertion, pad (negative pads crop),
true 2-D convolution with the (flipped) FIR kernel, keep every `down`-th sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def make_kernel(k: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Separable FIR kernel normalised to sum 1: outer(k, k) / sum. Returns [kh, kw] float32."""
    k = torch.as_tensor(k, dtype=torch.float32, device="cpu")  # CPU even under a meta-device context (fast)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample, FIR-filter and downsample each channel of `x` [B, C, H, W]; same padding on both axes.

    Output size is (H*up + pad0 + pad1 - kh) // down + 1.
    """
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    p0, p1 = pad
    out = x
    if up > 1:
        out = out.reshape(b, c, h, 1, w, 1)
        out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])
        out = out.reshape(b, c, h * up, w * up)
    out = F.pad(out, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:
        out = out[:, :, max(-p0, 0) : out.shape[2] - max(-p1, 0), max(-p0, 0) : out.shape[3] - max(-p1, 0)]
    # depthwise (groups=C) convolution: much faster on CPU than folding channels into the batch
    weight = torch.flip(kernel, [0, 1]).to(out).view(1, 1, kh, kw).expand(c, 1, kh, kw)
    out = F.conv2d(out, weight, groups=c)
    if down > 1:
        out = out[:, :, ::down, ::down]
    return out


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, negative_slope: float = 0.2, scale: float = SQRT2) -> torch.Tensor:
    """`leaky_relu(x + bias, 0.2) * sqrt(2)`; `bias` [C] is broadcast on dim 1 (works for [B, C] and [B, C, H, W])."""
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape).to(x.dtype), negative_slope) * scale
