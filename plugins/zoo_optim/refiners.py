"""The optimisation refiners (second stages of `refiner@embedder` compositions, see `zoo.composition`):

* `pti` — PTI's pivotal tuning with the embedder's codes as pivots (danielroich/PTI `first_inv_type='w+'` uses e4e's
  codes; any W / W+ code works). The tuning is the one of the `pti` inverter (`PTITuning`), so `pti` equals
  `pti@optim` when optim runs PTI's pivot projection (`PTIInverter.pivot_options()`). As PTI does with its own
  projection, the embedding's noise maps are dropped: the tuned generator renders with its fixed noise buffers.
* `optim` / `optim_wplus` — the Karras projector in W / W+ (`project`) started from the embedder's codes instead of
  w_avg ("encoder + optimisation" hybrids). `optim` needs W codes (one code repeated over the layers). With
  `optimize_noise` (default) the noise maps start from the embedding's own maps, else from the generator's fixed noise
  buffers (what the embedding was rendered with), so step 0 renders the embedding's reconstruction; the schedule,
  latent noise, regulariser and loss are the projector's.
* `idinvert` — IDInvert's domain-regularised optimisation (Adam 0.01, 100 steps, MSE + perceptual + 2.0 ||w -
  E(G(w))||^2 with the domain's IDInvert encoder as regulariser) from the embedder's codes instead of E(x).
  `idinvert@idinvert_encoder` is the built-in `idinvert` exactly. An embedding's noise maps are kept fixed.

Options, embedded-domain settings and quick settings are those of the inverters of the same name, restricted to the
stage the refiner runs (`zoo_optim.EMBEDDED`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch

from zoo.inversion import Inversion, TunedWeights
from zoo.refiner import Refiner, code_space

from ._common import EMBEDDED, ImageClock, Perceptual, lpips_network, resolve_lpips_size, w_statistics
from .idinvert import (
    IDINVERT_CARD,
    WEIGHTS_ROLE,
    IDInvertOptions,
    IDInvertState,
    check_encoder_fits,
    domain_regularised,
    encoder_path,
    load_encoder,
    read_encoder_metadata,
)
from .projector import IMAGE2STYLEGAN_CARD, KARRAS_CARD, ProjectorOptions, ProjectorState, build_perceptual, project
from .pti import PTI_CARD, PTIState, PTITuneOptions, PTITuning

if TYPE_CHECKING:
    from zoo.domain import Domain


def _card(card: Any, notes: str) -> Any:
    """The method's paper card with notes on what the refiner (its second stage) does."""
    return dataclasses.replace(card, notes=notes)


class _EmbeddedSettings:
    """`embedded_options()`: the inverter of the same name's entry in `EMBEDDED`, restricted to this refiner's
    options (e.g. PTI's tuning settings without its pivot settings)."""

    name: str
    Options: type

    @classmethod
    def embedded_options(cls) -> dict[str, Any]:
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        return {k: v for k, v in EMBEDDED.get(cls.name, {}).items() if k in fields}


# ---------------------------------------------------------------------------------------------------------- PTI
class PTIRefiner(_EmbeddedSettings, PTITuning, Refiner):
    """PTI's pivotal tuning from the embedder's codes (pivots [B, n_styles, D]); TunedWeights per image."""

    name = "pti"
    accepts = "W+"
    latent_space = "W+ & weights"
    changes_generator = True
    batchable = True  # tunes image by image, like the pti inverter
    version = "1"
    card = _card(PTI_CARD, "Stage 2 of PTI from the embedder's codes as pivots (official first_inv_type='w+' uses e4e): "
                 "Adam 3e-4 on all generator parameters, MSE + LPIPS-Alex (1/1), <= 350 steps, stop at LPIPS <= 0.06; "
                 "locality regulariser off by default; the embedding's noise maps are dropped (fixed noise), as PTI "
                 "drops its projection's. pti = pti@optim with PTI's pivot projection options.")
    Options = PTITuneOptions

    @classmethod
    def output_space(cls, embedder_space: str) -> str:
        return f"{code_space(embedder_space)} & weights"

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"steps": 10, "lpips_size": 64}  # the pti inverter's quick tuning

    def load(self, domain: Domain) -> PTIState:
        loaded = domain.generator(self.device)
        return PTIState(loaded, None, 0.0, self.tuning_perceptual(loaded.generator))

    def run(self, inversion: Inversion, images: torch.Tensor, domain: Domain, *,
            progress: bool = False) -> Inversion:
        st = self.prepare(domain)
        g = st.loaded.generator
        pivots = inversion.latents.detach().to(self.device, torch.float32)
        deltas, recons, seconds, steps, final_lpips = self.tune_all(g, st, pivots, images, progress=progress)
        return Inversion(latents=pivots, reconstructions=recons, seconds=torch.tensor(seconds, dtype=torch.float64),
                         change=TunedWeights(deltas), noise=None, method=self.name, domain=domain,
                         extras={"tune_steps_run": steps, "final_lpips": final_lpips})


# ---------------------------------------------------------------------------------------------------------- W / W+
class OptimRefiner(_EmbeddedSettings, Refiner):
    """The Karras projector in W from the embedder's W code (and noise maps); `ProjectorOptions`."""

    name = "optim"
    accepts = "W"
    latent_space = "W"
    w_plus = False
    batchable = True
    version = "1"
    card = _card(KARRAS_CARD, "The StyleGAN2 projector in W started from the embedder's W code instead of w_avg (noise maps "
                 "from the embedding's, else the generator's fixed buffers); schedule, latent noise, noise "
                 "regulariser and LPIPS-AlexNet distance as the projector. Needs W codes.")
    Options = ProjectorOptions

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"steps": 20, "lpips_size": 64}  # the optim inverters' quick settings

    def load(self, domain: Domain) -> ProjectorState:
        loaded = domain.generator(self.device)
        g = loaded.generator
        w_avg, w_std = w_statistics(g, self.options.w_avg_samples)  # w_std scales the latent noise
        perceptual = build_perceptual(self.options.lpips_weight, self.options.lpips_size, g.size, self.device)
        return ProjectorState(loaded, w_avg, w_std, perceptual)

    def run(self, inversion: Inversion, images: torch.Tensor, domain: Domain, *,
            progress: bool = False) -> Inversion:
        st = self.prepare(domain)
        g = st.loaded.generator
        codes = inversion.latents.detach().to(self.device, torch.float32)
        start = codes if self.w_plus else codes[:, :1]
        noise = inversion.noise if inversion.noise is not None else g.fixed_noise()
        res = project(g, images, w_avg=st.w_avg, w_std=st.w_std, options=self.options, w_plus=self.w_plus,
                      perceptual=st.perceptual, progress=progress, desc=f"{self.name} refine", w_init=start,
                      noise_init=noise if (self.options.optimize_noise or inversion.noise is not None) else None)
        return Inversion(latents=res.latents, reconstructions=res.reconstructions, seconds=res.seconds,
                         noise=res.noise, method=self.name, domain=domain,
                         extras={"steps_run": res.steps_run, "final_distance": res.distance})


class OptimWPlusRefiner(OptimRefiner):
    """The W+ projector (rosinality --w_plus) from the embedder's W / W+ codes."""

    name = "optim_wplus"
    accepts = "W+"
    latent_space = "W+"
    w_plus = True
    card = _card(IMAGE2STYLEGAN_CARD, "Per-layer W+ codes optimised with the StyleGAN2 projector recipe (rosinality "
                 "--w_plus) from the embedder's W / W+ codes instead of w_avg (encoder + optimisation hybrid).")


# ---------------------------------------------------------------------------------------------------------- IDInvert
class IDInvertRefiner(_EmbeddedSettings, Refiner):
    """IDInvert's domain-regularised W+ optimisation from the embedder's codes (the domain's IDInvert encoder is the
    regulariser); `IDInvertOptions`."""

    name = "idinvert"
    accepts = "W+"
    latent_space = "W+"
    batchable = True
    version = "1"
    card = _card(IDINVERT_CARD, "IDInvert's domain-regularised optimisation (Adam 0.01, 100 steps, MSE + perceptual + "
                 "2.0 ||w - E(G(w))||^2, the domain's IDInvert encoder as regulariser) from the embedder's codes "
                 "instead of E(x); idinvert@idinvert_encoder = idinvert.")
    Options = IDInvertOptions

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"steps": 10, "lpips_size": 64}  # the idinvert inverter's quick settings

    def check_domain(self, domain: Domain) -> None:
        """The regulariser encoder exists and was trained for the domain's generator (metadata only)."""
        path = encoder_path(domain, self.options.weights)
        config, extra = read_encoder_metadata(path)
        check_encoder_fits(path, config, extra, domain)

    def load(self, domain: Domain) -> IDInvertState:
        from zoo.cards import sha256_file

        loaded = domain.generator(self.device)
        g = loaded.generator
        path = encoder_path(domain, self.options.weights)
        enc, extra = load_encoder(path, self.device)
        check_encoder_fits(path, enc.config, extra, domain, g)
        perceptual = None
        if self.options.perceptual_weight > 0:
            perceptual = Perceptual(lpips_network(self.device), resolve_lpips_size(self.options.lpips_size, g.size))
        return IDInvertState(loaded, enc, sha256_file(path), perceptual)

    def weights_sha256(self, domain: Domain) -> dict[str, str]:
        out = Refiner.weights_sha256(self, domain)
        out[WEIGHTS_ROLE] = self.prepare(domain).encoder_sha256
        return out

    def run(self, inversion: Inversion, images: torch.Tensor, domain: Domain, *,
            progress: bool = False) -> Inversion:
        st = self.prepare(domain)
        clock = ImageClock(len(images))
        w0 = inversion.latents.detach().to(self.device, torch.float32)
        noise = None if inversion.noise is None else [m.to(self.device) for m in inversion.noise]
        latents, recon, steps_run = domain_regularised(self.options, st, images, w0, clock, noise=noise,
                                                       progress=progress, desc=f"{self.name} refine")
        return Inversion(latents=latents, reconstructions=recon, seconds=clock.tensor(), noise=noise,
                         method=self.name, domain=domain, extras={"steps_run": steps_run})


REFINERS = (PTIRefiner, OptimRefiner, OptimWPlusRefiner, IDInvertRefiner)
