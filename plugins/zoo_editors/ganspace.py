"""GANSpace (Härkönen et al. 2020): principal components of W, w' = w + step * sigma_k * c_k on a layer range.

Edits are (component, first layer, last layer, strength) as in the paper's named edits: the direction `pc3`
uses the editor's layer range options, `pc3@2-5` edits W+ layers 2..5 only (inclusive), and the step is the
strength in standard deviations of the component.

A domain that ships a PCA file (a domain file's `[directions.ganspace]`, `Domain.ganspace()`: HyperStyle's /
e4e's `ffhq_pca.pt` with comp, mean, std) uses that PCA instead of computing one, and its named edits
`name = [component, start, end, strength]` become directions: as e4e's / HyperStyle's `editings/ganspace.py`, the
edit moves the latent's coordinate on the component (measured on its first W+ row, in standard deviations) to
`step * strength` on layers [start, end) (end exclusive); step 0 leaves the latent unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.cards import Card
from zoo.domain import Domain
from zoo.editor import Editor, check_layer_range

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
        check_layer_range(self.options.first_layer, self.options.last_layer, None, self._options_label())
        self._pca: dict[str, PCA] = {}

    def _options_label(self) -> str:
        return f"ganspace first_layer={self.options.first_layer}, last_layer={self.options.last_layer}"

    def layer_range(self, direction: str) -> tuple[int, int | None, str]:
        """(first, last, label for errors) of `direction`: its own '@first-last', else the options' range.
        ValueError when `direction` is not 'pcK' or 'pcK@first-last'."""
        m = EDIT.match(direction)
        if m is None:
            raise ValueError(f"GANSpace direction {direction!r} is not 'pcK' or 'pcK@first-last'")
        if m[2] is not None:
            return int(m[2]), int(m[3]), f"ganspace '{direction}'"
        return self.options.first_layer, self.options.last_layer, self._options_label()

    def check_direction(self, direction: str, domain: Domain, n_styles: int) -> None:
        """InputError when the layer range of `direction` (or of the options) is reversed or beyond n_styles."""
        named = self.named_edits(domain).get(direction)
        if named is not None:
            check_layer_range(named.first, named.last - 1, n_styles, f"ganspace '{direction}' [{named.first}, "
                              f"{named.last})")
        elif EDIT.match(direction) is not None:
            first, last, label = self.layer_range(direction)
            check_layer_range(first, last, n_styles, label)

    @staticmethod
    def shipped(domain: Domain) -> dict[str, Any] | None:
        """The domain's own PCA file ({'comp', 'mean', 'std', 'edits'}) or None."""
        fn = getattr(domain, "ganspace", None)
        return fn() if callable(fn) else None

    def named_edits(self, domain: Domain) -> dict[str, Any]:
        """Named edits of the domain's PCA file: name -> (component, first, last exclusive, strength)."""
        shipped = self.shipped(domain)
        return dict(shipped["edits"]) if shipped else {}

    def n_components(self, domain: Domain) -> int:
        shipped = self.shipped(domain)
        return int(shipped["comp"].shape[0]) if shipped else self.options.n_components

    @torch.no_grad()
    def pca(self, domain: Domain) -> PCA:
        """PCA of `n_samples` mapped z (seeded; cached per domain), or the domain's own PCA file."""
        shipped = self.shipped(domain) if domain.name not in self._pca else None
        if shipped is not None:
            comp, std = shipped["comp"].float().cpu(), shipped["std"].float().cpu()
            self._pca[domain.name] = PCA(comp, std, torch.full_like(std, float("nan")), shipped["mean"].float().cpu())
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
        return [f"pc{i}" for i in range(self.n_components(domain))] + sorted(self.named_edits(domain))

    def accepts(self, direction: str, domain: Domain) -> bool:
        if direction in self.named_edits(domain):
            return True
        m = EDIT.match(direction)
        return m is not None and int(m[1]) < self.n_components(domain) and (m[2] is None or int(m[2]) <= int(m[3]))

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        """latents [B, n_styles, w_dim] + step * sigma_k * c_k on the layer range (a named edit of the domain's PCA
        file: its coordinate moved to step * strength on [start, end)); InputError for a range that is reversed
        or beyond n_styles."""
        named = self.named_edits(domain).get(direction)
        if named is not None:
            if step == 0:
                return latents
            p = self.pca(domain)
            comp, std = p.components[named.component].to(latents), p.std[named.component].to(latents)
            coord = ((latents[:, 0] - p.mean.to(latents)) * comp).sum(-1) / std  # [B], on the first W+ row
            delta = (step * named.strength - coord)[:, None] * comp * std  # [B, w_dim]
            mask = torch.zeros(latents.shape[1], 1, dtype=latents.dtype, device=latents.device)
            mask[named.first : named.last] = 1
            return latents + delta[:, None] * mask
        first, last, label = self.layer_range(direction)
        mask = layer_mask(latents, first, last, label)
        c = self.components(domain)[int(EDIT.match(direction)[1])].to(latents)
        return latents + step * c * mask

    def direction_table(self, domain: Domain) -> list[dict[str, Any]]:
        p = self.pca(domain)
        rows = [{"direction": f"pc{i}", "std": round(float(p.std[i]), 4),
                 "explained_variance": round(float(p.explained[i]), 4)} for i in range(len(p.std))]
        return rows + [{"direction": name, "component": e.component, "layers": f"[{e.first}, {e.last})",
                        "strength": e.strength} for name, e in sorted(self.named_edits(domain).items())]
