"""Unaligned inversion inputs: per photo the FFHQ-aligned crop, the *unaligned frame* (an upright square crop of the
same scale) and the StyleGAN3 user transform (r, tx, ty) that carries the aligned crop into that frame.

Source: yuval-alaluf/stylegan3-editing @ 36ce2b4 `prepare_data/preparing_faces_parallel.py` (`--mode align`: the FFHQ
crop; `--mode crop`: an upright crop of the quad's size around the same centre) and `utils/alignment_utils.py:
get_stylegan_transform` (anchors-wave2 §2.3, shared/reference/sg3/README.md §3.6), with the maths of
`zoo.stylegan3.transforms`:
1. eye centres = means of landmarks 36-41 / 42-47 in the unaligned frame and in the aligned crop;
2. r = angle between the two eye lines (degrees; 360 - r when the unaligned right eye is lower);
3. translation = (unaligned left eye - left eye of the aligned crop rotated by r about its centre) / crop width;
4. the generator receives inv(make_transform(r, tx, ty)): a positive r turns the face counter-clockwise on screen,
   (tx, ty) moves it right / down by that fraction of the width.

Deviation (documented): the official code detects landmarks again on the aligned crop, on the unaligned crop and on
the aligned crop after a PIL rotation (three more dlib runs that can fail, issue #40). Here the photo's landmarks are
detected once and carried into both crops through their exact geometry (the FFHQ quad and the upright square), and
the rotation is applied to those points (`rotate_points_like_pil`).

Frames: `frame="face"` (default) = the upright square of the FFHQ quad's side centred on the quad's centre, as the
official crop mode without jitter (then tx, ty ~ 0 and r is the head's roll); `frame="image"` = the upright square
of the same side centred on the photo's centre (the face keeps its place in the picture: tx, ty != 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from ..errors import InputError
from ..stylegan3.transforms import stylegan_transform
from .ffhq import ImageLike, _rgb_array, align_ffhq, ffhq_quad, find_landmarks

Frame = Literal["face", "image"]


@dataclass(frozen=True)
class UnalignedPose:
    """The transform of one photo: r (degrees, [0, 360)), tx, ty (aligned-crop widths), plus the frame's square in
    the photo (centre x, y and side, pixels) and the 68 landmarks' eye centres used (crop pixels)."""

    r: float
    tx: float
    ty: float
    frame_centre: tuple[float, float]
    frame_side: float

    @property
    def signed_r(self) -> float:
        """r wrapped to (-180, 180] (the same transform)."""
        return self.r - 360.0 if self.r > 180.0 else self.r

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "frame_centre": list(self.frame_centre)}


def quad_to_crop(points: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Photo pixel positions [N, 2] -> positions in the `size` px crop whose corners (top-left, bottom-left,
    bottom-right, top-right) are `quad` [4, 2] (a square, so the map is affine; PIL QUAD semantics up to its
    half-pixel offset, which `align_ffhq` applies to the quad as +0.5)."""
    q0, q1, q3 = quad[0], quad[1], quad[3]
    basis = np.stack([(q3 - q0) / size, (q1 - q0) / size], axis=1)  # columns: photo step per crop x / y pixel
    return np.linalg.solve(basis, (np.asarray(points, np.float64) - q0).T).T


def upright_square(centre: np.ndarray, side: float) -> np.ndarray:
    """The quad [4, 2] (top-left, bottom-left, bottom-right, top-right) of an upright square."""
    h = side / 2.0
    cx, cy = float(centre[0]), float(centre[1])
    return np.array([[cx - h, cy - h], [cx - h, cy + h], [cx + h, cy + h], [cx + h, cy - h]], dtype=np.float64)


def crop_quad(pixels: np.ndarray, quad: np.ndarray, size: int) -> Image.Image:
    """The `size` px crop of an RGB uint8 image spanned by `quad` (bilinear; outside the photo: black)."""
    img = Image.fromarray(pixels, "RGB")
    return img.transform((size, size), Image.Transform.QUAD, (quad + 0.5).flatten().tolist(),
                         Image.Resampling.BILINEAR)


def unaligned_inputs(image: ImageLike, size: int = 256, frame: Frame = "face",
                     landmarks: np.ndarray | None = None
                     ) -> tuple[Image.Image, Image.Image, UnalignedPose] | None:
    """(FFHQ-aligned crop, unaligned frame, pose) of the largest face of `image`, or None when no face is found.

    Args:
        image: RGB photo (PIL image or uint8 array H x W x 3).
        size: side of both crops in pixels (the generator's resolution).
        frame: "face" or "image" (see the module doc).
        landmarks: [68, 2] (x, y) landmarks of `image`; None = detect with dlib.

    Returns:
        aligned crop and unaligned frame (RGB, size x size) and the UnalignedPose whose transform carries the aligned
        crop into the frame: `G.synthesis(ws, transform=(pose.r, pose.tx, pose.ty))` renders the frame.

    Raises:
        ZooError: dlib or the landmark model is missing (only when `landmarks` is None). InputError: bad frame/size.
    """
    if frame not in ("face", "image"):
        raise InputError(f"frame must be 'face' or 'image', got {frame!r}")
    pixels = _rgb_array(image)
    lm = find_landmarks(pixels) if landmarks is None else np.asarray(landmarks, np.float64)
    if lm is None:
        return None
    quad, qsize = ffhq_quad(lm)
    aligned = align_ffhq(pixels, output_size=size, landmarks=lm)
    if aligned is None:  # pragma: no cover - align_ffhq returns None only without landmarks
        return None
    h, w = pixels.shape[:2]
    centre = quad.mean(axis=0) if frame == "face" else np.array([w / 2.0, h / 2.0])
    frame_quad = upright_square(centre, qsize)
    unaligned = crop_quad(pixels, frame_quad, size)
    lm_aligned = quad_to_crop(lm, quad, size)
    lm_unaligned = quad_to_crop(lm, frame_quad, size)
    r, (tx, ty), _, _ = stylegan_transform(lm_unaligned, lm_aligned, None, size)
    pose = UnalignedPose(float(r % 360.0), tx, ty, (float(centre[0]), float(centre[1])), float(qsize))
    return aligned, unaligned, pose


TRANSFORMS_FILE = "transforms.json"


def read_transforms_file(path: Any) -> dict[str, tuple[float, float, float]]:
    """{aligned file name: (r, tx, ty)} of a `transforms.json` written by `zoo align`. InputError (one line naming
    the file) when it is missing or not such a file."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (write it with `zoo align PHOTOS --out DIR`)") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable transforms file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("kind") != "zoo align" or not isinstance(data.get("images"), dict):
        raise InputError(f"{path}: not a transforms file of `zoo align` (expected kind 'zoo align' and 'images')")
    out = {}
    for name, entry in data["images"].items():
        try:
            out[str(name)] = (float(entry["r"]), float(entry["tx"]), float(entry["ty"]))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: entry '{name}' lacks numbers r, tx, ty") from None
    return out
