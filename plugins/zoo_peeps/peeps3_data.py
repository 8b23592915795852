"""Data of the embedded StyleGAN3 domain `peeps3`: the peeps renders in pairs (aligned, unaligned) with the exact pose.

The peeps renderer already varies pose and translation per image (`avatars.EditableAttributes.rotation_deg`, `tx`,
`ty`: up to +-10 degrees counter-clockwise and +-6 % of the side, drawn per (identity, variation)) and labels them
exactly. For StyleGAN3 the pose is split off, as stylegan3-editing does for FFHQ (aligned generator + user transform):

* the **aligned** render = the same identity and attributes with the pose zeroed (what the generator is trained on
  and what the encoders / inverters see);
* the **unaligned** render = the ordinary peeps render (pose applied by the renderer's PIL affine);
* the pose (r, tx, ty) carries the aligned render into the unaligned one and equals `make_transform(r, tx, ty)` of
  zoo.stylegan3.transforms (tests/test_stylegan3_transforms.py pins the sign convention), so
  `G.synthesis(ws, transform=(r, tx, ty))` renders the unaligned frame.

Splits reuse the peeps identity seeds (`dataset.SPLITS`: train seeds 0.., test seeds 1,000,000..). Aligned splits are
cached as `<zoo cache>/peeps3/v1/aligned_{split}_{size}_{n_ids}x{n_var}.npz` (+ `.json`, checked against the render
spec; rebuilt when stale).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import avatars
from .dataset import cache_root, render_spec, split_index, split_spec

CACHE_VERSION = "v1"


def pose_of(identity_seed: int, variation: int) -> tuple[float, float, float]:
    """The renderer's pose (r degrees CCW, tx, ty fractions of the side, right / down) of an image."""
    a = avatars.sample_attributes(identity_seed, variation)
    return float(a.rotation_deg), float(a.tx), float(a.ty)


def render_aligned(identity_seed: int, variation: int, size: int) -> np.ndarray:
    """The image with its pose zeroed: uint8 [size, size, 3] (identity, expression, accessories unchanged)."""
    attrs = replace(avatars.sample_attributes(identity_seed, variation), rotation_deg=0.0, tx=0.0, ty=0.0)
    return avatars.render(avatars.sample_identity(identity_seed), attrs, size)


def render_pair(identity_seed: int, variation: int, size: int
                ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(aligned render, unaligned (ordinary peeps) render, pose (r, tx, ty)) of one image."""
    return (render_aligned(identity_seed, variation, size), avatars.render_index(identity_seed, variation, size),
            pose_of(identity_seed, variation))


def _job(job: tuple[int, int, int]) -> np.ndarray:
    return render_aligned(*job)


def render_aligned_many(index: list[tuple[int, int]], size: int, workers: int = 1) -> np.ndarray:
    """Aligned renders of (identity_seed, variation) pairs -> uint8 [N, size, size, 3] (pool of `workers`
    processes when > 1; pixels equal serial rendering)."""
    jobs = [(s, v, size) for s, v in index]
    if workers <= 1 or len(jobs) < 2 * workers:
        return np.stack([_job(j) for j in jobs]) if jobs else np.empty((0, size, size, 3), np.uint8)
    avatars.preload()
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
    with ctx.Pool(workers) as pool:
        return np.stack(pool.map(_job, jobs, chunksize=max(1, min(64, len(jobs) // (8 * workers)))))


def load_aligned_split(split: str, size: int, *, n_ids: int | None = None, n_var: int | None = None,
                       workers: int = 1, use_cache: bool = True, limit: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(aligned images uint8 [N, size, size, 3], poses float64 [N, 3] (r, tx, ty) of the unaligned originals) of a
    peeps split (identity-major order, as `dataset.load_split`: image i = identity i // n_var, variation i % n_var);
    rendered once and cached. `limit`: only the first `limit` images (served from a valid full cache, else rendered
    and cached on their own as `..._first{limit}.npz`). Raises ValueError for an unknown split / bad counts."""
    spec = split_spec(split, n_ids, n_var)
    index = split_index(spec)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        if limit < len(index):
            full = cache_root() / "peeps3" / CACHE_VERSION / f"aligned_{split}_{size}_{spec.n_ids}x{spec.n_var}.npz"
            if use_cache and full.is_file():
                images, poses = load_aligned_split(split, size, n_ids=n_ids, n_var=n_var, workers=workers)
                return images[:limit].copy(), poses[:limit].copy()
            index = index[: int(limit)]
        else:
            limit = None
    poses = np.array([pose_of(s, v) for s, v in index], dtype=np.float64)
    suffix = "" if limit is None else f"_first{int(limit)}"
    path = cache_root() / "peeps3" / CACHE_VERSION / f"aligned_{split}_{size}_{spec.n_ids}x{spec.n_var}{suffix}.npz"
    meta = {**render_spec(), "split": split, "size": size, "first_seed": spec.first_seed, "n_ids": spec.n_ids,
            "n_var": spec.n_var, "aligned": True, **({} if limit is None else {"limit": int(limit)})}
    manifest = path.with_suffix(".json")
    if use_cache and path.is_file() and manifest.is_file():
        try:
            if json.loads(manifest.read_text()) == meta:
                with np.load(path, allow_pickle=False) as z:
                    images = z["images"]
                if images.shape == (len(index), size, size, 3):
                    return images, poses
        except (OSError, ValueError, KeyError):
            pass  # stale or damaged: rebuilt below
    images = render_aligned_many(index, size, workers)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=images)
        Path(tmp).replace(path)
        manifest.write_text(json.dumps(meta, indent=2) + "\n")
    return images, poses
