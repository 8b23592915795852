"""Lorelei splits (same identity seeds and counts as peeps, so image ``i`` of a lorelei split shows the options of
peeps image ``i``), their on-disk cache and tensor conversion.

Cache: ``<zoo cache>/lorelei/v1/{split}_{size}_{n_ids}x{n_var}[_first{limit}].npz`` plus a ``.json`` manifest with
sha256 and render spec (written atomically; a stale or corrupt file is reported in one warning and rebuilt).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo_peeps.dataset import PeepsSplit, _atomic_write, _sha256, cache_root, split_index, split_spec

from . import avatars

CACHE_VERSION = "v1"


LoreleiSplit = PeepsSplit  # the same container: rendered uint8 images + the renderer's label rows


def _render_job(job: tuple[int, int, int]) -> np.ndarray:
    return avatars.render_index(*job)


def _iter_render(jobs: list[tuple[int, int, int]], workers: int) -> Iterator[np.ndarray]:
    if workers <= 1 or len(jobs) < 2 * workers:
        yield from map(_render_job, jobs)
        return
    avatars.preload()
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_render_job, jobs, chunksize=max(1, min(64, len(jobs) // (8 * workers))))


def render_many(index: Sequence[tuple[int, int]], size: int, *, workers: int = 1, progress: bool = True) -> np.ndarray:
    """Render ``(identity_seed, variation)`` pairs: uint8 [N, size, size, 3] (pool output equals serial)."""
    from tqdm.auto import tqdm

    out = np.empty((len(index), size, size, 3), dtype=np.uint8)
    jobs = [(s, v, size) for s, v in index]
    with tqdm(total=len(jobs), desc=f"lorelei {size}px", unit="img", disable=not progress) as bar:
        for i, img in enumerate(_iter_render(jobs, workers)):
            out[i] = img
            bar.update(1)
    return out


def render_spec() -> dict[str, Any]:
    from zoo_peeps.avatars import dicebear_versions

    return {"render_spec": avatars.RENDER_SPEC_VERSION, "dicebear_styles": dicebear_versions()["dicebear-styles"]}


def _load(path: Path, meta: dict[str, Any]) -> tuple[np.ndarray, pd.DataFrame] | str:
    try:
        manifest = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "missing or unreadable manifest"
    if any(manifest.get(k) != v for k, v in {**meta, **render_spec()}.items()):
        return "stale"
    if _sha256(path) != manifest.get("sha256"):
        return "partial or corrupt (sha256 mismatch)"
    with np.load(path, allow_pickle=False) as z:
        images = z["images"]
        labels = pd.DataFrame({k[7:]: z[k] for k in z.files if k.startswith("label__")})
    return images, labels


def load_split(split: str, size: int = 32, *, limit: int | None = None, n_ids: int | None = None,
               n_var: int | None = None, use_cache: bool = True, progress: bool = True,
               workers: int = 2) -> LoreleiSplit:
    """Load (rendering and caching on first use) a lorelei split: ``train`` (identity seeds 0..2999 x 8) or ``test``
    (1_000_000.. x 4), the peeps seeds. ``limit``: the first images only (served from a valid full cache)."""
    spec = split_spec(split, n_ids, n_var)
    index = split_index(spec)
    root = cache_root() / "lorelei" / CACHE_VERSION
    full = root / f"{split}_{size}_{spec.n_ids}x{spec.n_var}.npz"
    meta = {"split": split, "size": size, "n_ids": spec.n_ids, "n_var": spec.n_var, "count": len(index)}
    if use_cache and full.exists() and not isinstance(got := _load(full, meta), str):
        images, labels = got
        if limit is not None:
            images, labels = images[:limit].copy(), labels.iloc[:limit].reset_index(drop=True)
        return LoreleiSplit(split, size, images, labels)
    path = full
    if limit is not None and limit < len(index):
        index = index[:limit]
        path = root / f"{full.stem}_first{limit}.npz"
        meta = {**meta, "count": len(index)}
    if use_cache and path.exists():
        got = _load(path, meta)
        if not isinstance(got, str):
            return LoreleiSplit(split, size, *got)
        warnings.warn(f"lorelei cache {path} is {got}; rebuilding it", stacklevel=2)
    images = render_many(index, size, workers=workers, progress=progress)
    labels = pd.DataFrame([avatars.labels_for(s, v) for s, v in index])
    if use_cache:
        arrays = {"images": images}
        for col in labels.columns:
            values = labels[col].to_numpy()
            arrays[f"label__{col}"] = values.astype(str) if values.dtype == object else values
        _atomic_write(path, lambda f: np.savez_compressed(f, **arrays), ".npz.tmp")
        manifest = json.dumps({**meta, **render_spec(), "sha256": _sha256(path)}, indent=2).encode()
        _atomic_write(path.with_suffix(".json"), lambda f: f.write(manifest), ".json.tmp")
    return LoreleiSplit(split, size, images, labels)
