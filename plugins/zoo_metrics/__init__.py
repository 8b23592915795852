"""Built-in reconstruction metrics (anchors §11): l2, lpips, ms_ssim, id.

Registered through the `zoo` entry-point group like any third-party plugin (`metrics = "zoo_metrics"`).
All metrics take images [B, 3, H, W] in [-1, 1] and return per-image scores [B]; the pixel metrics resize both
images to `size` (default 256×256, bilinear, antialiased when downsampling) first. Inputs are validated by
`zoo.metric.Metric.check_inputs` (shapes, value range, minimum side: lpips 31 px, ms_ssim 176 px) -> InputError.
"""

from __future__ import annotations

import zoo

from .identity import IdentitySimilarity
from .l2 import L2
from .lpips_metric import LPIPS
from .msssim import MSSSIM, ms_ssim
from .weights import prepare_metric_weights

METRICS = (L2, LPIPS, MSSSIM, IdentitySimilarity)

__all__ = ["METRICS", "L2", "LPIPS", "MSSSIM", "IdentitySimilarity", "ms_ssim", "prepare_metric_weights"]


@zoo.hookimpl
def register_metrics(register) -> None:
    """Register the built-in metric classes."""
    for cls in METRICS:
        register(cls)
