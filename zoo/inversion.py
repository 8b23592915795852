"""`Inversion`: what an inverter returns, and how to render (edited) latents through its own generator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.func import functional_call

if TYPE_CHECKING:
    from .domain import Domain
    from .stylegan2 import Generator


@dataclass
class WeightOffsets:
    """HyperStyle-style multiplicative offsets: per generator slot (see `Generator.layer_slots()`), None or
    a tensor [B, out, in, k|1, k|1]; the layer uses W * (1 + delta_b) for sample b."""

    deltas: list[torch.Tensor | None]

    def select(self, idx: torch.Tensor) -> WeightOffsets:
        return WeightOffsets([None if d is None else d[idx] for d in self.deltas])


@dataclass
class TunedWeights:
    """PTI-style tuned weights stored as additive deltas per sample: `deltas[b][param_name]` = tuned - original,
    only for parameters that changed. Much smaller than a generator copy per image when tuning is local."""

    deltas: list[dict[str, torch.Tensor]]

    def select(self, idx: torch.Tensor) -> TunedWeights:
        return TunedWeights([self.deltas[int(i)] for i in idx])


GeneratorChange = WeightOffsets | TunedWeights | None


@dataclass
class Inversion:
    """Result of `Inverter.invert` for a batch of B images.

    latents: [B, n_styles, w_dim] W+ codes (W-space methods repeat one w).
    change: None, WeightOffsets or TunedWeights (per-sample generator modification).
    reconstructions: [B, 3, H, W] in about [-1, 1] at the generator's resolution.
    seconds: [B] wall-clock seconds per image (a batch's time split evenly when the method is batched).
    noise: optional per-sample noise maps (list over layers of [B, 1, R, R]) when the method optimises noise.
    """

    latents: torch.Tensor
    reconstructions: torch.Tensor
    seconds: torch.Tensor
    change: GeneratorChange = None
    noise: list[torch.Tensor] | None = None
    method: str = ""
    domain: Domain | None = field(default=None, repr=False)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.latents.shape[0]

    def select(self, idx: Sequence[int] | torch.Tensor) -> Inversion:
        idx = torch.as_tensor(idx, dtype=torch.long)
        change = self.change.select(idx) if self.change is not None else None
        return Inversion(
            self.latents[idx], self.reconstructions[idx], self.seconds[idx], change,
            None if self.noise is None else [n[idx] for n in self.noise], self.method, self.domain, dict(self.extras),
        )

    def render(self, latents: torch.Tensor | None = None, generator: Generator | None = None,
               style_offsets: StyleOffsets = None) -> torch.Tensor:
        """Render `latents` [B, n_styles, w_dim] (default: this inversion's) through the generator as modified for
        each sample, optionally with StyleSpace `style_offsets` (per layer slot None or [B|1, in]); images
        [B, 3, H, W]."""
        if generator is None:
            if self.domain is None:
                raise ValueError("Inversion.render needs a generator or an inversion that knows its domain")
            generator = self.domain.generator().generator
        latents = self.latents if latents is None else latents
        return render_with_change(generator, latents, self.change, self.noise, style_offsets)


StyleOffsets = Sequence[torch.Tensor | None] | None


def _offsets_row(style_offsets: StyleOffsets, b: int) -> StyleOffsets:
    if style_offsets is None:
        return None
    return [None if o is None else (o if o.shape[0] == 1 else o[b : b + 1]) for o in style_offsets]


def render_with_change(
    generator: Generator, latents: torch.Tensor, change: GeneratorChange, noise: list[torch.Tensor] | None = None,
    style_offsets: StyleOffsets = None,
) -> torch.Tensor:
    """Render W+ `latents` [B, L, D] with fixed noise (or the given per-sample noise), a per-sample change and
    optional StyleSpace offsets of the S codes (see `Generator.style_codes`)."""
    latents = latents.to(generator.device)
    if isinstance(change, TunedWeights):
        params = dict(generator.named_parameters())
        outs = []
        for b, delta in enumerate(change.deltas):
            tuned = {k: params[k] + v.to(params[k]) for k, v in delta.items()}
            nb = None if noise is None else [n[b : b + 1] for n in noise]
            img, _ = functional_call(
                generator, tuned, args=([latents[b : b + 1]],),
                kwargs=dict(input_is_latent=True, randomize_noise=False, noise=nb,
                            style_offsets=_offsets_row(style_offsets, b)), strict=False,
            )
            outs.append(img)
        return torch.cat(outs)
    deltas = change.deltas if isinstance(change, WeightOffsets) else None
    img, _ = generator([latents], input_is_latent=True, randomize_noise=False, noise=noise, weights_deltas=deltas,
                       style_offsets=style_offsets)
    return img
