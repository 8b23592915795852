"""GANSpace (Härkönen et al. 2020): principal components of W, w' = w + step * sigma_k * c_k on a layer range."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from zoo.cards import Card
from zoo.domain import Domain
from zoo.editor import Editor

from .layers import layer_mask


@dataclass(frozen=True)
class GANSpaceOptions:
    n_components: int = field(default=5, metadata={"help": "number of principal components exposed (pc0..)"})
    n_samples: int = field(default=10_000, metadata={"help": "mapped z samples for the PCA"})
    first_layer: int = field(default=0, metadata={"help": "first W+ layer edited"})
    last_layer: int | None = field(default=None, metadata={"help": "last W+ layer edited (None: all)"})
    seed: int = field(default=0, metadata={"help": "seed of the z samples"})


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
        self._pca: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def components(self, domain: Domain) -> torch.Tensor:
        """[n_components, w_dim] principal directions scaled by their standard deviations (cached per domain)."""
        if domain.name not in self._pca:
            g = domain.generator().generator
            z = torch.randn(self.options.n_samples, g.style_dim, generator=torch.Generator().manual_seed(self.options.seed))
            w = torch.cat([g.style(z[i : i + 2000].to(g.device)).cpu() for i in range(0, len(z), 2000)])
            w = w - w.mean(0)
            _, s, vh = torch.linalg.svd(w, full_matrices=False)
            std = s / (len(w) - 1) ** 0.5
            self._pca[domain.name] = vh[: self.options.n_components] * std[: self.options.n_components, None]
        return self._pca[domain.name]

    def directions(self, domain: Domain) -> list[str]:
        return [f"pc{i}" for i in range(self.options.n_components)]

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        c = self.components(domain)[int(direction[2:])].to(latents)
        mask = layer_mask(latents, self.options.first_layer, self.options.last_layer)
        return latents + step * c * mask
