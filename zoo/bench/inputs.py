"""User image folders for `zoo bench --images DIR`: every readable image is made a valid domain input.

Fixes, each reported as one line per file: grayscale -> RGB; alpha (RGBA, LA, palette transparency) -> composited
on white; not square -> centre crop; wrong size -> resized (Lanczos) to the domain resolution. Unreadable or
corrupt files are skipped with a one-line message; the valid images are still benchmarked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm"}
GRAY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@dataclass
class InputMessage:
    """A note about one input file; `line()` is what the CLI prints."""

    file: str
    text: str
    level: Literal["warning", "skipped"] = "warning"

    def line(self) -> str:
        return f"{self.level}: {self.file}: {self.text}"


@dataclass
class FolderImages:
    """The usable images of a folder: `images` [N, 3, R, R] float32 in [-1, 1], their file names, and messages."""

    folder: str
    images: torch.Tensor
    files: list[str]
    messages: list[InputMessage] = field(default_factory=list)
    n_files: int = 0


def load_image_file(path: str | Path, resolution: int) -> tuple[torch.Tensor, list[str]]:
    """One file -> (image [3, R, R] float32 in [-1, 1], notes about the conversions made).

    Raises InputError (one line) when the file is not a readable image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # decode now: truncated / corrupt data fails here
            frames = getattr(im, "n_frames", 1)
            im = ImageOps.exif_transpose(im) or im
            rgb, notes = _to_rgb(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        kind = "not an image file" if path.suffix.lower() not in IMAGE_SUFFIXES else "corrupt or unreadable image"
        detail = " ".join(str(exc).split())[:120]
        raise InputError(f"{kind} ({type(exc).__name__}{': ' + detail if detail else ''}); skipped") from None
    if frames > 1:
        notes.append(f"{frames} frames, using the first")
    w, h = rgb.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        rgb = rgb.crop((left, top, left + s, top + s))
        notes.append(f"not square ({w}x{h}), centre-cropped to {s}x{s}")
    if rgb.size != (resolution, resolution):
        notes.append(f"{rgb.size[0]}x{rgb.size[1]}, resized to {resolution}x{resolution}")
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    arr = np.asarray(rgb, dtype=np.uint8)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div_(127.5).sub_(1.0)
    return x, notes


def _to_rgb(im: Image.Image) -> tuple[Image.Image, list[str]]:
    mode = im.mode
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ALPHA_MODES:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        note = "grayscale with alpha; converted to RGB and composited on white" if mode.startswith("L") else \
            "has an alpha channel; composited on white"
        return Image.alpha_composite(white, rgba).convert("RGB"), [note]
    if mode in GRAY_MODES:
        if mode in ("1", "L"):
            gray = im.convert("L")
        else:  # 16-bit / 32-bit / float grayscale: scale to 0..255
            a = np.asarray(im, dtype=np.float64)
            top = 1.0 if mode == "F" and a.max() <= 1.0 else (65535.0 if a.max() > 255 else 255.0)
            gray = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB"), ["grayscale; converted to RGB"]
    if mode != "RGB":
        return im.convert("RGB"), []
    return im.copy(), []


def load_folder(folder: str | Path, resolution: int) -> FolderImages:
    """Every non-hidden file of `folder` (sorted by name, not recursive) that can be made an image [3, R, R].

    Raises InputError when the folder does not exist or holds no usable image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--images {folder}: not a folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    images, names, messages = [], [], []
    for p in files:
        try:
            x, notes = load_image_file(p, resolution)
        except InputError as exc:
            messages.append(InputMessage(p.name, str(exc), "skipped"))
            continue
        if notes:
            messages.append(InputMessage(p.name, "; ".join(notes)))
        images.append(x)
        names.append(p.name)
    if not images:
        raise InputError(f"--images {folder}: no usable image among {len(files)} file(s)"
                         + (f" ({messages[0].line()})" if messages else ""))
    return FolderImages(str(root), torch.stack(images), names, messages, len(files))
