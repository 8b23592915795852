"""Field-of-view expansion of StyleGAN3 renders, as stylegan3-editing's `utils/fov_expansion.py:Expander`
(anchors-wave2 §2.7): the same codes are rendered up to 9 times with shifted transforms (centre, the 4 edges, the 4
corners) and the strips beyond the frame are hard-pasted around the centre render (no blending).

Shifts in image units (fractions of the width): left `make_transform((+p/res, 0), 0)`, right `(-p/res, 0)`, top
`(0, +p/res)`, bottom `(0, -p/res)`, corners both; each is inverted and composed with the frame's own generator
transform as `transform = frame_t @ inv(shift)`. Canvas (top + res + bottom) x (left + res + right); the left strip
is columns [0:left] of the left render, the right strip columns [res - right:] of the right render, likewise rows
for top / bottom and both for the corners. Needs a generator with a Fourier-feature input (StyleGAN3).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError
from .transforms import make_transform, require_fourier_input


def expand(generator: Any, latents: torch.Tensor, transforms: torch.Tensor | None, left: int = 0, right: int = 0,
           top: int = 0, bottom: int = 0, deltas: dict[str, torch.Tensor] | None = None,
           style_offsets: Any = None) -> torch.Tensor:
    """Render latents [B, L, D] with a field of view widened by the given pixels (>= 0, < the resolution):
    images [B, 3, top + R + bottom, left + R + right]; the centre R x R block is exactly the plain render with
    `transforms` (per-frame inverse transforms [B, 3, 3]; None: identity). `deltas`: tuned - original parameters
    (video PTI). InputError for a generator without a Fourier input or for margins out of range."""
    from .video_pti import render_tuned

    require_fourier_input(generator, "field-of-view expansion", "this")
    res = int(generator.size)
    for name, p in (("left", left), ("right", right), ("top", top), ("bottom", bottom)):
        if not 0 <= p < res:
            raise InputError(f"field-of-view expansion: {name}={p} must be in 0..{res - 1} pixels")
    b = latents.shape[0]
    dev = latents.device
    base = (torch.eye(3, dtype=torch.float64).expand(b, 3, 3) if transforms is None
            else transforms.to(torch.float64).cpu())

    def render(sx: float, sy: float) -> torch.Tensor:
        shift = torch.linalg.inv(make_transform((sx, sy), 0.0))
        return render_tuned(generator, latents, deltas, style_offsets, (base @ shift).to(dev))

    centre = render(0.0, 0.0)
    canvas = centre.new_zeros(b, centre.shape[1], top + res + bottom, left + res + right)
    canvas[:, :, top : top + res, left : left + res] = centre
    cols = {"left": (left, slice(0, left), slice(0, left)),
            "right": (-right, slice(res - right, res), slice(left + res, left + res + right))}
    rows = {"top": (top, slice(0, top), slice(0, top)),
            "bottom": (-bottom, slice(res - bottom, res), slice(top + res, top + res + bottom))}
    for name, (p, src, dst) in cols.items():  # edges left / right
        if p:
            img = render(p / res, 0.0)
            canvas[:, :, top : top + res, dst] = img[:, :, :, src]
    for name, (p, src, dst) in rows.items():  # edges top / bottom
        if p:
            img = render(0.0, p / res)
            canvas[:, :, dst, left : left + res] = img[:, :, src, :]
    for cp, csrc, cdst in cols.values():  # corners
        for rp, rsrc, rdst in rows.values():
            if cp and rp:
                img = render(cp / res, rp / res)
                canvas[:, :, rdst, cdst] = img[:, :, rsrc, csrc]
    return canvas
