"""GANSpace (Härkönen et al. 2020): principal components of W, w' = w + step * sigma_k * c_k on a layer range.

Edits are (component, first layer, last layer, strength) as in the paper's named edits: the direction `pc3`
uses the editor's layer range options, `pc3@2-5` edits W+ layers 2..5 only (inclusive), and the step is the
strength in standard deviations of the component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.cards import Card
from zoo.domain import Domain
from zoo.editor import Editor

from .layers import layer_mask

EDIT = re.compile(r"^pc(\d+)(?:@(\d+)-(\d+))?$")


@dataclass(frozen=True)
class GANSpaceOptions:
    n_components: int = field(default=5, metadata={"help": "number of principal components exposed (pc0..)"})
    n_samples: int = field(default=10_000, metadata={"help": "mapped z samples for the PCA"})
    first_layer: int = field(default=0, metadata={"help": "first W+ layer edited"})
    last_layer: int | None = field(default=None, metadata={"help": "last W+ layer edited (None: all)"})
    seed: int = field(default=0, metadata={"help": "seed of the z samples"})


@dataclass
class PCA:
    components: torch.Tensor  # [n_components, w_dim], unit rows
    std: torch.Tensor  # [n_components]
    explained: torch.Tensor  # [n_components] fraction of the total variance
    mean: torch.Tensor  # [w_dim]


class GANSpace(Editor):
    """Directions pc0..pc{n-1}: unit principal components of w = mapping(z) scaled by their std, so step 1 is one
    standard deviation; latents [B, n_styles, w_dim]."""

    name = "ganspace"
    Options = GANSpaceOptions
    card = Card(
        title="GANSpace: Discovering Interpretable GAN Controls",
        authors="Erik Härkönen, Aaron Hertzmann, Jaakko Lehtinen, Sylvain Paris", year=2020,
        url="https://arxiv.org/abs/2004.02546", code_url="https://github.com/harskish/ganspace",
        licence="Apache-2.0", citation="Härkönen et al., NeurIPS 2020",
    )

    def __init__(self, options=None, **overrides) -> None:
        super().__init__(options, **overrides)
        self._pca: dict[str, PCA] = {}

    @torch.no_grad()
    def pca(self, domain: Domain) -> PCA:
        """PCA of `n_samples` mapped z (seeded; cached per domain)."""
        if domain.name not in self._pca:
            g = domain.generator().generator
            z = torch.randn(self.options.n_samples, g.style_dim,
                            generator=torch.Generator().manual_seed(self.options.seed))
            w = torch.cat([g.style(z[i : i + 2000].to(g.device)).cpu() for i in range(0, len(z), 2000)]).double()
            mean = w.mean(0)
            _, s, vh = torch.linalg.svd(w - mean, full_matrices=False)
            var = s**2 / (len(w) - 1)
            k = self.options.n_components
            self._pca[domain.name] = PCA(vh[:k].float(), var[:k].sqrt().float(), (var[:k] / var.sum()).float(),
                                         mean.float())
        return self._pca[domain.name]

    def components(self, domain: Domain) -> torch.Tensor:
        """[n_components, w_dim] principal directions scaled by their standard deviations."""
        p = self.pca(domain)
        return p.components * p.std[:, None]

    def directions(self, domain: Domain) -> list[str]:
        return [f"pc{i}" for i in range(self.options.n_components)]

    def accepts(self, direction: str, domain: Domain) -> bool:
        m = EDIT.match(direction)
        return m is not None and int(m[1]) < self.options.n_components and (m[2] is None or int(m[2]) <= int(m[3]))

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        m = EDIT.match(direction)
        if m is None:
            raise ValueError(f"GANSpace direction {direction!r} is not 'pcK' or 'pcK@first-last'")
        c = self.components(domain)[int(m[1])].to(latents)
        first, last = (int(m[2]), int(m[3])) if m[2] is not None else (self.options.first_layer,
                                                                        self.options.last_layer)
        mask = layer_mask(latents, first, last)
        return latents + step * c * mask

    def direction_table(self, domain: Domain) -> list[dict[str, Any]]:
        p = self.pca(domain)
        return [{"direction": f"pc{i}", "std": round(float(p.std[i]), 4),
                 "explained_variance": round(float(p.explained[i]), 4)} for i in range(len(p.std))]
