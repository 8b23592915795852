"""InterFaceGAN (Shen et al. 2020): move W+ codes along a linear attribute boundary's normal, w' = w + step * n.

Conditional editing (paper §2.2): with `condition=a,b` the edit direction is the primal normal with its components
along the conditioned attributes' normals projected out, n' = n - N (N^T N)^-1 N^T n, rescaled to the primal
direction's length so the step units stay the same. The layer range (`first_layer`..`last_layer`) restricts the
edit to part of W+, as in the per-layer edits of the StyleGAN-based InterFaceGAN follow-ups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.cards import Card
from zoo.domain import Domain
from zoo.editor import Editor, check_layer_range
from zoo.errors import UnknownNameError

from .layers import layer_mask


@dataclass(frozen=True)
class InterFaceGANOptions:
    first_layer: int = field(default=0, metadata={"help": "first W+ layer edited"})
    last_layer: int | None = field(default=None, metadata={"help": "last W+ layer edited (None: all)"})
    condition: str = field(default="", metadata={
        "help": "comma-separated directions to keep fixed (projected out of the edit direction)"})


def conditional_direction(primal: torch.Tensor, conditions: list[torch.Tensor]) -> torch.Tensor:
    """`primal` [w_dim] or [L, w_dim] minus its projection on span(`conditions`) (per layer), rescaled to the
    primal's norm (per layer)."""
    if not conditions:
        return primal
    rows = max([primal.reshape(-1, primal.shape[-1]).shape[0]] + [c.reshape(-1, c.shape[-1]).shape[0]
                                                                   for c in conditions])
    p = primal.reshape(-1, primal.shape[-1]).expand(rows, -1)
    cs = torch.stack([c.reshape(-1, c.shape[-1]).expand(rows, -1) for c in conditions], 2)  # [L, D, k]
    coef = torch.linalg.lstsq(cs, p.unsqueeze(-1)).solution  # [L, k, 1]
    rest = p - (cs @ coef).squeeze(-1)
    out = rest * p.norm(dim=-1, keepdim=True) / rest.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return out[0] if primal.ndim == 1 and rows == 1 else out


class InterFaceGAN(Editor):
    """Directions come from the domain (`Domain.directions()`: [w_dim] or [n_styles, w_dim], in the domain's
    step units); latents [B, n_styles, w_dim] -> edited latents of the same shape."""

    name = "interfacegan"
    Options = InterFaceGANOptions
    card = Card(
        title="Interpreting the Latent Space of GANs for Semantic Face Editing",
        authors="Yujun Shen, Jinjin Gu, Xiaoou Tang, Bolei Zhou", year=2020,
        url="https://arxiv.org/abs/1907.10786", code_url="https://github.com/genforce/interfacegan",
        licence="MIT", citation="Shen et al., CVPR 2020",
    )

    def __init__(self, options: Any = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        check_layer_range(self.options.first_layer, self.options.last_layer, None, self._options_label())

    def _options_label(self) -> str:
        return f"interfacegan first_layer={self.options.first_layer}, last_layer={self.options.last_layer}"

    def check_direction(self, direction: str, domain: Domain, n_styles: int) -> None:
        """InputError when the options' layer range is beyond the generator's n_styles W+ layers."""
        check_layer_range(self.options.first_layer, self.options.last_layer, n_styles, self._options_label())

    def directions(self, domain: Domain) -> list[str]:
        return sorted(domain.directions())

    def conditions(self) -> list[str]:
        return [c.strip() for c in self.options.condition.split(",") if c.strip()]

    def direction_vector(self, direction: str, domain: Domain, device: torch.device | str = "cpu") -> torch.Tensor:
        """The (conditional) edit direction [w_dim] or [n_styles, w_dim] in the domain's step units."""
        table = domain.directions(device)
        for c in self.conditions():
            if c not in table:
                raise UnknownNameError.for_name("condition direction", c, sorted(table))
        others = [table[c] for c in self.conditions() if c != direction]
        return conditional_direction(table[direction], others)

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        """latents [B, n_styles, w_dim] + step * n on the layer range; InputError for a range beyond n_styles."""
        mask = layer_mask(latents, self.options.first_layer, self.options.last_layer, self._options_label())
        d = self.direction_vector(direction, domain, latents.device).to(latents)
        if d.ndim == 1:
            d = d.expand(latents.shape[1], -1)
        return latents + step * d * mask

    def scorers_used(self, direction: str, domain: Domain) -> tuple[str, ...]:
        """The domain scorer whose labels fitted `direction` (its fit report's `scored_by`), else ()."""
        scored_by = domain.direction_fit().get(direction, {}).get("scored_by")
        return (str(scored_by),) if scored_by else ()

    def direction_table(self, domain: Domain) -> list[dict[str, Any]]:
        table = domain.directions()
        fit = domain.direction_fit()
        rows = []
        for name in self.directions(domain):
            v = table[name].flatten()
            cos = {f"cos_{o}": round(float(torch.nn.functional.cosine_similarity(v, table[o].flatten(), dim=0)), 3)
                   for o in self.directions(domain) if o != name}
            rows.append({"direction": name, "step_norm": round(float(v.norm()), 4), **fit.get(name, {}), **cos})
        return rows
