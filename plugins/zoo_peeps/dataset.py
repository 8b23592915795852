"""Fixed peeps splits, their on-disk cache, tensor conversion and the out-of-domain set.

Splits (identity-major order, image ``i`` = identity ``i // n_var``, variation ``i % n_var``):

* ``train``: identity seeds ``0 .. n_ids-1`` (default 3000 identities x 8 variations);
* ``test``: identity seeds ``1_000_000 ..`` (default 300 identities x 4 variations).

Cache: ``<root>/peeps/v1/{split}_{size}_{n_ids}x{n_var}.npz`` plus a ``.json`` manifest
(sha256, render spec) where ``<root>`` is ``$ZOO_HOME``, else ``$XDG_CACHE_HOME/zoo``,
else ``~/.cache/zoo``. Files are written atomically; a partial, corrupt or stale
file is reported in one warning line and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch

from . import avatars

CACHE_VERSION = "v1"


@dataclass(frozen=True)
class SplitSpec:
    """Identity seeds ``first_seed .. first_seed + n_ids - 1``, ``n_var`` images each."""

    first_seed: int
    n_ids: int
    n_var: int


SPLITS: dict[str, SplitSpec] = {
    "train": SplitSpec(first_seed=0, n_ids=3000, n_var=8),
    "test": SplitSpec(first_seed=1_000_000, n_ids=300, n_var=4),
}
# Largest train identity count that keeps train seeds disjoint from the test range.
MAX_TRAIN_IDS = SPLITS["test"].first_seed


@dataclass
class PeepsSplit:
    """Rendered images of one split with their ground truth.

    ``images``: uint8 [N, H, W, 3] in 0..255; ``labels``: DataFrame, one row per image
    (columns of :func:`zoo_peeps.avatars.labels_for`).
    """

    name: str
    size: int
    images: np.ndarray
    labels: pd.DataFrame

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_tensor(self, idx: Any = None) -> torch.Tensor:
        """float32 [N, 3, H, W] in [-1, 1]; ``idx`` = int, slice, index array or None (all)."""
        return images_to_tensor(self.images if idx is None else self.images[idx])


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] (or [H, W, 3]) -> float32 [N, 3, H, W] in [-1, 1]."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"expected uint8 [N,H,W,3] images, got {arr.dtype} {arr.shape}")
    if arr.ndim == 3:
        arr = arr[None]
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    return t.to(torch.float32).div_(127.5).sub_(1.0)


def split_spec(split: str, n_ids: int | None = None, n_var: int | None = None) -> SplitSpec:
    """The default :class:`SplitSpec` of ``split``, optionally with other counts."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    base = SPLITS[split]
    spec = SplitSpec(
        base.first_seed,
        base.n_ids if n_ids is None else int(n_ids),
        base.n_var if n_var is None else int(n_var),
    )
    if spec.n_ids < 1 or spec.n_var < 1:
        raise ValueError(f"n_ids and n_var must be >= 1, got {spec.n_ids} and {spec.n_var}")
    if split == "train" and spec.n_ids > MAX_TRAIN_IDS:
        raise ValueError(f"train n_ids must be <= {MAX_TRAIN_IDS} to stay disjoint from test")
    return spec


def split_index(spec: SplitSpec) -> list[tuple[int, int]]:
    """``(identity_seed, variation)`` of every image of ``spec``, identity-major."""
    return [
        (spec.first_seed + i, v) for i in range(spec.n_ids) for v in range(spec.n_var)
    ]


def cache_root() -> Path:
    """``$ZOO_HOME``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo`` (zoo's cache directory)."""
    from zoo.cards import cache_dir

    return cache_dir().expanduser()


def cache_path(
    split: str, size: int, spec: SplitSpec, limit: int | None = None, root: Path | None = None
) -> Path:
    """Cache ``.npz`` path of a split; its manifest is the same path with ``.json``."""
    name = f"{split}_{size}_{spec.n_ids}x{spec.n_var}"
    if limit is not None:
        name += f"_first{limit}"
    return (cache_root() if root is None else Path(root)) / "peeps" / CACHE_VERSION / f"{name}.npz"


def render_spec() -> dict[str, Any]:
    """Everything the cached pixels depend on; a mismatch triggers a rebuild."""
    return {
        "render_spec": avatars.RENDER_SPEC_VERSION,
        "dicebear_styles": avatars.dicebear_versions()["dicebear-styles"],
    }


# --- rendering --------------------------------------------------------------------------


def _render_job(job: tuple[int, int, int]) -> np.ndarray:
    seed, var, size = job
    return avatars.render_index(seed, var, size)


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def render_many(
    index: Sequence[tuple[int, int]],
    size: int,
    *,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "rendering peeps",
) -> np.ndarray:
    """Render ``(identity_seed, variation)`` pairs: uint8 [N, size, size, 3].

    ``workers`` > 1 uses a multiprocessing pool; pixels equal serial rendering.
    """
    from tqdm.auto import tqdm

    size = avatars.check_size(size)
    workers = _default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = np.empty((len(index), size, size, 3), dtype=np.uint8)
    jobs = [(s, v, size) for s, v in index]
    bar = tqdm(total=len(jobs), desc=f"{desc} {size}px", unit="img", disable=not progress)
    with bar:
        for i, img in enumerate(_iter_render(jobs, workers)):
            out[i] = img
            bar.update(1)
    return out


def _iter_render(jobs: list[tuple[int, int, int]], workers: int) -> Iterator[np.ndarray]:
    if workers == 1 or len(jobs) < 2 * workers:
        yield from map(_render_job, jobs)
        return
    avatars.preload()  # forked workers inherit the parsed style
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else None)
    chunk = max(1, min(64, len(jobs) // (8 * workers)))
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_render_job, jobs, chunksize=chunk)


def build_labels(index: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Ground-truth DataFrame, one row per ``(identity_seed, variation)``."""
    return pd.DataFrame([avatars.labels_for(s, v) for s, v in index])


# --- cache ------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object], suffix: str) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then ``os.replace`` it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_cache(
    path: Path, images: np.ndarray, labels: pd.DataFrame, meta: dict[str, Any]
) -> None:
    arrays = {"images": images}
    for col in labels.columns:
        values = labels[col].to_numpy()
        arrays[f"label__{col}"] = values.astype(str) if values.dtype == object else values
    _atomic_write(path, lambda f: np.savez_compressed(f, **arrays), ".npz.tmp")
    manifest = {**meta, **render_spec(), "sha256": _sha256(path), "bytes": path.stat().st_size}
    data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    _atomic_write(path.with_suffix(".json"), lambda f: f.write(data), ".json.tmp")


def _load_cache(path: Path, meta: dict[str, Any]) -> tuple[np.ndarray, pd.DataFrame] | str:
    """Cached (images, labels), or a short reason why the cache is unusable."""
    manifest_path = path.with_suffix(".json")
    if not manifest_path.exists():
        return "missing its manifest"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "paired with an unreadable manifest"
    expected = {**meta, **render_spec()}
    stale = sorted(k for k, v in expected.items() if manifest.get(k) != v)
    if stale:
        return f"stale ({', '.join(stale)} changed)"
    if path.stat().st_size != manifest.get("bytes") or _sha256(path) != manifest.get("sha256"):
        return "partial or corrupt (sha256 mismatch)"
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]
            labels = pd.DataFrame(
                {k[len("label__") :]: z[k] for k in z.files if k.startswith("label__")}
            )
    except (OSError, ValueError, KeyError) as e:
        return f"unreadable ({type(e).__name__})"
    size, n = meta["size"], meta["count"]
    if images.shape != (n, size, size, 3) or images.dtype != np.uint8 or len(labels) != n:
        return f"of unexpected shape {images.shape}"
    return images, labels


def load_split(
    split: str,
    size: int,
    *,
    n_ids: int | None = None,
    n_var: int | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
    workers: int | None = None,
) -> PeepsSplit:
    """Load (rendering and caching on first use) a peeps split.

    ``size``: power of 2 >= 16. ``n_ids``/``n_var`` override the default counts.
    ``limit``: only the first ``limit`` images (identity-major); taken from the full
    cache when it is valid, else rendered and cached on their own. ``cache_dir``
    replaces the cache root (see :func:`cache_root`). Returns a :class:`PeepsSplit`
    with uint8 images [N, size, size, 3] and a labels DataFrame.
    """
    size = avatars.check_size(size)
    spec = split_spec(split, n_ids, n_var)
    index = split_index(spec)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        limit = None if limit >= len(index) else int(limit)
    root = None if cache_dir is None else Path(cache_dir)

    if use_cache and limit is not None:  # a valid full cache serves any limit
        full = cache_path(split, size, spec, root=root)
        meta = _meta(split, size, spec, len(index))
        if full.exists() and not isinstance(cached := _load_cache(full, meta), str):
            images, labels = cached
            head = labels.iloc[:limit].reset_index(drop=True)
            return PeepsSplit(split, size, images[:limit].copy(), head)

    if limit is not None:
        index = index[:limit]
    path = cache_path(split, size, spec, limit=limit, root=root)
    meta = _meta(split, size, spec, len(index))
    if use_cache and (path.exists() or path.with_suffix(".json").exists()):
        cached = _load_cache(path, meta) if path.exists() else "missing (manifest only)"
        if not isinstance(cached, str):
            return PeepsSplit(split, size, *cached)
        warnings.warn(f"peeps cache {path} is {cached}; rebuilding it", stacklevel=2)

    images = render_many(index, size, workers=workers, progress=progress, desc=f"peeps {split}")
    labels = build_labels(index)
    if use_cache:
        _save_cache(path, images, labels, meta)
    return PeepsSplit(split, size, images, labels)


def _meta(split: str, size: int, spec: SplitSpec, count: int) -> dict[str, Any]:
    return {
        "split": split,
        "size": size,
        "first_seed": spec.first_seed,
        "n_ids": spec.n_ids,
        "n_var": spec.n_var,
        "count": count,
    }


# --- out-of-domain set -----------------------------------------------------------------


def load_ood(size: int) -> torch.Tensor:
    """100 real grey faces (scikit-image ``lfw_subset``, first 100 of 200 are faces).

    Grey replicated to RGB, resized 25 -> ``size`` (bilinear, antialias).
    Returns float32 [100, 3, size, size] in [-1, 1].
    """
    from skimage.data import lfw_subset

    size = avatars.check_size(size)
    faces = np.asarray(lfw_subset()[:100], dtype=np.float32)  # [100, 25, 25] in [0, 1]
    if faces.max() > 1.0:  # older scikit-image versions ship uint8
        faces = faces / 255.0
    x = torch.from_numpy(faces)[:, None]
    x = torch.nn.functional.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return x.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0).expand(-1, 3, -1, -1).contiguous()
