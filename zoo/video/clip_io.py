"""Reading clips (a video file, a folder of frames, or a domain's embedded clip) and writing mp4 files.

Video files are decoded and encoded with imageio's FFMPEG plugin and the ffmpeg binary shipped in the
`imageio-ffmpeg` wheel (no system ffmpeg needed). Frames of another size are centre-cropped to a square and resized
with the domain's resampling, exactly as `zoo invert` loads images (zoo.bench.inputs.load_image_file).

Embedded clips: `embedded:NAME[:FRAMES]`. A domain plugin offers clips by shipping a module `clips` next to its
domain class (e.g. `zoo_peeps.clips`) with `clip_names()` and `make_clip(name, n_frames, size)`; see docs/video.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import InputError
from .clip import Clip

if TYPE_CHECKING:
    from ..domain import Domain

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif")
EMBEDDED_PREFIX = "embedded:"
MAX_FRAMES = 10_000


def load_clip(spec: str, domain: Domain, *, max_frames: int | None = None) -> Clip:
    """CLIP argument -> Clip at the domain's resolution.

    spec: a video file (VIDEO_SUFFIXES), a folder of frame images (sorted by name), or `embedded:NAME[:FRAMES]`.
    max_frames: keep only the first frames (None: all; embedded clips: their length when FRAMES is not given).
    Raises InputError (one line naming the clip) for a missing path, an unreadable video, a folder without images,
    an unknown embedded clip or a domain without embedded clips."""
    path = Path(spec)
    if spec.startswith(EMBEDDED_PREFIX):
        clip = embedded_clip(domain, spec[len(EMBEDDED_PREFIX):], max_frames)
    elif path.is_dir():
        clip = read_frame_folder(path, domain.resolution, domain.resample)
    elif path.is_file():
        clip = read_video(path, domain.resolution, domain.resample, max_frames)
    else:
        hint = f" (embedded clips: {EMBEDDED_PREFIX}NAME, e.g. {EMBEDDED_PREFIX}mixed)" if ":" not in spec else ""
        raise InputError(f"{spec}: no such video file or folder of frames{hint}")
    return clip.head(max_frames) if max_frames else clip


def embedded_clip_module(domain: Domain) -> Any | None:
    """The `clips` module of the domain's plugin package (None when it has none)."""
    package = type(domain).__module__.rpartition(".")[0]
    if not package:
        return None
    try:
        return importlib.import_module(f"{package}.clips")
    except ModuleNotFoundError as exc:
        if exc.name == f"{package}.clips":
            return None
        raise


def embedded_clip(domain: Domain, text: str, max_frames: int | None = None) -> Clip:
    """`NAME[:FRAMES]` of the domain's embedded clips -> Clip (FRAMES, else max_frames, else the clip's default)."""
    module = embedded_clip_module(domain)
    if module is None:
        raise InputError(f"{EMBEDDED_PREFIX}{text}: domain '{domain.name}' has no embedded clips; pass a video file "
                         "or a folder of frames")
    name, _, frames = text.partition(":")
    names = list(module.clip_names())
    if name not in names:
        raise InputError(f"{EMBEDDED_PREFIX}{text}: unknown clip '{name}' on {domain.name} (known: {', '.join(names)})")
    kwargs: dict[str, Any] = {"size": domain.resolution}
    if frames:
        try:
            kwargs["n_frames"] = int(frames)
        except ValueError:
            raise InputError(f"{EMBEDDED_PREFIX}{text}: FRAMES must be an integer, e.g. "
                             f"{EMBEDDED_PREFIX}{name}:24") from None
    elif max_frames:
        kwargs["n_frames"] = max_frames
    return module.make_clip(name, **kwargs)


def read_frame_folder(folder: Path, resolution: int, resample: str = "bilinear") -> Clip:
    """A folder of frame images (sorted by file name; hidden and non-image files skipped) -> Clip whose frame names
    are the file names."""
    from ..bench.inputs import folder_files, load_image_file

    files = [f for f in folder_files(folder) if not f.name.startswith(".")]
    frames, names = [], []
    for f in files:
        try:
            x, _ = load_image_file(f, resolution, resample)
        except InputError:
            continue
        frames.append(x)
        names.append(f.name)  # with its suffix: a.png and a.jpg stay two frames (zoo.io.base_name: a_png, a_jpg)
    if not frames:
        raise InputError(f"{folder}: no readable frame images in this folder")
    return Clip(torch.stack(frames), folder.name or "clip", str(folder), frame_names=names)


def read_video(path: Path, resolution: int, resample: str = "bilinear", max_frames: int | None = None) -> Clip:
    """Decode a video file (imageio FFMPEG plugin) -> Clip with its fps; frames square-cropped and resized."""
    import imageio.v2 as iio
    from PIL import Image

    from ..bench.inputs import RESAMPLE

    try:
        reader = iio.get_reader(str(path), format="FFMPEG")
    except Exception as exc:  # noqa: BLE001 - imageio raises many types for unreadable files
        raise InputError(f"{path}: not a readable video ({type(exc).__name__}: {' '.join(str(exc).split())[:100]})"
                         ) from None
    frames = []
    try:
        fps = float(reader.get_meta_data().get("fps") or 12.0)
        for i, arr in enumerate(reader):
            if max_frames and i >= max_frames or i >= MAX_FRAMES:
                break
            im = Image.fromarray(np.asarray(arr)[..., :3])
            w, h = im.size
            if w != h:
                s = min(w, h)
                im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            if im.size != (resolution, resolution):
                im = im.resize((resolution, resolution), RESAMPLE[resample])
            frames.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
    except Exception as exc:  # noqa: BLE001
        if not frames:
            raise InputError(f"{path}: cannot decode video frames ({type(exc).__name__})") from None
    finally:
        reader.close()
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    x = torch.stack(frames).to(torch.float32).div_(127.5).sub_(1.0)
    return Clip(x, path.stem, str(path), fps=fps)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[T, 3, H, W] in [-1, 1] -> uint8 [T, H, W, 3] (clamped, (x + 1) * 127.5 rounded, as zoo.io.encode_png)."""
    x = ((frames.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def encode_mp4(frames: torch.Tensor, path: Path, fps: float, scale: int = 1) -> None:
    """Write frames [T, 3, H, W] in [-1, 1] as an H.264 mp4 (yuv420p, nearest-neighbour upscaled by `scale` so small
    frames stay sharp; sides padded by ffmpeg to a multiple of 2). Written to a temporary file beside `path` and
    renamed into place."""
    import os
    import tempfile

    import imageio.v2 as iio

    arr = to_uint8(frames)
    if scale > 1:
        arr = arr.repeat(scale, axis=1).repeat(scale, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..bench.cache import file_mode

    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, file_mode())
    try:
        with iio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=9, macro_block_size=2,
                            pixelformat="yuv420p", ffmpeg_log_level="error") as writer:
            for a in arr:
                writer.append_data(a)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
