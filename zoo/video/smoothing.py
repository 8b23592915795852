"""Temporal smoothing of per-frame latents and transforms, as stylegan3-editing's video pipeline does it.

Source: yuval-alaluf/stylegan3-editing @ 36ce2b4, `inversion/video/post_processing.py` (`smooth_ws`,
`postprocess_and_smooth_inversions`); facts in anchors-wave2 §2.5 and `shared/reference/sg3/README.md` §3.5.

* `smooth_ws`: a centred 5-tap window along time (dim 0) with the symmetric kernel [0.25, 0.75, 1, 0.75, 0.25] / 3
  (weights 1/12, 1/4, 1/3, 1/4, 1/12; they sum to 1). **No padding**: T frames give T - 4, output t is centred on
  input t + 2. The terms are added in the official order (centre, later 0.75, earlier 0.75, earlier 0.25,
  later 0.25, then / 3), so float32 results match the official code bit for bit.
* `average_fine_codes`: before smoothing, the official pipeline replaces the fine codes `latents[:, 9:]` (of the
  16 StyleGAN3 codes) by their mean over all frames. Which codes are "fine" depends on the generator: `fine_from`
  is an option (see `default_fine_from`).
* Transforms (the per-frame *inverse* 3x3 matrices written into an SG3 generator's `synthesis.input.transform`) go
  through the same `smooth_ws`, element-wise, without re-orthonormalisation.
* `edges="replicate"` (not official; stylegan3-editing issue #44): the first and last frames are repeated twice
  before smoothing so that no frame is lost (T in, T out).
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import InputError

#: the official window (weights x 3), earliest frame first
KERNEL_X3: tuple[float, float, float, float, float] = (0.25, 0.75, 1.0, 0.75, 0.25)
#: the official fine-code start for StyleGAN3's 16 codes (codes 9..15 are averaged over the clip)
OFFICIAL_FINE_FROM = 9
OFFICIAL_NUM_WS = 16
WINDOW = len(KERNEL_X3)
HALF = WINDOW // 2

Edges = Literal["none", "replicate"]


def smooth_ws(x: torch.Tensor) -> torch.Tensor:
    """The official `smooth_ws`: x [T, ...] (T >= 5) -> [T - 4, ...], out[t] = (0.25 x[t] + 0.75 x[t+1] + x[t+2] +
    0.75 x[t+3] + 0.25 x[t+4]) / 3, evaluated in the official term order. Any float dtype; dtype kept.
    Raises InputError for fewer than 5 frames."""
    if x.shape[0] < WINDOW:
        raise InputError(f"smoothing needs at least {WINDOW} frames, got {x.shape[0]}")
    return (x[2:-2] + 0.75 * x[3:-1] + 0.75 * x[1:-3] + 0.25 * x[:-4] + 0.25 * x[4:]) / 3


def replicate_edges(x: torch.Tensor, n: int = HALF) -> torch.Tensor:
    """x [T, ...] -> [T + 2n, ...] with the first and last frames repeated n times (issue #44's fix)."""
    return torch.cat([x[:1].expand(n, *x.shape[1:]), x, x[-1:].expand(n, *x.shape[1:])])


def smooth_sequence(x: torch.Tensor, edges: Edges = "none") -> torch.Tensor:
    """`smooth_ws` along dim 0; edges "none" (official): [T - 4, ...]; "replicate": [T, ...]."""
    if edges == "replicate":
        if x.shape[0] < 1:
            raise InputError("smoothing needs at least 1 frame")
        return smooth_ws(replicate_edges(x))
    if edges != "none":
        raise InputError(f"edges must be 'none' or 'replicate', got {edges!r}")
    return smooth_ws(x)


def default_fine_from(n_styles: int) -> int:
    """The first "fine" code index for a generator with `n_styles` codes.

    16 codes (StyleGAN3, the official setting): 9. Other generators (StyleGAN2, e.g. peeps' 8 codes at 32 px): the
    two codes of the last resolution block (n_styles - 2; in StyleGAN2 they drive the final-resolution conv and
    ToRGB, i.e. colour and fine texture, not pose). An option everywhere (`fine_from`); docs/video.md reports
    the measured alternatives."""
    if n_styles == OFFICIAL_NUM_WS:
        return OFFICIAL_FINE_FROM
    return max(1, n_styles - 2)


def average_fine_codes(latents: torch.Tensor, fine_from: int | None) -> torch.Tensor:
    """latents [T, n_styles, D] -> a copy whose codes fine_from.. are their mean over the T frames (official
    `latents[:, 9:, :] = mean`). None or fine_from >= n_styles: unchanged copy. InputError for fine_from < 0."""
    out = latents.clone()
    if fine_from is None or fine_from >= latents.shape[1]:
        return out
    if fine_from < 0:
        raise InputError(f"fine_from must be >= 0 (or none), got {fine_from}")
    out[:, fine_from:] = latents[:, fine_from:].mean(0, keepdim=True)
    return out


def smooth_latents(latents: torch.Tensor, fine_from: int | None, edges: Edges = "none") -> torch.Tensor:
    """The official latent post-processing: fine codes averaged over the clip, then `smooth_ws`.
    latents [T, n_styles, D] -> [T - 4 | T, n_styles, D]."""
    return smooth_sequence(average_fine_codes(latents, fine_from), edges)


def smooth_transforms(transforms: torch.Tensor, edges: Edges = "none") -> torch.Tensor:
    """Per-frame 3x3 (inverse) transforms [T, 3, 3] -> [T - 4 | T, 3, 3], element-wise `smooth_ws` (official; no
    re-orthonormalisation). Pass float64 to match the official video path (it keeps numpy float64 matrices)."""
    if transforms.ndim != 3 or transforms.shape[1:] != (3, 3):
        raise InputError(f"transforms must be [T, 3, 3], got {tuple(transforms.shape)}")
    return smooth_sequence(transforms, edges)


def kept_frames(n_frames: int, smoothed: bool, edges: Edges = "none") -> list[int]:
    """Indices of the input frames the (smoothed) output frames correspond to: 2..T-3 without padding, else all."""
    if smoothed and edges == "none":
        return list(range(HALF, n_frames - HALF))
    return list(range(n_frames))
