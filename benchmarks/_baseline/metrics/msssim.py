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

import torch
import torch.nn.functional as F

from zoo.errors import InputError



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

    # the 2-D window is an outer product, so the valid 2-D convolution is done as two 1-D passes; the five
    # filtered maps (x, y, x², y², xy) go through one grouped convolution
    g = gaussian_1d(real, sigma, img1.dtype).to(img1.device)
    n = 5 * c
    stack = torch.cat([img1, img2, img1 * img1, img2 * img2, img1 * img2], 1)
    out = F.conv2d(F.conv2d(stack, g.view(1, 1, real, 1).expand(n, 1, real, 1), groups=n),
                   g.view(1, 1, 1, real).expand(n, 1, 1, real), groups=n)
    mu1, mu2, e11, e22, e12 = out.split(c, dim=1)
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
