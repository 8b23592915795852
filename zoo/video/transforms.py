"""Per-frame image transforms (rotation r, translation tx, ty) in StyleGAN3's convention, and the generator capability
check for everything that needs them.

Convention (NVlabs `gen_images.py:make_transform`, stylegan3-editing `utils/common.py`; shared/reference/sg3/README.md
§4 "How the user transform acts"): `make_transform((tx, ty), r)` = [[cos r, sin r, tx], [-sin r, cos r, ty],
[0, 0, 1]] with r in degrees; a positive r turns the content counter-clockwise on screen and (tx, ty) moves it
right / down by that fraction of the image width. A StyleGAN3 generator's `synthesis.input.transform` holds the
**inverse** of the wanted motion, and that inverse is what the video pipeline smooths.

Rendering with a transform (unaligned frames), freezing the Fourier-feature input in video PTI and field-of-view
expansion need a generator with a Fourier-feature input (StyleGAN3, `zoo/stylegan3`); `require_fourier_input` says
so in one line for any other generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import InputError


def make_transform(translate: Sequence[float], angle_deg: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The forward 3x3 image transform of (tx, ty) and r degrees (see the module doc): tensor [3, 3] of `dtype`."""
    r = math.radians(float(angle_deg))
    c, s = math.cos(r), math.sin(r)
    return torch.tensor([[c, s, float(translate[0])], [-s, c, float(translate[1])], [0.0, 0.0, 1.0]], dtype=dtype)


def inverse_transforms(params: Sequence[dict[str, float]], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Per-frame inverse transforms [T, 3, 3] (what goes into `synthesis.input.transform`) from dicts with
    `rotation` (degrees, CCW), `tx`, `ty` (fractions of the width, right / down)."""
    if not params:
        return torch.empty(0, 3, 3, dtype=dtype)
    return torch.stack([torch.linalg.inv(make_transform((p["tx"], p["ty"]), p["rotation"], dtype)) for p in params])


def has_fourier_input(generator: Any) -> bool:
    """True for a generator whose synthesis starts from Fourier features with a user transform (StyleGAN3 layout:
    `generator.synthesis.input.transform`)."""
    synthesis = getattr(generator, "synthesis", None)
    return hasattr(getattr(synthesis, "input", None), "transform")


def require_fourier_input(generator: Any, feature: str, domain_name: str) -> None:
    """InputError naming `feature` unless `generator` has a Fourier-feature input (StyleGAN3)."""
    if not has_fourier_input(generator):
        kind = type(generator).__name__
        raise InputError(f"{feature} needs an SG3 domain (a StyleGAN3 generator with a Fourier-feature input); domain "
                         f"'{domain_name}' has a {kind} (StyleGAN2) generator: drop the option or use an SG3 domain")
