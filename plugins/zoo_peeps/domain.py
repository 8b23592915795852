"""The embedded `peeps` domain: DiceBear open-peeps avatars (CC0) and a small StyleGAN2 trained on the CPU."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from zoo.cards import Card, WeightSpec
from zoo.checkpoint_io import load_checked
from zoo.domain import AttributeScorer, Domain
from zoo.errors import CheckpointError, InputError

from .models import ATTRIBUTES, POSE, AttributeNet, IdentityEmbedder

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


def load_manifest(weights_dir: Path | None = None) -> dict[str, dict]:
    """Role -> {filename, sha256, model_card, ...} of the weights shipped in `weights_dir` (its manifest.json,
    written by the export commands; {} when absent)."""
    manifest = MANIFEST if weights_dir is None else weights_dir / "manifest.json"
    return json.loads(manifest.read_text()) if manifest.exists() else {}


def weight_specs(weights_dir: Path | None = None, domain: str = "peeps") -> dict[str, WeightSpec]:
    """A WeightSpec per role of `weights_dir`'s manifest (default: peeps'; an embedded domain trained on CC0
    renders)."""
    weights_dir = WEIGHTS_DIR if weights_dir is None else weights_dir
    return {
        role: WeightSpec(name=f"{domain}/{role}", filename=e["filename"], sha256=e["sha256"],
                         path=str(weights_dir / e["filename"]), licence="CC0-1.0 (trained on CC0 renders)",
                         size_bytes=e.get("size_bytes"), model_card=str(weights_dir / e["model_card"]))
        for role, e in load_manifest(weights_dir).items()
    }


# The generator's resumable training state (repository checkout only, not installed with the package): its sha256
# and model card (the folder's README: step, format, resume command). Not a `weights` role, so it never enters the
# evaluation fingerprint; `zoo train generator --domain peeps --out training_state/peeps_generator` resumes it.
TRAINING_STATE_DIR = Path(__file__).resolve().parents[2] / "training_state" / "peeps_generator"
TRAINING_STATE = WeightSpec(
    name="peeps/generator training state", filename="state.pt",
    sha256="5881a954ce685f993a1bcddd834b51adde970b17c14f02fa8199d7b8deac30b4", size_bytes=16535899,
    path=str(TRAINING_STATE_DIR / "state.pt"), licence="CC0-1.0 (trained on CC0 renders)",
    model_card=str(TRAINING_STATE_DIR / "README.md"))


class PeepsDomain(Domain):
    """Rendered open-peeps faces at 32x32; identity = hair style/colour, skin colour, clothing colour."""

    name = "peeps"
    resolution = 32
    embedded = True
    is_face = False
    card = Card(
        title="peeps: DiceBear open-peeps avatars with a CPU-trained StyleGAN2",
        authors="Pablo Stanley (Open Peeps art, CC0); DiceBear; inversion-zoo",
        url="https://www.openpeeps.com/",
        code_url="https://pypi.org/project/dicebear-styles/",
        licence="CC0-1.0 (art); weights CC0-1.0",
        notes="Embedded default domain of `zoo bench`: 32x32 renders with ground-truth identity and attribute labels; "
        "out-of-domain set: scikit-image lfw_subset (100 real faces).",
    )

    @cached_property
    def weights(self) -> dict[str, WeightSpec]:  # type: ignore[override]
        return weight_specs()

    def splits(self) -> list[str]:
        return ["train", "test", "ood"]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        from .dataset import load_ood, load_split

        if split == "ood":
            x = load_ood(self.resolution)
            return x if limit is None else x[:limit]
        if split not in ("train", "test"):
            raise InputError(f"peeps has splits train, test and ood, not '{split}'")
        return load_split(split, self.resolution, limit=limit).to_tensor()

    def labels(self, split: str = "test", limit: int | None = None) -> pd.DataFrame | None:
        from .dataset import load_split

        if split not in ("train", "test"):
            return None
        return load_split(split, self.resolution, limit=limit).labels

    def _load_net(self, role: str, net: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
        spec = self.weights.get(role)
        if spec is None:
            raise CheckpointError(f"{self.name} has no '{role}' weights yet: run "
                                  f"`zoo train {role} --domain {self.name}`")
        path = spec.resolve()
        try:
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - truncated / foreign file
            raise CheckpointError(f"{path}: not a readable safetensors file ({type(exc).__name__}); retrain it: "
                                  f"`zoo train {role} --domain {self.name}`") from None
        load_checked(net, {k: v.float() for k, v in state.items()}, str(path),
                     f"retrain it: `zoo train {role} --domain {self.name}`")
        net.eval().to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    def identity_model(self, device: str | torch.device = "cpu") -> IdentityEmbedder:
        return self._load_net("identity", IdentityEmbedder(), device)  # type: ignore[return-value]

    def attribute_model(self, device: str | torch.device = "cpu") -> AttributeNet:
        return self._load_net("attributes", AttributeNet(), device)  # type: ignore[return-value]

    def attribute_scorers(self, device: str | torch.device = "cpu") -> dict[str, AttributeScorer]:
        net = self.attribute_model(device)
        return {name: (lambda x, n=name: net(x)[n]) for name in (*ATTRIBUTES, *POSE)}

    def _direction_tensors(self) -> dict[str, torch.Tensor]:
        spec = self.weights.get("directions")
        return {} if spec is None else load_file(str(spec.resolve()))

    def _direction_meta(self, key: str) -> dict:
        spec = self.weights.get("directions")
        if spec is None:
            return {}
        with safe_open(str(spec.resolve()), "pt") as f:
            meta = f.metadata() or {}
        return json.loads(meta.get(key, "{}"))

    def directions(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        return {k: v.float().to(device) for k, v in self._direction_tensors().items() if "/" not in k}

    def direction_fit(self) -> dict[str, dict]:
        return self._direction_meta("fit")

    def edit_region(self, direction: str, device: str | torch.device = "cpu") -> torch.Tensor | None:
        """0/1 mask [32, 32] of the pixels `direction`'s attribute occupies (from the renderer; see
        zoo_peeps.directions.edit_regions), None for directions without one (rotation, GANSpace components)."""
        region = self._direction_tensors().get(f"region/{direction}")
        return None if region is None else region.float().to(device)

    def stylespace_channels(self) -> dict[str, str]:
        """StyleSpace channel per attribute, e.g. {'smile': '-s3_118'} (official detection; see directions.py)."""
        return self._direction_meta("stylespace")
