"""Output names and safe writes.

Names: an output is named after its input's file name with the suffix kept (`face.png` -> `face_png`, so `face.png`
and `face.jpg` of one folder never collide; a domain image `test_00003` keeps its name). Inputs whose names still
collide (case-insensitively: `a/face.png` and `b/face.png`) are prefixed with their folder (`a_face_png`,
`b_face_png`), and any remaining clash gets `-2`, `-3`, ... in input order. The same inputs always get the same
names, and `zoo invert --resume` keeps the names of its manifest.

Writes: every file is written to a temporary name beside it and renamed into place (`atomic_write_bytes`), so an
interrupted write never leaves a half-written file, and a symlink at an output path is replaced, never written
through. `OutputGuard` refuses an output folder that is an input folder and any output path that is an input file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from ..errors import InputError
from ..inversion import INVERSION_SUFFIX

_UNSAFE = re.compile(r"[^\w\-+=@,.]+")


def base_name(source_name: str) -> str:
    """'photos/face.png' -> 'face_png'; 'test_00003' -> 'test_00003' (characters unsafe in file names -> '_')."""
    name = Path(source_name).name
    stem, dot, suffix = name.rpartition(".")
    base = f"{stem}_{suffix}" if dot and stem else name
    base = _UNSAFE.sub("_", base).strip(".") or "image"
    return base


def inversion_file_name(name: str) -> str:
    """'face_png' -> 'face_png.inversion.safetensors'."""
    return f"{name}{INVERSION_SUFFIX}"


def assign_names(sources: Sequence[tuple[str, str]], *, fixed: dict[str, str] | None = None,
                 is_free: Callable[[str], bool] | None = None) -> dict[str, str]:
    """Unique output names for `sources` [(key, name as given)] (see the module doc): {key: name}.

    fixed: names already given to some keys (an earlier run being resumed); kept as they are.
    is_free: extra test a candidate name must pass (e.g. its files would not be an input).
    """
    fixed = dict(fixed or {})
    taken = {v.casefold() for v in fixed.values()}
    bases = {key: base_name(name) for key, name in sources if key not in fixed}
    counts: dict[str, int] = {}
    for b in bases.values():
        counts[b.casefold()] = counts.get(b.casefold(), 0) + 1
    out: dict[str, str] = {}
    for key, name in sources:
        if key in fixed:
            out[key] = fixed[key]
            continue
        base = bases[key]
        parent = _UNSAFE.sub("_", Path(name).parent.name).strip(".")
        if (counts[base.casefold()] > 1 or base.casefold() in taken) and parent:
            base = f"{parent}_{base}"
        cand, k = base, 1
        while cand.casefold() in taken or (is_free is not None and not is_free(cand)):
            k += 1
            cand = f"{base}-{k}"
        taken.add(cand.casefold())
        out[key] = cand
    return out


class OutputGuard:
    """Knows the inputs of a command and refuses to write over them.

    inputs: input files (images or saved inversions); folders: input folders. Paths are compared resolved (symlinks
    followed), so `--out photos` and `--out ./link-to-photos` are both recognised as the folder `photos`.
    """

    def __init__(self, inputs: Iterable[str | Path] = (), folders: Iterable[str | Path] = ()) -> None:
        self.files = {Path(p).resolve() for p in inputs}
        self.folders = {Path(p).resolve(): str(p) for p in folders}

    def protect(self, paths: Iterable[str | Path]) -> None:
        """Also never write over `paths` (e.g. the inputs of an earlier run that lay in the output folder)."""
        self.files |= {Path(p).resolve() for p in paths}

    def check_out_dir(self, out_dir: Path, option: str = "--out") -> None:
        """InputError when `out_dir` is one of the input folders (outputs would mix with, and be read back as,
        the user's images)."""
        resolved = out_dir.resolve()
        if resolved in self.folders:
            raise InputError(f"{option} {out_dir} is the input folder {self.folders[resolved]}: outputs would be "
                             f"written among your images; choose another folder, e.g. {option} "
                             f"{Path(self.folders[resolved]) / 'zoo-out'}")

    def is_input(self, path: Path) -> bool:
        """Whether writing `path` would replace an input file."""
        return path.resolve() in self.files

    def check(self, path: Path) -> None:
        """InputError when `path` is an input file (last line of defence; names are chosen to avoid it)."""
        if self.is_input(path):
            raise InputError(f"refusing to overwrite the input {path}; choose another --out")


def encode_png(image: torch.Tensor) -> bytes:
    """PNG bytes of an image [3, H, W] in [-1, 1] (clamped, (x + 1) * 127.5 rounded to uint8)."""
    from PIL import Image

    arr = ((image.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_png(image: torch.Tensor, path: Path, guard: OutputGuard | None = None) -> Path:
    """Write `encode_png(image)` to `path` atomically (never over an input when `guard` is given)."""
    from ..bench.cache import atomic_write_bytes

    if guard is not None:
        guard.check(path)
    atomic_write_bytes(path, encode_png(image))
    return path
