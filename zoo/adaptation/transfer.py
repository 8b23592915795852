"""Domain adaptation by transferring an inversion from a source generator to a fine-tuned target generator
(HyperStyle `scripts/run_domain_adaptation.py` @ a723c73, `utils/domain_adaptation_utils.py:run_domain_adaptation`).

For images x of the source domain:
1. codes = ReStyle-e4e W+ codes after `restyle_iters` iterations (official default 2) from the source average image;
2. Δ = the source HyperStyle's accumulated offsets after `hyperstyle_iters` iterations on the *source* generator
   (official README example 2), kept only on `layers` (official: indices 14,15,17,18,20,21,23,24 = the 128-1024-px
   convs of a 1024-px generator, see `layers.py`);
3. target render = G_target(codes, weights_deltas=Δ): in each kept layer W_target ⊙ (1 + Δ), then modulation and
   demodulation as usual.

Methods (all share the codes of step 1):
* ``hyperstyle`` — steps 1-3;
* ``codes`` — codes only (no offsets): the latent-transfer baseline;
* ``pti`` — PTI's pivotal tuning on the source generator from the same codes (pivots), its additive weight changes
  (tuned − source, `TunedWeights`) added to the target generator on the same `layers` (every parameter of those
  styled layers): the "PTI-tuned source weights transferred" baseline.

Deviation from the official script: the official render draws fresh noise (`randomize_noise=True`); renders here use
the generators' fixed noise buffers so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import registry
from ..domain import Domain
from ..errors import InputError
from ..inversion import TunedWeights, WeightOffsets, render_with_change
from .layers import filter_deltas, select_layers, slot_parameter_prefixes

METHODS = ("hyperstyle", "codes", "pti")


@dataclass(frozen=True)
class AdaptOptions:
    """Settings of `adapt` (defaults: the official script's where it has one)."""

    layers: str | tuple[int, ...] = "default"  # see layers.select_layers
    restyle_iters: int = 2  # official restyle_n_iterations default
    hyperstyle_iters: int = 2  # official README example (--n_iters_per_batch=2)
    pti_steps: int | None = None  # None: the pti refiner's embedded-domain setting
    device: str = "cpu"


@dataclass
class AdaptationResult:
    """Per image b: `sources` [B, 3, H, W] (inputs, [-1, 1]), `codes` [B, n_styles, D] (source ReStyle-e4e),
    per method `source_recons[m]` (the source generator with the same codes and the same transferred change, i.e.
    what the change does at home) and `targets[m]` (the target generator's render), both [B, 3, H, W] clamped to
    [-1, 1]; `layers` the slot indices that received changes; `seconds[m]` wall time of the method's source work."""

    sources: torch.Tensor
    codes: torch.Tensor
    layers: list[int]
    source_recons: dict[str, torch.Tensor] = field(default_factory=dict)
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def strips(self, method: str) -> torch.Tensor:
        """[B, 3, H, 3W]: source | source reconstruction | target render, per image."""
        return torch.cat([self.sources, self.source_recons[method], self.targets[method]], dim=-1)


def check_aligned(source: Domain, target: Domain, device: str = "cpu") -> None:
    """Raise InputError unless the two generators share the architecture (same layer slots and W+ shape), the
    precondition of transferring codes and per-layer offsets."""
    gs, gt = source.generator(device).generator, target.generator(device).generator
    shape = lambda g: [(s.name, s.out_channels, s.in_channels, s.kernel_size) for s in g.layer_slots()]  # noqa: E731
    if shape(gs) != shape(gt) or (gs.n_latent, gs.style_dim) != (gt.n_latent, gt.style_dim):
        raise InputError(f"domains '{source.name}' and '{target.name}' have different generator architectures; "
                         "adaptation needs a target generator fine-tuned from the source one")


def restrict_tuned(change: TunedWeights, prefixes: Sequence[str]) -> TunedWeights:
    """Keep only the tuned parameters whose names start with one of `prefixes`."""
    pre = tuple(prefixes)
    return TunedWeights([{k: v for k, v in d.items() if pre and k.startswith(pre)} for d in change.deltas])


@torch.no_grad()
def _render(generator: torch.nn.Module, codes: torch.Tensor, change: Any) -> torch.Tensor:
    return render_with_change(generator, codes, change).clamp(-1, 1).cpu()


def source_codes(images: torch.Tensor, source: Domain, restyle_iters: int = 2, device: str = "cpu") -> torch.Tensor:
    """ReStyle-e4e W+ codes [B, n_styles, D] of `images` after `restyle_iters` iterations (from the average image)."""
    inv = registry.create_inverter_for("restyle_e4e", source, {"n_iters": restyle_iters}, device=device)
    return inv.invert(images, source).latents.detach()


def source_offsets(images: torch.Tensor, source: Domain, hyperstyle_iters: int = 2,
                   device: str = "cpu") -> list[torch.Tensor | None]:
    """The source HyperStyle's accumulated offsets after `hyperstyle_iters` iterations on the source generator: one
    entry per generator slot, None or [B, out, in, 1|k, 1|k] (untuned slots None)."""
    hs = registry.create_inverter_for("hyperstyle", source, {"n_iters": hyperstyle_iters}, device=device)
    inv = hs.invert(images, source)
    assert isinstance(inv.change, WeightOffsets)
    return list(inv.change.deltas)


def adapt(images: torch.Tensor, source: Domain, target: Domain, methods: Sequence[str] = ("hyperstyle",),
          options: AdaptOptions | None = None) -> AdaptationResult:
    """Transfer `images` [B, 3, H, W] in [-1, 1] (source domain) to `target` with each of `methods`.

    Raises InputError for an unknown method, misaligned generators or a bad layer list, and CheckpointError (with
    the train command) when the source lacks the ReStyle-e4e / HyperStyle weights a method needs.
    """
    import time

    opt = options or AdaptOptions()
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise InputError(f"unknown adaptation method(s) {bad}: choose from {', '.join(METHODS)}")
    check_aligned(source, target, opt.device)
    g_src = source.generator(opt.device).generator
    g_tgt = target.generator(opt.device).generator
    slots = g_src.layer_slots()
    layers = select_layers(opt.layers, slots)
    x = images.to(opt.device)
    t0 = time.perf_counter()
    codes = source_codes(x, source, opt.restyle_iters, opt.device)
    t_codes = time.perf_counter() - t0
    res = AdaptationResult(sources=images.detach().clamp(-1, 1).cpu(), codes=codes.cpu(), layers=layers,
                           options={"layers": opt.layers, "restyle_iters": opt.restyle_iters,
                                    "hyperstyle_iters": opt.hyperstyle_iters, "pti_steps": opt.pti_steps})
    for m in methods:
        t0 = time.perf_counter()
        if m == "codes":
            change: Any = None
        elif m == "hyperstyle":
            change = WeightOffsets(filter_deltas(source_offsets(x, source, opt.hyperstyle_iters, opt.device), layers))
        else:  # pti: pivots = the same ReStyle-e4e codes
            pti_opts: dict[str, Any] = {"restyle_e4e.n_iters": opt.restyle_iters}
            if opt.pti_steps is not None:
                pti_opts["pti.steps"] = opt.pti_steps
            pti = registry.create_inverter_for("pti@restyle_e4e", source, pti_opts, device=opt.device)
            inv = pti.invert(x, source)
            assert isinstance(inv.change, TunedWeights)
            change = restrict_tuned(inv.change, slot_parameter_prefixes(slots, layers))
        res.seconds[m] = round(time.perf_counter() - t0 + t_codes, 3)
        res.source_recons[m] = _render(g_src, codes, change)
        res.targets[m] = _render(g_tgt, codes, change)
    return res
