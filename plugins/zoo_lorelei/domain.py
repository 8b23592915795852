"""The embedded `lorelei` domain: DiceBear lorelei avatars (CC0) and the peeps StyleGAN2 fine-tuned on them."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd
import torch

from zoo.cards import Card, WeightSpec
from zoo.errors import InputError
import zoo_peeps.domain as peeps_domain
from zoo_peeps.domain import PeepsDomain

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


def load_manifest() -> dict[str, dict]:
    """Role -> {filename, sha256, size_bytes, model_card} of the shipped lorelei weights."""
    return peeps_domain.load_manifest(WEIGHTS_DIR)


def weight_specs() -> dict[str, WeightSpec]:
    return peeps_domain.weight_specs(WEIGHTS_DIR, "lorelei")


class LoreleiDomain(PeepsDomain):
    """Rendered lorelei faces at 32x32 showing the identity/attribute options of the peeps image with the same index
    (hair style and colour, skin colour, glasses, beard, smile, pose); the generator is the peeps one fine-tuned
    (aligned latent space, shared mapping and latent_avg). Identity model and attribute scorers are lorelei's own
    (same architectures and heads as peeps: smile, glasses, facial_hair, rotation, tx, ty)."""

    name = "lorelei"
    resolution = 32
    embedded = True
    is_face = False
    card = Card(
        title="lorelei: DiceBear lorelei avatars with the peeps StyleGAN2 fine-tuned (Toonify recipe)",
        authors="Lisa Wischofsky (Lorelei art, CC0); DiceBear; inversion-zoo",
        url="https://www.figma.com/community/file/1198749693280469639",
        code_url="https://pypi.org/project/dicebear-styles/",
        licence="CC0-1.0 (art); weights CC0-1.0",
        notes="Second embedded domain: target of `zoo adapt --source peeps --target lorelei` and of ReStyle "
        "encoder bootstrapping; image i of a split shows the options of peeps image i (exact labels).",
    )

    @cached_property
    def weights(self) -> dict[str, WeightSpec]:  # type: ignore[override]
        return weight_specs()

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        from .dataset import load_split

        if split == "ood":
            return super().images(split, limit)
        if split not in ("train", "test"):
            raise InputError(f"lorelei has splits train, test and ood, not '{split}'")
        return load_split(split, self.resolution, limit=limit).to_tensor()

    def labels(self, split: str = "test", limit: int | None = None) -> pd.DataFrame | None:
        from .dataset import load_split

        if split not in ("train", "test"):
            return None
        return load_split(split, self.resolution, limit=limit).labels
