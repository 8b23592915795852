"""User transforms of the StyleGAN3 Fourier input, and the (r, tx, ty) of stylegan3-editing from eye landmarks.

Sources: NVlabs/stylegan3 `gen_images.py:make_transform`; yuval-alaluf/stylegan3-editing @ 36ce2b4
`utils/common.py:make_transform`, `utils/alignment_utils.py:get_eyes_coors`, `get_rotation_from_eyes`,
`get_stylegan_transform` (semantics in `shared/reference/sg3/README.md` §3.6 and §4, `anchors-wave2.md` §1.2, §2.3).

Conventions (image coordinates: x to the right, y downwards, unit = image width, origin at the image centre):
* `make_transform(r, tx, ty)` = [[cos r, sin r, tx], [-sin r, cos r, ty], [0, 0, 1]] (r in degrees) is the *image
  motion*: positive r turns the content counter-clockwise on screen, (tx, ty) moves it right / down by that fraction
  of the width.
* The generator's `synthesis.input.transform` holds its **inverse** (`generator_transform`); the Fourier features at
  position p with matrix U equal those at U p with the identity.
* `pose_from_transform(make_transform(r, tx, ty)) == (r, tx, ty)` with r wrapped to (-180, 180].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch

Number = Union[float, int]
PoseLike = Sequence[Union[Number, torch.Tensor]]  # (r_degrees, tx, ty), floats or [B] tensors
TransformLike = Union[torch.Tensor, PoseLike, None]

LEFT_EYE = slice(36, 42)   # 68-point (iBUG / dlib) indices of the left eye (image left)
RIGHT_EYE = slice(42, 48)


def make_transform(r_degrees: Number | torch.Tensor, tx: Number | torch.Tensor = 0.0, ty: Number | torch.Tensor = 0.0,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The image-motion matrix [3, 3] (or [B, 3, 3] for [B] inputs) of NVlabs/stylegan3-editing `make_transform`
    (`translate=(tx, ty)`, `angle=r_degrees`), computed in float64 then cast to `dtype`."""
    r, x, y = (torch.as_tensor(v, dtype=torch.float64) for v in (r_degrees, tx, ty))
    r, x, y = torch.broadcast_tensors(r, x, y)
    a = r / 360.0 * math.pi * 2
    s, c = torch.sin(a), torch.cos(a)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    m = torch.stack([torch.stack([c, s, x], -1), torch.stack([-s, c, y], -1), torch.stack([zero, zero, one], -1)], -2)
    return m.to(dtype)


def invert_transform(m: torch.Tensor) -> torch.Tensor:
    """Matrix inverse of [.., 3, 3] transforms in float64 (np.linalg.inv semantics), returned in m's dtype."""
    return torch.linalg.inv(m.double()).to(m.dtype)


def generator_transform(r_degrees: Number | torch.Tensor, tx: Number | torch.Tensor = 0.0,
                        ty: Number | torch.Tensor = 0.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """What goes into `synthesis.input.transform`: inv(make_transform(r, tx, ty)) [3, 3] or [B, 3, 3], computed
    in float64 and cast (as `gen_images.py` / stylegan3-editing do)."""
    return invert_transform(make_transform(r_degrees, tx, ty)).to(dtype)


def pose_from_transform(m: torch.Tensor, inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(r_degrees, tx, ty) of a rotation + translation matrix [.., 3, 3]; `inverse=True` takes a generator
    (inverse) matrix. r is wrapped to (-180, 180]. Scale/shear are ignored (not representable)."""
    if inverse:
        m = invert_transform(m)
    r = torch.rad2deg(torch.atan2(m[..., 0, 1], m[..., 0, 0]))
    return r, m[..., 0, 2], m[..., 1, 2]


def as_generator_transform(transform: TransformLike, device: torch.device | str | None = None
                           ) -> torch.Tensor | None:
    """Normalise a user transform for the generator: None stays None (use the stored buffer); a tensor [3, 3] /
    [B, 3, 3] is taken as the inverse (buffer) matrix; a pose (r_degrees, tx, ty) is turned into
    inv(make_transform) (float32). Raises ValueError for anything else."""
    if transform is None:
        return None
    if isinstance(transform, torch.Tensor):
        if transform.shape[-2:] != (3, 3) or transform.ndim not in (2, 3):
            raise ValueError(f"a transform tensor must be [3, 3] or [B, 3, 3], got {tuple(transform.shape)}")
        return transform.to(device=device, dtype=torch.float32)
    if isinstance(transform, (tuple, list)) and len(transform) == 3:
        return generator_transform(*transform).to(device)
    raise ValueError("transform must be a [3, 3] / [B, 3, 3] tensor (inverse matrix) or a pose (r_degrees, tx, ty)")


# --------------------------------------------------------------------------------------------- landmarks
def eye_centres(landmarks: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) eye centres [2] (pixels, float64) = means of 68-point landmarks 36-41 and 42-47
    (`get_eyes_coors`). landmarks: [68, 2] (x, y)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be [68, 2] (x, y), got {lm.shape}")
    return lm[LEFT_EYE].mean(axis=0), lm[RIGHT_EYE].mean(axis=0)


def rotation_from_eyes(left_unaligned: Sequence[float], right_unaligned: Sequence[float],
                       left_aligned: Sequence[float], right_aligned: Sequence[float], clip: bool = True) -> float:
    """Angle r (degrees, in [0, 360]) between the eye lines of the unaligned and the aligned face
    (stylegan3-editing `get_rotation_from_eyes`): r = arccos(<u, a>) of the unit right-minus-left eye vectors;
    r = 360 - r when the unaligned right eye is lower (larger y) than the left one.

    `clip=True` (default, a deliberate deviation) clamps the cosine to [-1, 1]: for (near-)parallel eye lines
    rounding can push it above 1, where the official function returns NaN (about 16 % of random integer cases,
    README §5); clipped, it returns 0. `clip=False` reproduces the official NaN.
    """
    u = np.asarray(right_unaligned, np.float64) - np.asarray(left_unaligned, np.float64)
    a = np.asarray(right_aligned, np.float64) - np.asarray(left_aligned, np.float64)
    u = u / np.linalg.norm(u)
    a = a / np.linalg.norm(a)
    cos = float(np.dot(u, a))
    if clip:
        cos = min(1.0, max(-1.0, cos))
    with np.errstate(invalid="ignore"):
        r = float(np.degrees(np.arccos(cos)))
    if right_unaligned[1] > left_unaligned[1]:
        r = 360.0 - r
    return r


def rotate_points_like_pil(points: np.ndarray, r_degrees: float, size: tuple[int, int]) -> np.ndarray:
    """Where PIL `Image.rotate(r)` (counter-clockwise on screen, about the image centre, same canvas) moves pixel
    positions [N, 2] (x, y) of an image of `size` (width, height). Float, not rounded."""
    p = np.asarray(points, np.float64)
    cx, cy = size[0] / 2.0, size[1] / 2.0
    a = math.radians(r_degrees)
    c, s = math.cos(a), math.sin(a)
    x, y = p[:, 0] - cx, p[:, 1] - cy
    return np.stack([cx + c * x + s * y, cy - s * x + c * y], axis=1)


def translation_from_eyes(left_unaligned: Sequence[float], left_rotated_aligned: Sequence[float],
                          aligned_width: int) -> tuple[float, float]:
    """(tx, ty) = (unaligned left-eye centre - rotated-aligned left-eye centre) / aligned image width."""
    d = (np.asarray(left_unaligned, np.float64) - np.asarray(left_rotated_aligned, np.float64)) / aligned_width
    return float(d[0]), float(d[1])


def stylegan_transform(landmarks_unaligned: np.ndarray | torch.Tensor, landmarks_aligned: np.ndarray | torch.Tensor,
                       landmarks_rotated_aligned: np.ndarray | torch.Tensor | None, aligned_size: int,
                       clip: bool = True) -> tuple[float, tuple[float, float], torch.Tensor, torch.Tensor]:
    """stylegan3-editing's `get_stylegan_transform` from 68-point landmarks -> (r, (tx, ty), make_transform [3, 3]
    float64, inverse [3, 3] float64; the inverse goes into the generator).

    `landmarks_rotated_aligned` are the landmarks of the aligned image rotated by r (the official code rotates the
    image with PIL and re-detects them); None rotates the aligned landmarks geometrically instead
    (`rotate_points_like_pil`, no re-detection, no rounding).
    """
    lu, ru = eye_centres(landmarks_unaligned)
    la, ra = eye_centres(landmarks_aligned)
    r = rotation_from_eyes(lu, ru, la, ra, clip=clip)
    if landmarks_rotated_aligned is None:
        lm = rotate_points_like_pil(np.asarray(landmarks_aligned, np.float64), r, (aligned_size, aligned_size))
        lra, _ = eye_centres(lm)
    else:
        lra, _ = eye_centres(landmarks_rotated_aligned)
    t = translation_from_eyes(lu, lra, aligned_size)
    m = make_transform(r, t[0], t[1])
    return r, t, m, invert_transform(m)
