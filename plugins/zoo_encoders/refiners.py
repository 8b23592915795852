"""The `hyperstyle` refiner: HyperStyle's weight-offset iterations from the embedder's codes (`hyperstyle@EMBEDDER`,
see `zoo.composition`).

HyperStyle (yuval-alaluf/hyperstyle) is itself two stages: a frozen W-encoder gives the initial codes ŵ, then the
hypernetwork H predicts offsets Δ_t = Δ_{t-1} + H(x, ŷ_{t-1}) for n_iters iterations with ŵ fixed, ŷ_t = G(ŵ; θ ⊙
(1 + Δ_t)) (`zoo.encoders.run_hyperstyle` with `codes=`). The refiner runs the second stage from any W / W+ codes
(e.g. ReStyle-e4e's, as the repository's domain-adaptation script does; the built-in `hyperstyle` is the same
iterations from its W-encoder). The hypernetwork is the domain's trained one ('encoder/hyperstyle'), or an official
checkpoint (`weights=hyperstyle_ffhq.pt`, paper configuration: its decoder renders and inputs are resized to 256).

Compatibility (one-line errors before any work): a hypernetwork trained for another generator than the domain's
(sha256 in its metadata) or for other code / image sizes is refused in `check_domain`; with an official checkpoint
the embedder's generator must equal its decoder (`ComposedInverter.load`). The embedding's noise maps are dropped:
HyperStyle renders with the generator's fixed noise (randomize_noise=False), as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from zoo.encoders import run_hyperstyle
from zoo.encoders.official import load_official
from zoo.errors import CheckpointError, InputError
from zoo.inversion import Inversion, WeightOffsets
from zoo.refiner import Refiner, code_space

from .configs import weight_role
from .inverters import (
    CARDS,
    EMBEDDED,
    PAPER_INPUT_SIZE,
    CheckpointInversion,
    Loaded,
    _check_iters,
    _sha,
    _user_path,
    resize_input,
    resize_output,
)
from .weights_io import load_encoder_file, read_metadata

if TYPE_CHECKING:
    from zoo.domain import Domain

ROLE = weight_role("hyperstyle")


@dataclass(frozen=True)
class HyperStyleRefinerOptions:
    """Options of the `hyperstyle` refiner (the codes come from the embedder, so there is no W-encoder option)."""

    n_iters: int = field(default=5, metadata={"help": "hypernetwork iterations (official inference default 5)"})
    weights: str | None = field(default=None, metadata={
        "help": "official HyperStyle checkpoint .pt (paper configuration: its decoder renders, inputs resized to "
                "256); default: the domain's trained hypernetwork ('encoder/hyperstyle')"})

    def __post_init__(self) -> None:
        """Raises InputError for n_iters < 1."""
        _check_iters(self.n_iters)


class HyperStyleRefiner(Refiner):
    """HyperStyle's offset iterations from given initial codes; WeightOffsets per image."""

    name = "hyperstyle"
    accepts = "W+"
    latent_space = "W+ & weights"
    changes_generator = True
    batchable = True
    version = "1"
    card = replace(CARDS["hyperstyle"], notes="HyperStyle's n_iters hypernetwork iterations of multiplicative weight "
                   "offsets W * (1 + delta) from the embedder's codes (fixed) instead of its W-encoder's; weights=PATH "
                   "loads hyperstyle_ffhq.pt (its decoder must be the embedder's generator).")
    Options = HyperStyleRefinerOptions

    @classmethod
    def output_space(cls, embedder_space: str) -> str:
        return f"{code_space(embedder_space)} & weights"

    @classmethod
    def embedded_options(cls) -> dict[str, Any]:
        return dict(EMBEDDED.get("hyperstyle", {}))  # n_iters chosen on validation for the peeps hypernetwork

    @classmethod
    def official_weights(cls, options: dict[str, Any]) -> bool:
        return bool(options.get("weights"))

    def _spec(self, domain: Domain) -> Any:
        spec = domain.weights.get(ROLE)
        if spec is None:
            raise CheckpointError(f"domain '{domain.name}' has no trained hyperstyle hypernetwork ('{ROLE}'): run "
                                  f"`zoo train hyperstyle --domain {domain.name} --install` (or pass "
                                  "hyperstyle.weights=PATH to an official checkpoint)")
        return spec

    def check_domain(self, domain: Domain) -> None:
        """Small configuration: the hypernetwork file's metadata must name the domain's generator (sha256) and its
        code / input sizes; raises InputError / CheckpointError (one line, with the fix) otherwise."""
        if self.options.weights:
            _user_path(self.options.weights, "checkpoint")
            return
        path = self._spec(domain).resolve()
        cfg, training = read_metadata(path)
        hint = f"retrain it: `zoo train hyperstyle --domain {domain.name} --install`"
        if cfg.method != "hyperstyle":
            raise CheckpointError(f"{path} holds a {cfg.method} model, not a hyperstyle hypernetwork")
        gen = domain.weights.get("generator")
        trained_for = training.get("generator_sha256")
        if gen is not None and trained_for and trained_for != gen.sha256:
            raise InputError(f"hyperstyle: the hypernetwork {path.name} was trained for generator {trained_for[:12]}…, "
                             f"but domain '{domain.name}' has generator {gen.sha256[:12]}…; {hint}")
        if cfg.input_size != domain.resolution:
            raise InputError(f"hyperstyle: the hypernetwork {path.name} takes {cfg.input_size} px images, domain "
                             f"'{domain.name}' has {domain.resolution} px; {hint}")

    def weights_sha256(self, domain: Domain) -> dict[str, str]:
        if self.options.weights:
            return {"checkpoint": _sha(_user_path(self.options.weights, "checkpoint"))}
        out = Refiner.weights_sha256(self, domain)
        out[ROLE] = self._spec(domain).sha256
        return out

    def load(self, domain: Domain) -> Loaded:
        if self.options.weights:
            path = _user_path(self.options.weights, "checkpoint")
            model = load_official(path, device=self.device)
            if model.method != "hyperstyle":
                raise CheckpointError(f"{path} is a {model.method} checkpoint ({model.encoder_type}), not hyperstyle")
            g = model.generator.eval().requires_grad_(False)
            return Loaded(model.encoder.eval(), g, model.latent_avg, PAPER_INPUT_SIZE, True, official=model,
                          source=str(path))
        self.check_domain(domain)
        path = self._spec(domain).resolve()
        g = domain.generator(self.device).generator
        f = load_encoder_file(path, g.layer_slots(), self.device, expect_method="hyperstyle")
        cfg = f.config
        if (cfg.n_styles, cfg.style_dim) != (g.n_latent, g.style_dim):
            raise CheckpointError(f"{path}: trained for {cfg.n_styles} styles x {cfg.style_dim}, but domain "
                                  f"'{domain.name}' has {g.n_latent} x {g.style_dim}: retrain it "
                                  f"(`zoo train hyperstyle --domain {domain.name} --install`)")
        return Loaded(f.module, g, f.latent_avg, cfg.input_size, False, source=str(path))

    def check_embedding(self, inversion: Inversion, images: torch.Tensor, domain: Domain) -> torch.Tensor:
        x = super().check_embedding(inversion, images, domain)
        g = self.prepare(domain).generator
        if tuple(inversion.latents.shape[1:]) != (g.n_latent, g.style_dim):
            raise InputError(f"hyperstyle: codes {list(inversion.latents.shape[1:])} do not fit its generator "
                             f"([{g.n_latent}, {g.style_dim}])")
        return x

    @torch.no_grad()
    def run(self, inversion: Inversion, images: torch.Tensor, domain: Domain, *,
            progress: bool = False) -> Inversion:
        st = self.prepare(domain)
        start = self.clock()
        codes = inversion.latents.detach().to(self.device, torch.float32)
        x = resize_input(images, st.input_size)
        res = run_hyperstyle(st.encoder, st.generator, x, self.options.n_iters, codes=codes)
        recon = resize_output(res.images[-1], domain.resolution)
        n = len(images)
        seconds = torch.full((n,), (self.clock() - start) / max(n, 1), dtype=torch.float64)
        common: dict[str, Any] = {
            "latents": codes, "reconstructions": recon, "seconds": seconds,
            "change": WeightOffsets(list(res.weights_deltas)), "method": self.name, "domain": domain,
            "extras": {"configuration": "paper" if st.paper else "small", "weights": st.source,
                       "n_iters": self.options.n_iters}}
        if st.paper:
            return CheckpointInversion(**common, decoder=st.generator, out_size=domain.resolution)
        return Inversion(**common)


REFINERS = (HyperStyleRefiner,)
