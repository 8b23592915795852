"""User image folders for `zoo bench --images DIR`: every readable image is made a valid domain input.

Fixes, each reported as one line per file: grayscale -> RGB; alpha (RGBA, LA, palette transparency) -> composited
on white; not square -> centre crop; wrong size -> resized to the domain resolution with PIL's bilinear filter
(antialiased when shrinking), which is what the official pSp / e4e / ReStyle / HyperStyle inference transforms do
(`transforms.Resize((256, 256))` on PIL images), or Lanczos when the domain asks for it (`Domain.resample`).
Unreadable or corrupt files are skipped with a one-line message; the valid images are still benchmarked.
"""

from __future__ import annotations

from collections.abc import Callable
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


# a domain's input preparation (`Domain.prepare_input`): path -> (file to read or None, one-line note)
Prepare = Callable[[Path], tuple[Path | None, str | None]]
RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "lanczos": Image.Resampling.LANCZOS}


def load_image_file(path: str | Path, resolution: int, resample: str = "bilinear") -> tuple[torch.Tensor, list[str]]:
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
        if resample not in RESAMPLE:
            raise ValueError(f"resample must be one of {', '.join(RESAMPLE)}, got {resample!r}")
        rgb = rgb.resize((resolution, resolution), RESAMPLE[resample])
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


def load_input(path: Path, name: str, resolution: int, resample: str, prepare: Prepare | None,
               messages: list[InputMessage]) -> torch.Tensor | None:
    """One user input -> image [3, R, R] in [-1, 1] (through the domain's `prepare`, e.g. FFHQ alignment), or None
    when it is skipped; every conversion or skip is appended to `messages` as one line named `name`."""
    try:
        source, note = prepare(path) if prepare is not None else (path, None)
        if source is None:
            messages.append(InputMessage(name, note or "not usable", "skipped"))
            return None
        x, notes = load_image_file(source, resolution, resample)
    except InputError as exc:
        messages.append(InputMessage(name, str(exc), "skipped"))
        return None
    notes = ([note] if note else []) + notes
    if notes:
        messages.append(InputMessage(name, "; ".join(notes)))
    return x


def load_folder(folder: str | Path, resolution: int, resample: str = "bilinear",
                prepare: Prepare | None = None) -> FolderImages:
    """Every non-hidden file of `folder` (sorted by name, not recursive) that can be made an image [3, R, R].

    Raises InputError when the folder does not exist or holds no usable image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--images {folder}: not a folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    images, names, messages = [], [], []
    for p in files:
        x = load_input(p, p.name, resolution, resample, prepare, messages)
        if x is not None:
            images.append(x)
            names.append(p.name)
    if not images:
        raise InputError(f"--images {folder}: no usable image among {len(files)} file(s)"
                         + (f" ({messages[0].line()})" if messages else ""))
    return FolderImages(str(root), torch.stack(images), names, messages, len(files))


# ---------------------------------------------------------------------------------------------------- streaming
@dataclass(frozen=True)
class InputItem:
    """One image to process, not loaded yet: a file (`path`) or image `index` of a domain's `split`.

    name: how the user named it (the path as given, `folder/file` for a folder's files) or `<split>_<index:05d>`.
    key: its identity across runs: the resolved absolute path (symlinks followed), or `<domain>:<split>[<index>]`.
    """

    name: str
    key: str
    path: Path | None = None
    split: str | None = None
    index: int | None = None


def folder_files(folder: str | Path) -> list[Path]:
    """The files `load_folder` considers: every non-hidden file of `folder`, sorted by name, not recursive."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))


def collect_inputs(paths: list[str | Path] | tuple[str | Path, ...]) -> tuple[list[InputItem], list[InputMessage]]:
    """Files and folders (each folder expanded to `folder_files`) -> items in the order given, without loading any
    image. The same file reached twice (given twice, or as a file and through its folder) is kept once, with a
    message. Raises InputError (one line naming the path) for a path that does not exist or an empty folder."""
    items: list[InputItem] = []
    messages: list[InputMessage] = []
    seen: dict[str, str] = {}
    for given in paths:
        p = Path(given)
        if p.is_dir():
            files = folder_files(p)
            if not files:
                raise InputError(f"{given}: folder holds no files")
        elif p.is_file():
            files = [p]
        elif p.exists():
            raise InputError(f"{given}: neither a file nor a folder")
        else:
            raise InputError(f"{given}: no such file or folder")
        for f in files:
            key = str(f.resolve())
            if key in seen:
                messages.append(InputMessage(str(f), f"same file as {seen[key]}; used once", "skipped"))
                continue
            seen[key] = str(f)
            items.append(InputItem(str(f), key, path=f))
    return items, messages


def split_items(domain_name: str, split: str, n: int) -> list[InputItem]:
    """Items for the first `n` images of a domain split, named `<split>_<index:05d>`."""
    return [InputItem(f"{split}_{i:05d}", f"{domain_name}:{split}[{i}]", split=split, index=i) for i in range(n)]


def load_items(items: list[InputItem], resolution: int, split_images: torch.Tensor | None = None,
               resample: str = "bilinear", prepare: Prepare | None = None
               ) -> tuple[torch.Tensor, list[InputItem], list[InputMessage]]:
    """Load a batch: (images [M, 3, R, R] float32 in [-1, 1], the M items that loaded, one message per conversion or
    skipped file). Files are made valid inputs by `load_image_file`; split items are taken from `split_images`
    [N, 3, R, R] (the domain split, indexed by `item.index`). Only this batch's images are held in memory."""
    images, kept, messages = [], [], []
    for item in items:
        if item.path is None:
            if split_images is None or item.index is None:
                raise ValueError(f"{item.name}: a split item needs the split's images")
            images.append(split_images[item.index])
            kept.append(item)
            continue
        x = load_input(Path(item.path), item.name, resolution, resample, prepare, messages)
        if x is not None:
            images.append(x)
            kept.append(item)
    x = torch.stack(images) if images else torch.empty(0, 3, resolution, resolution)
    return x, kept, messages
