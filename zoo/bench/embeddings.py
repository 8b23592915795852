"""Shared embeddings of composed methods in the bench: `refiner@embedder` compositions that share an embedder (same
name, version, options, weights) embed each image once.

An embedding is keyed exactly like the embedder's own work unit of that image (`WorkUnit` of the embedder: method,
version, options, weights, domain, split, index, image sha256) and computed in the embedder's own fixed blocks
(`block_groups` with the embedder's batch size) under the seed its own bench run would use (`unit_seed` of the
block's first key), so it is the very inversion `zoo bench --methods e4e` computes. Each image's whole `Inversion`
(latents, noise maps, generator change, per-image seconds) is stored as `<cache>/embeddings/<key[:2]>/<key>` +
`.inversion.safetensors` (`Inversion.save`, atomic) and reused by every composition, in this run and later ones.
A composition's record then holds the refinement of that embedding, with per-image seconds = embedding's +
refinement's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError
from ..inversion import INVERSION_SUFFIX, Inversion, TunedWeights, WeightOffsets
from .units import WorkUnit, block_groups, is_batchable, resolved_options, unit_seed

if TYPE_CHECKING:
    from ..composition import ComposedInverter
    from ..domain import Domain
    from .cache import ResultCache


def embedder_units(inverter: ComposedInverter, domain: Domain, units: Sequence[WorkUnit]) -> list[WorkUnit]:
    """The embedder's own work units for the images of a composition's `units` (same keys as its standalone run)."""
    emb = inverter.embedder
    options, weights, version = resolved_options(emb), emb.weights_sha256(domain), str(emb.version)
    return [WorkUnit(emb.name, version, options, weights, u.domain, u.split, u.index, u.image_sha256, u.source,
                     u.frame) for u in units]


class EmbeddingSource:
    """Per-image embeddings of one composition's units: from memory, the cache's `embeddings/` folder, or computed
    (in the embedder's fixed blocks) and stored there. `calls` counts the embedder's `invert` calls."""

    def __init__(self, inverter: ComposedInverter, domain: Domain, units: Sequence[WorkUnit], images: torch.Tensor,
                 cache: ResultCache | None, batch_size: int, seed: int) -> None:
        self.inverter, self.domain, self.images, self.cache, self.seed = inverter, domain, images, cache, seed
        self.units = embedder_units(inverter, domain, units)
        bs = max(1, batch_size) if is_batchable(inverter.embedder) else 1
        self.blocks = block_groups(self.units, bs)
        self.memory: dict[str, Inversion] = {}
        self.calls = 0

    def path(self, key: str) -> Path | None:
        if self.cache is None:
            return None
        return self.cache.root / "embeddings" / key[:2] / f"{key}{INVERSION_SUFFIX}"

    def _load(self, key: str) -> Inversion | None:
        if key in self.memory:
            return self.memory[key]
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        try:
            inv = Inversion.load(path, domain=self.domain, device=self.inverter.device)
        except InputError:  # torn or foreign file: computed again
            return None
        self.memory[key] = inv
        return inv

    def _store(self, key: str, inv: Inversion) -> None:
        self.memory[key] = inv
        path = self.path(key)
        if path is not None:
            plain = Inversion(**{f.name: getattr(inv, f.name) for f in fields(Inversion)})  # no checkpoint decoder
            plain.save(path)

    def get(self, positions: Sequence[int]) -> Inversion:
        """The embedding of the units at `positions` (one Inversion of len(positions) images, in that order),
        computing the missing ones block by block."""
        missing = {self.units[i].key for i in positions if self._load(self.units[i].key) is None}
        for block in self.blocks:
            if not any(self.units[i].key in missing for i in block):
                continue
            torch.manual_seed(unit_seed(self.seed, self.units[block[0]].key))  # as the embedder's own bench run
            self.calls += 1
            inv = self.inverter.embedder.invert(self.images[block], self.domain)
            inv.domain = inv.domain or self.domain
            for j, i in enumerate(block):
                self._store(self.units[i].key, inv.select([j]))
        return concat([self._load(self.units[i].key) for i in positions])  # type: ignore[misc]


def concat(parts: Sequence[Inversion]) -> Inversion:
    """One Inversion of the images of `parts` (in order): latents, reconstructions, seconds, noise maps and
    generator changes concatenated; extras, sources and images dropped. ValueError for mixed kinds of change/noise."""
    first = parts[0]
    if len(parts) == 1:
        return first
    kinds = {type(p.change) for p in parts}
    if len(kinds) > 1 or len({p.noise is None for p in parts}) > 1:
        raise ValueError("cannot concatenate inversions with different kinds of generator change or noise")
    change: Any = None
    if isinstance(first.change, WeightOffsets):
        change = WeightOffsets([None if d is None else torch.cat([p.change.deltas[k] for p in parts])
                                for k, d in enumerate(first.change.deltas)])
    elif isinstance(first.change, TunedWeights):
        change = TunedWeights([d for p in parts for d in p.change.deltas])
    noise = None if first.noise is None else [torch.cat([p.noise[k] for p in parts]) for k in range(len(first.noise))]
    return Inversion(torch.cat([p.latents for p in parts]), torch.cat([p.reconstructions for p in parts]),
                     torch.cat([p.seconds.to(torch.float64) for p in parts]), change, noise, first.method,
                     first.domain)


def embedding_source(inverter: Any, domain: Domain, units: Sequence[WorkUnit], images: torch.Tensor,
                     cache: ResultCache | None, batch_size: int, seed: int) -> EmbeddingSource | None:
    """An EmbeddingSource when `inverter` is a composition (has `refine` and `embedder`), else None."""
    from ..composition import ComposedInverter

    if not isinstance(inverter, ComposedInverter):
        return None
    return EmbeddingSource(inverter, domain, units, images, cache, batch_size, seed)
