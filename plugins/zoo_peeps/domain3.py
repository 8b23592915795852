"""The embedded StyleGAN3 domain `peeps3`: the peeps renders split into aligned crop + pose, and a CPU-trained
StyleGAN3-T (issue 16 item 5).

* `images(split)`: the **aligned** renders (pose zeroed, `peeps3_data.load_aligned_split`) -- what the generator was
  trained on and what inverters / encoders see;
* `unaligned_images(split)`: the ordinary peeps renders of the same split, the *same* images and order as the
  `peeps` domain's split (image i = identity i // n_var, variation i % n_var), so SG2 (peeps) and SG3 (peeps3)
  inversions are compared on identical targets;
* `poses(split)`: the renderer's exact pose (r degrees CCW, tx, ty fractions of the side, right / down) of each
  image; `G.synthesis(ws, transform=(r, tx, ty))` renders the unaligned frame (`make_transform` convention of
  zoo.stylegan3.transforms, pinned against the renderer in tests/test_peeps3_domain.py);
* labels, identity model and attribute scorers: peeps' (same renders; the label columns rotation / tx / ty are the
  pose of the unaligned frame = `poses`). Weights: peeps' identity and attribute nets plus `weights3/manifest.json`
  (generator, directions, later encoders), sha256-pinned with model cards.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from zoo.cards import Card, WeightSpec
from zoo.errors import InputError

from . import domain as peeps_domain
from .domain import PeepsDomain

WEIGHTS_DIR = Path(__file__).parent / "weights3"
MANIFEST = WEIGHTS_DIR / "manifest.json"
SHARED_ROLES = ("identity", "attributes")  # peeps' nets, used unchanged (same renders)


def load_manifest() -> dict[str, dict]:
    """Role -> {filename, sha256, size_bytes, model_card} of the weights shipped in weights3/ ({} when absent)."""
    return peeps_domain.load_manifest(WEIGHTS_DIR)


def weight_specs() -> dict[str, WeightSpec]:
    """peeps3's own weights (weights3/manifest.json), named `peeps3/<role>`."""
    return peeps_domain.weight_specs(WEIGHTS_DIR, "peeps3")


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise InputError(f"peeps3 has splits train and test, not '{split}'")


class Peeps3Domain(PeepsDomain):
    """Aligned open-peeps faces at 32x32 with the renderer's pose, and a CPU-trained StyleGAN3-T."""

    name = "peeps3"
    resolution = 32
    embedded = True
    # the bench's timing phase on this domain (zoo.bench.config.domain_settings): 3 latency images and a throughput
    # batch of 2 keep `zoo bench --domains peeps,peeps3` within the default budget + 8 minutes (issue 16)
    bench_defaults: ClassVar[dict] = {"timing_images": 3, "throughput_batch": 2}
    is_face = False
    card = Card(
        title="peeps3: aligned DiceBear open-peeps avatars with a CPU-trained StyleGAN3-T and their exact pose",
        authors="Pablo Stanley (Open Peeps art, CC0); DiceBear; inversion-zoo",
        url="https://www.openpeeps.com/",
        code_url="https://pypi.org/project/dicebear-styles/",
        licence="CC0-1.0 (art); weights CC0-1.0",
        notes="Embedded StyleGAN3 domain: images = aligned renders (pose zeroed), unaligned_images = the peeps renders "
        "of the same split (same order), poses = the renderer's (r, tx, ty); identity model and attribute scorers "
        "are peeps'.",
    )

    @cached_property
    def weights(self) -> dict[str, WeightSpec]:  # type: ignore[override]
        shared = {r: s for r, s in peeps_domain.weight_specs().items() if r in SHARED_ROLES}
        return {**shared, **weight_specs()}

    def splits(self) -> list[str]:
        return ["train", "test"]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        """Aligned renders [N, 3, 32, 32] in [-1, 1] (pose zeroed). InputError for an unknown split."""
        from .dataset import images_to_tensor
        from .peeps3_data import load_aligned_split

        _check_split(split)
        images, _ = load_aligned_split(split, self.resolution, limit=limit)
        return images_to_tensor(images)

    def unaligned_images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        """The peeps renders of the split [N, 3, 32, 32] in [-1, 1] (= `peeps` domain's `images(split)`)."""
        from .dataset import load_split

        _check_split(split)
        return load_split(split, self.resolution, limit=limit).to_tensor()

    def poses(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        """The renderer's pose of each image, float64 [N, 3] (r degrees CCW, tx, ty fractions of the side)."""
        from .dataset import split_index, split_spec
        from .peeps3_data import pose_of

        _check_split(split)
        index = split_index(split_spec(split))
        index = index if limit is None else index[:limit]
        return torch.from_numpy(np.array([pose_of(s, v) for s, v in index], dtype=np.float64).reshape(-1, 3))

    def labels(self, split: str = "test", limit: int | None = None) -> pd.DataFrame | None:
        """peeps' labels of the same images (rotation / tx / ty = the pose of the unaligned frame)."""
        return super().labels(split, limit) if split in ("train", "test") else None

    def edit_region(self, direction: str, device: str | torch.device = "cpu") -> torch.Tensor | None:
        """0/1 mask [32, 32] of the pixels `direction`'s attribute occupies in the *aligned* frame (renderer, pose
        zeroed; see zoo_peeps.peeps3_export.aligned_edit_regions), None when unknown."""
        spec = self.weights.get("directions")
        if spec is None:
            return None
        region = load_file(str(spec.resolve())).get(f"region/{direction}")
        return None if region is None else region.float().to(device)
