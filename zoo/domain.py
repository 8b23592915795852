"""The `Domain` interface: a generator plus the data and models needed to benchmark inversions on it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .cards import Card, WeightSpec

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from .stylegan2.checkpoints import LoadedGenerator

AttributeScorer = Callable[[torch.Tensor], torch.Tensor]  # images [B, 3, H, W] in [-1, 1] -> scores [B]


class Domain(ABC):
    """A generator with data splits, an identity model, attribute scorers and editing directions.

    `weights` maps a role ("generator", "identity", "attributes", "encoder/psp", ...) to a sha256-pinned WeightSpec.
    Images are float32 [N, 3, H, W] in [-1, 1] with H = W = `resolution`.
    """

    name: ClassVar[str]
    card: ClassVar[Card]
    resolution: ClassVar[int]
    embedded: ClassVar[bool] = False  # a small offline domain: methods use their `embedded_options()`
    resample: ClassVar[str] = "bilinear"  # how user images of another size are resized (official: PIL bilinear)

    def __init__(self) -> None:
        self._generators: dict[str, LoadedGenerator] = {}

    @property
    @abstractmethod
    def weights(self) -> dict[str, WeightSpec]:
        """Every weights file of this domain by role."""

    def generator(self, device: str | torch.device = "cpu") -> LoadedGenerator:
        """The domain's generator (loaded once per device, sha256-verified) with its latent_avg [w_dim]; a StyleGAN3
        file gives a `zoo.stylegan3` generator with the same interface."""
        from .stylegan2.checkpoints import load_generator

        key = str(torch.device(device))
        if key not in self._generators:
            if "generator" not in self.weights:
                from .errors import CheckpointError

                raise CheckpointError(f"domain '{self.name}' has no generator weights registered "
                                      f"(train one: `zoo train generator --domain {self.name}`)")
            path = self.weights["generator"].resolve()
            from .stylegan3.checkpoints import is_stylegan3_file
            from .stylegan3.checkpoints import load_generator as load_stylegan3

            loaded = (load_stylegan3(path, device=device) if is_stylegan3_file(path)  # type: ignore[assignment]
                      else load_generator(path, device=device))
            for p in loaded.generator.parameters():
                p.requires_grad_(False)
            self._generators[key] = loaded
        return self._generators[key]

    def splits(self) -> list[str]:
        return ["train", "test"]

    @abstractmethod
    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        """Images of a split, [N, 3, H, W] in [-1, 1] (deterministic order)."""

    def poses(self, split: str = "test", limit: int | None = None) -> torch.Tensor | None:
        """User transforms of a split's images, float64 [N, 3] rows (r degrees CCW, tx, ty fractions of the side,
        right / down), or None when the domain's images are not aligned crops of unaligned frames.

        When not None, `images(split)` are the *aligned* crops (what inverters and encoders see) and
        `unaligned_images(split)` the frames the faces came from; `make_transform(r, tx, ty)` of
        `zoo.stylegan3.transforms` carries the first into the second (StyleGAN3 domains, stylegan3-editing
        convention: the generator renders the unaligned frame with `transform=(r, tx, ty)`)."""
        return None

    def unaligned_images(self, split: str = "test", limit: int | None = None) -> torch.Tensor | None:
        """The unaligned frames of a split, [N, 3, H, W] in [-1, 1], same order as `images(split)`; None when
        `poses(split)` is None."""
        return None

    def labels(self, split: str = "test", limit: int | None = None) -> pd.DataFrame | None:
        """Ground-truth labels of a split, one row per image (None when unknown)."""
        return None

    def identity_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """Embedder images [B, 3, H, W] in [-1, 1] -> L2-normalised identity embeddings [B, D]."""
        raise NotImplementedError(f"domain '{self.name}' has no identity model")

    def attribute_scorers(self, device: str | torch.device = "cpu") -> dict[str, AttributeScorer]:
        """Named attribute scorers (e.g. smile probability, yaw) used to measure edits."""
        return {}

    def directions(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Named editing directions in W ([w_dim] or [n_styles, w_dim])."""
        return {}

    def direction_fit(self) -> dict[str, dict]:
        """Fit report per direction (held-out accuracy / correlation of the boundary), when known."""
        return {}

    def edit_region(self, direction: str, device: str | torch.device = "cpu") -> torch.Tensor | None:
        """0/1 mask [H, W] of the pixels the attribute of `direction` occupies (the bench reports the mean |change|
        there, what a person looks at), or None when unknown (the whole image is used)."""
        return None

    def prepare_input(self, path: Path) -> tuple[Path | None, str | None]:
        """The file to read for a user's input `path` (e.g. its FFHQ-aligned crop), with a one-line note, or
        (None, why it is skipped). Default: the file itself."""
        return path, None

    def reference(self) -> str:
        """What `registry.get_domain` takes to find this domain again in another process: its registered name (a
        domain file: the file's path)."""
        return self.name

    def method_options(self, method: str) -> dict[str, Any]:
        """Options this domain gives `method` (a domain file's `[methods.NAME]`, e.g. official weights); {} here."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "resolution": self.resolution, "splits": self.splits(),
                "card": self.card.to_dict(), "weights": {k: v.to_dict() for k, v in self.weights.items()}}
