"""PTI — Pivotal Tuning Inversion (Roich et al.), faithful to danielroich/PTI (anchors §3, §2.3).

Stage 1 (pivot): the Karras W projector with PTI's settings — 450 steps, schedule peak lr 0.01 (the function default
`initial_learning_rate`, which overrides the config's 5e-3 from step 0 on), w_avg of 600 mapped z, noise maps
optimised (on a copy: the tuned generator later uses the generator's *original* fixed noise buffers, as the official
code does with its deep-copied G), the same 1e5 noise regulariser. `pivot_space="W+"` = PTI's `w_plus_projector`.

Stage 2 (pivotal tuning): Adam lr 3e-4 on ALL generator parameters (mapping + synthesis; the mapping gets no gradient
because the pivot is already a w, so it is left untouched, as in the official run), loss 1.0 * MSE + 1.0 * LPIPS-Alex
between G(pivot) rendered with the fixed noise and the target, at most 350 steps, stopping as soon as the LPIPS is
<= 0.06 (checked before the backward pass, as the single-ID coach does). The locality regulariser (off by default,
like the official) samples z, maps it with truncation psi 0.5 through the *original* mapping, moves alpha = 30 from
the pivot towards it (w_r = w_p + alpha (w_z - w_p) / ||w_z - w_p|| over the whole [L, D] code) and adds
0.1 * MSE + 0.1 * LPIPS between the original and the tuned generator at w_r, both without noise.

Per image: every image is tuned from the original weights, one after another (stage 1 is batched); the result is
stored as `TunedWeights` — per image only the parameters that changed, as additive deltas tuned - original
(float32, or float16 with `delta_dtype=float16`) — not a generator copy. `Inversion.render` adds the deltas back, so
edits of a PTI inversion render through that image's tuned generator.

LPIPS size: the official computes PTI's LPIPS at the generator's resolution (1024). `lpips_size=None` (auto) does
that for generators >= 256 px and uses 256 below (the embedded 32 px domain: AlexNet at 32 px has 1x1 maps from
conv3 on); the 0.06 threshold is read on that LPIPS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from zoo.cards import Card
from zoo.inversion import Inversion, TunedWeights, render_with_change
from zoo.inverter import Inverter

from ._common import (EmbeddedOptionsMixin, ImageClock, Perceptual, check_option_applies, lpips_network,
                      resolve_lpips_size, w_statistics)
from .projector import ProjectorOptions, project

if TYPE_CHECKING:
    from zoo.domain import Domain
    from zoo.stylegan2 import Generator


@dataclass(frozen=True)
class PTITuneOptions:
    """Options of PTI's pivotal tuning (stage 2), alone the options of the `pti` refiner (`pti@EMBEDDER`: the pivot is
    the embedder's code). Defaults = the paper configuration (danielroich/PTI configs/hyperparameters.py)."""

    steps: int = field(default=350, metadata={"help": "maximum tuning steps (max_pti_steps 350)"})
    lr: float = field(default=3e-4, metadata={"help": "Adam lr of the generator tuning (3e-4)"})
    l2_weight: float = field(default=1.0, metadata={"help": "weight of the MSE tuning loss"})
    lpips_weight: float = field(default=1.0, metadata={"help": "weight of the LPIPS tuning loss"})
    lpips_threshold: float = field(default=0.06, metadata={
        "help": "early stop: stop tuning an image once its LPIPS <= this (0.06; <= 0: never)"})
    lpips_size: int | None = field(default=None, metadata={
        "help": "LPIPS input size; none = generator resolution if >= 256 (official) else 256; 0 = no resize"})
    locality: bool = field(default=False, metadata={"help": "locality regulariser (official default: off)"})
    locality_alpha: float = field(default=30.0, metadata={"help": "distance from the pivot of the regulariser codes"})
    locality_psi: float = field(default=0.5, metadata={"help": "truncation of the regulariser's sampled w"})
    locality_l2: float = field(default=0.1, metadata={"help": "MSE weight of the locality regulariser"})
    locality_lpips: float = field(default=0.1, metadata={"help": "LPIPS weight of the locality regulariser"})
    locality_samples: int = field(default=1, metadata={"help": "sampled codes per regulariser evaluation"})
    locality_interval: int = field(default=1, metadata={"help": "apply the regulariser every N steps"})
    delta_dtype: Literal["float32", "float16"] = field(default="float32", metadata={
        "help": "storage dtype of the per-image weight deltas"})
    seed: int = field(default=303, metadata={"help": "seed of the locality regulariser's samples"})

    def __post_init__(self) -> None:
        """Raises InputError for locality_* options without locality=true (they would be ignored)."""
        for name in ("locality_alpha", "locality_psi", "locality_l2", "locality_lpips", "locality_samples",
                     "locality_interval"):
            check_option_applies(self, name, self.locality, "the locality regulariser is off; set locality=true too")


@dataclass(frozen=True)
class PTIOptions(PTITuneOptions):
    """Options of `pti`: the pivot projection (stage 1) and the tuning (`PTITuneOptions`). Defaults = the paper
    configuration. `pti` equals `pti@optim` (`pti@optim_wplus` for pivot_space=W+) when optim gets the options of
    `PTIInverter.pivot_options()` (steps=pivot_steps, lr=pivot_lr, w_avg_samples, noise_regularize=
    pivot_noise_regularize, mse=pivot_mse, early_stop_patience=pivot_patience, seed, lpips_size)."""

    pivot_steps: int = field(default=450, metadata={"help": "W-projection steps of the pivot (first_inv_steps 450)"})
    pivot_lr: float = field(default=0.01, metadata={"help": "peak lr of the pivot projection schedule (0.01)"})
    pivot_space: Literal["W", "W+"] = field(default="W", metadata={
        "help": "pivot space: W (projector.py, official default) or W+ (w_plus_projector.py)"})
    w_avg_samples: int = field(default=600, metadata={"help": "mapped z samples for w_avg / w_std (PTI: 600)"})
    pivot_noise_regularize: float = field(default=1e5, metadata={"help": "noise regulariser weight of the pivot"})
    pivot_mse: float = field(default=0.0, metadata={
        "help": "MSE weight added to the pivot projection's LPIPS (official: 0)"})
    pivot_patience: int = field(default=0, metadata={
        "help": "early stop of the pivot projection after this many steps without improvement (0: off)"})
    seed: int = field(default=303, metadata={"help": "seed of the pivot projection and the regulariser samples"})


PTI_CARD = Card(
    title="Pivotal Tuning for Latent-based Editing of Real Images",
    authors="D. Roich, R. Mokady, A. H. Bermano, D. Cohen-Or",
    year=2022,
    url="https://arxiv.org/abs/2106.05744",
    code_url="https://github.com/danielroich/PTI",
    citation="Roich, Mokady, Bermano, Cohen-Or, Pivotal Tuning for Latent-based Editing of Real Images, "
             "ACM Transactions on Graphics 42(1), 2022 (arXiv 2106.05744, 2021)",
    licence="reimplementation MIT; reference code MIT (danielroich/PTI)",
    notes="Pivot: W projection 450 steps (peak lr 0.01, w_avg of 600 z, noise optimised on a copy). Tuning: Adam "
          "3e-4 on all generator parameters, MSE + LPIPS-Alex (1/1), <= 350 steps, stop at LPIPS <= 0.06; locality "
          "regulariser available, off by default. Tuned weights kept as per-image additive deltas (TunedWeights).",
)


@dataclass
class PTIState:
    loaded: Any  # LoadedGenerator
    w_avg: torch.Tensor | None  # None for the refiner (no projection)
    w_std: float
    perceptual: Perceptual | None  # the tuning's LPIPS


class PTITuning:
    """Stage 2 of PTI, shared by the `pti` inverter and the `pti` refiner: per-image tuning of all generator
    parameters from a pivot (uses the `PTITuneOptions` fields of `self.options`)."""

    options: Any
    device: torch.device

    def tuning_perceptual(self, g: Generator) -> Perceptual | None:
        """LPIPS of the tuning (auto size: the generator's resolution if >= 256 as the official, else 256); None when
        no term uses it (lpips_weight 0, no LPIPS early stop, locality regulariser off or without LPIPS)."""
        o = self.options
        if o.lpips_weight > 0 or (o.locality and o.locality_lpips > 0) or o.lpips_threshold > 0:
            return Perceptual(lpips_network(self.device),
                              resolve_lpips_size(o.lpips_size, g.size, official_native=True))
        return None

    def tune_all(self, g: Generator, st: PTIState, pivots: torch.Tensor, x: torch.Tensor, *,
                 progress: bool = False) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor, list[float],
                                                 list[int], list[float]]:
        """Tune every image of x [B, 3, H, W] from its pivot [B, n_latent, D], one after another from the original
        weights. Returns (deltas per image, reconstructions [B, 3, H, W], seconds per image, steps run, last LPIPS)."""
        deltas, recons, seconds, tune_steps, final_lpips = [], [], [], [], []
        for b in range(len(x)):
            clock = ImageClock(1)
            delta, recon, n_steps, lp = self.tune(g, st, pivots[b : b + 1], x[b : b + 1], progress=progress,
                                                  desc=f"pti tune {b + 1}/{len(x)}")
            clock.charge([0])
            seconds.append(clock.seconds[0])
            deltas.append(delta)
            recons.append(recon)
            tune_steps.append(n_steps)
            final_lpips.append(lp)
        return deltas, torch.cat(recons), seconds, tune_steps, final_lpips

    def tune(
        self, g: Generator, st: PTIState, w_pivot: torch.Tensor, target: torch.Tensor, *, progress: bool = False,
        desc: str = "pti tune",
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, int, float]:
        """Tune a fresh copy of the weights on one image. Returns (deltas of changed parameters, reconstruction
        [1, 3, H, W] through the stored deltas' generator, steps run, last LPIPS)."""
        o = self.options
        # a generator may name what pivotal tuning changes (StyleGAN3: synthesis without the Fourier input layer)
        orig = g.tuning_parameters() if hasattr(g, "tuning_parameters") else dict(g.named_parameters())
        params = {k: p.detach().clone().requires_grad_(True) for k, p in orig.items()}
        opt = torch.optim.Adam(params.values(), lr=o.lr)
        perc = st.perceptual
        need_lpips = perc is not None and (o.lpips_weight > 0 or o.lpips_threshold > 0)
        with torch.no_grad():
            target_feats = perc.features(target) if need_lpips else None
        gen = torch.Generator().manual_seed(o.seed + 1)  # locality samples: the same stream for every image
        kwargs = dict(input_is_latent=True, randomize_noise=False)
        lp_val = float("nan")
        steps_run = 0
        bar = tqdm(range(o.steps), desc=desc, unit="step", leave=False, disable=not progress)
        for step in bar:
            img, _ = functional_call(g, params, ([w_pivot],), kwargs)
            loss = o.l2_weight * F.mse_loss(img, target)
            if need_lpips:
                lp = perc.distance(perc.features(img), target_feats).sum()
                lp_val = float(lp.detach())
                loss = loss + o.lpips_weight * lp
                if o.lpips_threshold > 0 and lp_val <= o.lpips_threshold:
                    break  # official: checked before backward
            if o.locality and step % max(1, o.locality_interval) == 0:
                loss = loss + self.locality_loss(g, st, params, w_pivot, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps_run += 1
            if progress:
                bar.set_postfix(lpips=f"{lp_val:.4f}", loss=f"{float(loss):.4f}")
        bar.close()
        dtype = torch.float16 if o.delta_dtype == "float16" else torch.float32
        with torch.no_grad():
            delta = {k: (params[k] - orig[k]).to(dtype) for k in orig if not torch.equal(params[k], orig[k])}
            if dtype == torch.float32:
                recon, _ = functional_call(g, params, ([w_pivot],), kwargs)
            else:  # what rendering the stored (rounded) deltas gives
                recon = render_with_change(g, w_pivot, TunedWeights([delta]))
        return delta, recon, steps_run, lp_val

    def locality_loss(self, g: Generator, st: PTIState, params: dict[str, torch.Tensor], w_pivot: torch.Tensor,
                      gen: torch.Generator) -> torch.Tensor:
        """PTI's `ball_holder_loss_lazy`: keep the tuned generator equal to the original one around the pivot."""
        o = self.options
        avg = st.loaded.latent_avg.to(w_pivot).reshape(1, 1, -1)
        zero_noise = [torch.zeros_like(n) for n in g.fixed_noise()]
        kwargs = dict(input_is_latent=True, noise=zero_noise, randomize_noise=False)
        total = w_pivot.new_zeros(())
        for _ in range(max(1, o.locality_samples)):
            z = torch.randn(1, g.style_dim, generator=gen).to(w_pivot.device)
            with torch.no_grad():
                w_z = g.style(z).reshape(1, 1, -1)
                w_z = (avg + o.locality_psi * (w_z - avg)).expand_as(w_pivot)
                direction = w_z - w_pivot
                w_r = w_pivot + o.locality_alpha * direction / direction.norm(p=2)
                old, _ = g([w_r], **kwargs)
            new, _ = functional_call(g, params, ([w_r],), kwargs)
            if o.locality_l2 > 0:
                total = total + o.locality_l2 * F.mse_loss(new, old)
            if o.locality_lpips > 0 and st.perceptual is not None:
                total = total + o.locality_lpips * st.perceptual(new, old).mean()
        return total / max(1, o.locality_samples)


class PTIInverter(EmbeddedOptionsMixin, PTITuning, Inverter):
    """Pivotal tuning: W pivot by projection, then per-image generator tuning stored as weight deltas."""

    name = "pti"
    kind = "optimization"
    generators = ("stylegan2", "stylegan3")
    latent_space = "W & weights"
    changes_generator = True
    batchable = True  # the pivot projection is batched; the tuning runs image by image
    version = "1"
    card = PTI_CARD
    Options = PTIOptions

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"pivot_steps": 20, "steps": 10, "lpips_size": 64}  # `zoo bench --quick`: a smoke run

    def load(self, domain: Domain) -> PTIState:
        loaded = domain.generator(self.device)
        g = loaded.generator
        w_avg, w_std = w_statistics(g, self.options.w_avg_samples)
        return PTIState(loaded, w_avg, w_std, self.tuning_perceptual(g))

    def pivot_options(self, with_lpips: bool = True) -> ProjectorOptions:
        """The projector settings of stage 1 (distance: LPIPS + pivot_mse * MSE; MSE alone when no LPIPS is wanted)."""
        o = self.options
        return ProjectorOptions(steps=o.pivot_steps, lr=o.pivot_lr, noise_regularize=o.pivot_noise_regularize,
                                w_avg_samples=o.w_avg_samples, seed=o.seed, early_stop_patience=o.pivot_patience,
                                lpips_weight=1.0 if with_lpips else 0.0,
                                mse=o.pivot_mse if with_lpips else (o.pivot_mse or 1.0))

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        x = self.check_images(images, domain)
        st = self.prepare(domain)
        g = st.loaded.generator
        o = self.options
        # stage 1: the pivot (noise maps optimised in the projection only; discarded afterwards)
        pivot = project(g, x, w_avg=st.w_avg, w_std=st.w_std, options=self.pivot_options(st.perceptual is not None),
                        w_plus=o.pivot_space == "W+", perceptual=self._pivot_perceptual(st, g),
                        progress=progress, desc="pti pivot")
        with torch.no_grad():
            pivot_recon, _ = g([pivot.latents], input_is_latent=True, randomize_noise=False)
        # stage 2: per-image tuning from the original weights
        deltas, recons, tune_seconds, tune_steps, final_lpips = self.tune_all(g, st, pivot.latents, x,
                                                                             progress=progress)
        seconds = pivot.seconds + torch.tensor(tune_seconds, dtype=pivot.seconds.dtype)
        extras = {"pivot_steps_run": pivot.steps_run, "tune_steps_run": tune_steps, "final_lpips": final_lpips,
                  "pivot_reconstructions": pivot_recon, "pivot_noise": pivot.noise}
        return Inversion(latents=pivot.latents, reconstructions=recons, seconds=seconds,
                         change=TunedWeights(deltas), noise=None, method=self.name, domain=domain, extras=extras)

    def _pivot_perceptual(self, st: PTIState, g: Generator) -> Perceptual | None:
        """The pivot projection's LPIPS: auto = 256 like the official projector (whatever the tuning size); an explicit
        `lpips_size` applies to both stages."""
        if st.perceptual is None:
            return None
        return Perceptual(st.perceptual.model, resolve_lpips_size(self.options.lpips_size, g.size))
