"""MS-SSIM with the semantics of jorge-pessoa/pytorch-msssim, as used by HyperStyle / SG3-editing (anchors §11.1).

* Gaussian window 11 (σ 1.5; shrunk to min(11, H, W) like the reference), **valid** convolution (no padding),
  one window per channel (groups = C); the 11×11 window is applied as two exact 1-D passes (it is separable).
* 5 scales with weights [0.0448, 0.2856, 0.3001, 0.2363, 0.1333] and 2×2 average pooling between scales.
* Dynamic range L inferred at every scale from `img1` (the first argument) as the reference does:
  max > 128 → 255 else 1; min < -0.5 → -1 else 0; L = max - min (so L = 2 for [-1, 1] images);
  or a fixed `val_range`. C1 = (0.01 L)², C2 = (0.03 L)².
* At each scale cs = mean(v1 / v2) and ssim = mean(ssim_map), both over C×H×W (RGB jointly).
* Result Π_{s<5} cs_s^{w_s} · ssim_5^{w_5}; no normalisation or ReLU, so a negative cs / ssim gives NaN.

Everything is per image ([B] out); the reference scripts loop over images one at a time, which is the same.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from zoo.cards import Card
from zoo.errors import InputError
from zoo.metric import Metric

from .resize import Size, prepare_pair

if TYPE_CHECKING:
    from zoo.domain import Domain

MSSSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_1d(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian [size]: exp(-(x - size//2)² / 2σ²) / sum, computed in float64."""
    g = torch.tensor([math.exp(-((x - size // 2) ** 2) / (2.0 * sigma ** 2)) for x in range(size)],
                     dtype=torch.float64)
    return (g / g.sum()).to(dtype)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 2-D Gaussian window [size, size] (the reference's outer product of `gaussian_1d`)."""
    g = gaussian_1d(size, sigma, torch.float64)
    return torch.outer(g, g).to(dtype)


def gaussian_filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Valid correlation of every channel of x [B, C, H, W] with the separable window outer(g, g) ->
    [B, C, H - k + 1, W - k + 1], as two depthwise 1-D convolutions. On the CPU the maps go channels_last first:
    oneDNN's depthwise kernels are an order of magnitude faster in that layout (same sums)."""
    c, k = x.shape[1], g.shape[0]
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    return F.conv2d(F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c),
                    g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def infer_value_range(img: torch.Tensor) -> torch.Tensor:
    """Per-image dynamic range L [B] as in the reference: (255 if max > 128 else 1) - (-1 if min < -0.5 else 0)."""
    flat = img.flatten(1)
    hi = torch.where(flat.amax(1) > 128, 255.0, 1.0)
    lo = torch.where(flat.amin(1) < -0.5, -1.0, 0.0)
    return (hi - lo).to(img.dtype)


def ssim_and_cs(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11, sigma: float = 1.5,
                val_range: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-scale SSIM and contrast-structure term per image, both [B] (means over C × valid H × valid W)."""
    b, c, h, w = img1.shape
    real = min(window_size, h, w)
    if val_range is None:
        L = infer_value_range(img1).view(b, 1, 1, 1)
    else:
        L = torch.full((b, 1, 1, 1), float(val_range), dtype=img1.dtype, device=img1.device)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2

    # the 2-D window is an outer product, so the valid 2-D convolution is done as two 1-D passes over the five
    # stacked maps (x, y, x², y², xy)
    g = gaussian_1d(real, sigma, img1.dtype).to(img1.device)
    stack = torch.cat([img1, img2, img1 * img1, img2 * img2, img1 * img2], 1)
    mu1, mu2, e11, e22, e12 = gaussian_filter_valid(stack, g).split(c, dim=1)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = e11 - mu1_sq
    sigma2_sq = e22 - mu2_sq
    sigma12 = e12 - mu1_mu2
    v1 = 2.0 * sigma12 + c2
    v2 = sigma1_sq + sigma2_sq + c2
    cs = (v1 / v2).flatten(1).mean(1)
    ssim_map = ((2 * mu1_mu2 + c1) * v1) / ((mu1_sq + mu2_sq + c1) * v2)
    return ssim_map.flatten(1).mean(1), cs


def ms_ssim(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11, sigma: float = 1.5,
            weights: tuple[float, ...] = MSSSIM_WEIGHTS, val_range: float | None = None) -> torch.Tensor:
    """MS-SSIM per image [B] of img1, img2 [B, C, H, W] (jorge-pessoa semantics; see the module docstring).

    Needs H, W >= 2**(len(weights)-1) (16 for 5 scales; InputError below); 256×256 keeps the full 11-tap window at
    every scale (176×176 is the smallest that does; the `MSSSIM` metric requires it).
    """
    need = 2 ** (len(weights) - 1)
    if min(img1.shape[-2:]) < need or min(img2.shape[-2:]) < need:
        raise InputError(f"ms_ssim: images must be at least {need}x{need} px for {len(weights)} scales, got "
                         f"{tuple(img1.shape[-2:])} and {tuple(img2.shape[-2:])}")
    w = torch.tensor(weights, dtype=img1.dtype, device=img1.device)
    ssims, css = [], []
    for i in range(len(weights)):
        s, cs = ssim_and_cs(img1, img2, window_size, sigma, val_range)
        ssims.append(s)
        css.append(cs)
        if i < len(weights) - 1:
            img1, img2 = F.avg_pool2d(img1, 2), F.avg_pool2d(img2, 2)
    cs_all = torch.stack(css[:-1], 0)  # [S-1, B]
    return torch.prod(cs_all ** w[:-1, None], 0) * ssims[-1] ** w[-1]


class MSSSIM(Metric):
    """MS-SSIM (jorge-pessoa pytorch-msssim semantics) on [-1, 1] RGB images at `size` (default 256×256)."""

    name = "ms_ssim"
    higher_is_better = True
    version = "1"
    # the full 11-px window at all 5 scales (4 halvings): 11 * 2**4 = 176 (the reference shrinks the window below)
    min_size = 176
    min_size_reason = "5 scales of an 11-px window: 11 x 2^4"
    card = Card(
        title="Multiscale structural similarity for image quality assessment",
        authors="Z. Wang, E. P. Simoncelli, A. C. Bovik",
        year=2003,
        url="https://doi.org/10.1109/ACSSC.2003.1292216",
        code_url="https://github.com/jorge-pessoa/pytorch-msssim",
        notes="Reimplementation of jorge-pessoa pytorch-msssim as used by HyperStyle / SG3-editing: window 11, "
              "σ 1.5, valid conv, 5 scales, weights [0.0448, 0.2856, 0.3001, 0.2363, 0.1333], L inferred from the "
              "prediction (2 for [-1, 1]); RGB jointly; NaN when a cs term is negative.",
    )

    def __init__(self, device: str | torch.device = "cpu", size: Size | None = 256,
                 val_range: float | None = None) -> None:
        super().__init__(device)
        self.size = size
        self.val_range = val_range
        self.check_size_option()

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        """pred, target [B, 3, H, W] in [-1, 1] (sides >= 176 px when size=None) -> MS-SSIM [B] (1 for identical
        images, NaN where undefined). InputError for other inputs (`check_inputs`)."""
        p, t = prepare_pair(pred, target, self.size, self.device)
        return ms_ssim(p, t, val_range=self.val_range)
