"""Landmark alignment of a real clip for `--unaligned` (StyleGAN3 domains): every frame of a video file or a folder of
frames -> its FFHQ-aligned crop (what is inverted), its unaligned frame (what is reconstructed and compared with) and
its user transform (r, tx, ty), exactly as `zoo align` treats a photo (zoo.align.unaligned.unaligned_inputs: dlib's 68
landmarks, the FFHQ quad, stylegan3-editing's `get_stylegan_transform` maths).

Source: yuval-alaluf/stylegan3-editing @ 36ce2b4 `inversion/video/` (`VideoHandler.parse_video`: aligned frames =
per-frame FFHQ alignment, cropped frames = every frame warped with the quad of the *first* frame's alignment; the
transforms between them from the eye landmarks, §2.3), anchors-wave2 §2.5. The per-frame inverse transforms then go
through the pipeline's official smoothing (zoo.video.smoothing.smooth_transforms) and render every frame.

Frames are read at their native resolution (dlib needs the face at its own size); both crops come out at the
domain's resolution. Unaligned frames (`frame`): "first" (default, official) = the first frame's FFHQ quad for every
frame (a fixed crop: the face moves, turns and zooms inside it; frame 0's transform ~ identity); "image" / "face" =
`zoo align`'s upright square of each frame's quad side centred on the picture / on the face (zoo.align.unaligned;
the frame's side follows the face's size, and "face" leaves only the roll). As in `zoo align`, the landmarks are
detected once per frame and carried into both crops through their geometry (no re-detection, documented there).

Frames without a face: `missing="error"` (default) raises one InputError naming the frame; `missing="previous"`
reuses the previous frame's landmarks (the first frame must have a face), noted in the frame's params
(`landmarks_from`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from .clip import Clip
from .clip_io import MAX_FRAMES

Missing = Literal["error", "previous"]
Frame = Literal["first", "image", "face"]


def read_native_frames(path: Path, max_frames: int | None = None) -> tuple[list[np.ndarray], list[str], float]:
    """(RGB uint8 frames [H, W, 3] at their own size, frame names, fps) of a video file (imageio FFMPEG) or a
    folder of frame images (sorted by name, hidden / unreadable files skipped; fps 12). InputError (one line naming
    the path) when nothing can be read."""
    from PIL import Image, UnidentifiedImageError

    frames: list[np.ndarray] = []
    names: list[str] = []
    limit = min(max_frames or MAX_FRAMES, MAX_FRAMES)
    if path.is_dir():
        from ..bench.inputs import folder_files

        for f in folder_files(path):
            if f.name.startswith(".") or len(frames) >= limit:
                continue
            try:
                with Image.open(f) as im:
                    frames.append(np.asarray(im.convert("RGB"), dtype=np.uint8).copy())
            except (UnidentifiedImageError, OSError, ValueError):
                continue
            names.append(f.name)
        if not frames:
            raise InputError(f"{path}: no readable frame images in this folder")
        return frames, names, 12.0
    import imageio.v2 as iio

    try:
        reader = iio.get_reader(str(path), format="FFMPEG")
    except Exception as exc:  # noqa: BLE001 - imageio raises many types for unreadable files
        raise InputError(f"{path}: not a readable video ({type(exc).__name__})") from None
    try:
        fps = float(reader.get_meta_data().get("fps") or 12.0)
        for arr in reader:
            if len(frames) >= limit:
                break
            frames.append(np.ascontiguousarray(np.asarray(arr)[..., :3], dtype=np.uint8))
    except Exception as exc:  # noqa: BLE001
        if not frames:
            raise InputError(f"{path}: cannot decode video frames ({type(exc).__name__})") from None
    finally:
        reader.close()
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    return frames, [f"frame_{i:04d}" for i in range(len(frames))], fps


def _to_tensor(images: list[Any]) -> torch.Tensor:
    x = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1) for im in images])
    return x.to(torch.float32).div_(127.5).sub_(1.0)


def _first_frame_crop(pixels: np.ndarray, landmarks: np.ndarray, size: int, frame_quad: np.ndarray | None
                      ) -> tuple[Image.Image, Image.Image, dict[str, Any]]:
    """(aligned crop, crop of `frame_quad` (None: this frame's own FFHQ quad), {r, tx, ty, quad}) of one frame, with
    zoo.align's geometry: the transform carries the aligned crop into the fixed crop (r signed degrees)."""
    from ..align.ffhq import align_ffhq, ffhq_quad
    from ..align.unaligned import crop_quad, quad_to_crop
    from ..stylegan3.transforms import stylegan_transform

    quad, _ = ffhq_quad(landmarks)
    frame_quad = quad if frame_quad is None else frame_quad
    aligned = align_ffhq(pixels, output_size=size, landmarks=landmarks)
    unaligned = crop_quad(pixels, frame_quad, size)
    r, (tx, ty), _, _ = stylegan_transform(quad_to_crop(landmarks, frame_quad, size),
                                           quad_to_crop(landmarks, quad, size), None, size)
    r = float(r % 360.0)
    return aligned, unaligned, {"r": r - 360.0 if r > 180.0 else r, "tx": float(tx), "ty": float(ty),
                                "quad": frame_quad.tolist()}


def align_clip(path: str | Path, size: int, *, frame: Frame = "first", missing: Missing = "error",
               max_frames: int | None = None, on_frame: Callable[[int, int], None] | None = None) -> Clip:
    """Align every frame of a video file / frame folder (see the module doc) -> Clip whose `frames` are the unaligned
    frames [T, 3, size, size], `aligned` the FFHQ crops [T, 3, size, size] (both float32 in [-1, 1]) and `params`
    per frame {rotation (degrees, signed, CCW), tx, ty (widths, right / down), landmarks_from ("frame" | "previous
    frame"), and for "image" / "face" frames frame_centre, frame_side (source pixels)}; `clip.transforms()` gives
    the inverse transforms.

    Raises: InputError (one line) for an unreadable clip or a frame without a face (missing="error", or the first
    frame with missing="previous"); ZooError when dlib / the landmark model is not installed."""
    from ..align.ffhq import find_landmarks
    from ..align.unaligned import unaligned_inputs

    if frame not in ("first", "image", "face"):
        raise InputError(f"frame must be 'first', 'image' or 'face', got {frame!r}")
    if missing not in ("error", "previous"):
        raise InputError(f"missing must be 'error' or 'previous', got {missing!r}")
    path = Path(path)
    pixels, names, fps = read_native_frames(path, max_frames)
    frames, aligned, params = [], [], []
    previous = first_quad = None
    for i, (px, name) in enumerate(zip(pixels, names)):
        lm = find_landmarks(px)
        source = "frame"
        if lm is None:
            if missing == "previous" and previous is not None:
                lm, source = previous, "previous frame"
            else:
                hint = ("; add --no-face previous to reuse the previous frame's alignment" if missing == "error"
                        else " (the first frame needs a face)")
                raise InputError(f"{path}: no face found in frame {i} ({name}){hint}")
        if frame == "first":
            crop, unaligned, pose = _first_frame_crop(px, lm, size, first_quad if i else None)
            first_quad = np.asarray(pose["quad"]) if i == 0 else first_quad
        else:
            res = unaligned_inputs(px, size, frame, landmarks=lm)
            if res is None:  # pragma: no cover - unaligned_inputs returns None only without landmarks
                raise InputError(f"{path}: frame {i} ({name}) could not be aligned")
            crop, unaligned, p = res
            pose = {"r": p.signed_r, "tx": p.tx, "ty": p.ty, "frame_centre": list(p.frame_centre),
                    "frame_side": p.frame_side}
        frames.append(unaligned)
        aligned.append(crop)
        params.append({"rotation": pose["r"], "tx": pose["tx"], "ty": pose["ty"],
                       **{k: pose[k] for k in ("frame_centre", "frame_side") if k in pose}, "landmarks_from": source})
        previous = lm
        if on_frame is not None:
            on_frame(i + 1, len(pixels))
    name = path.name if path.is_dir() else path.stem
    return Clip(_to_tensor(frames), name or "clip", str(path), fps=fps, params=params, frame_names=names,
                aligned=_to_tensor(aligned))
