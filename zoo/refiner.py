"""The `Refiner` interface: the second stage of a two-stage inversion (`refiner@embedder`, see `zoo.composition`).

An *embedding* (any `Inverter`: an encoder or an optimisation) gives codes; a *refiner* improves that inversion
for the same images: PTI tunes the generator around the codes as pivots, HyperStyle predicts weight offsets from
them as initial codes, a W / W+ optimisation or IDInvert's domain-regularised optimisation starts from them.

A refiner has the lifecycle of an `Inverter` (the same code: typed `Options`, `configure` for the paper / embedded /
quick option resolution, `prepare(domain)` loading once per domain, `weights_sha256`) and is registered the same
way, through the `register_refiners` hook::

    @zoo.hookimpl
    def register_refiners(register):
        register(MyRefiner)

Subclasses implement `run`; `refine` validates the embedding first and adds the embedding's per-image seconds to
the refinement's, so the returned `Inversion.seconds` are the whole two-stage time per image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from .cards import Card
from .errors import InputError
from .inverter import Inverter
from .options import NoOptions

if TYPE_CHECKING:
    from .domain import Domain
    from .inversion import Inversion

CodeSpace = Literal["W", "W+"]


def code_space(latent_space: str) -> str:
    """The code part of an inverter's `latent_space`: 'W & weights' -> 'W', 'W+' -> 'W+', 'S' -> 'S'."""
    return latent_space.split("&")[0].strip()


class Refiner(ABC):
    """Refines an `Inversion` (codes [B, n_styles, w_dim], optionally noise maps) of images [B, 3, H, W] in [-1, 1].

    Class attributes: `name`, `card`, `Options` (frozen dataclass, defaults = the paper configuration), `accepts`
    ("W": one code per image, repeated over the layers; "W+": per-layer codes, W codes included), `latent_space`
    (what it returns; `output_space(embedder_space)` may refine it), `changes_generator`, `batchable`, `version`
    (part of bench cache keys: bump it when a change alters results).
    """

    name: ClassVar[str]
    card: ClassVar[Card]
    accepts: ClassVar[CodeSpace] = "W+"
    latent_space: ClassVar[str] = "W+"
    changes_generator: ClassVar[bool] = False
    batchable: ClassVar[bool] = True
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = NoOptions
    generators: ClassVar[tuple[str, ...]] = ("stylegan2",)  # generator families it runs on (+ "stylegan3")

    # the Inverter lifecycle, shared (not copied): options, per-domain preparation, configuration, checks
    __init__ = Inverter.__init__
    prepare = Inverter.prepare
    check_generator = Inverter.check_generator
    load = Inverter.load
    weights_sha256 = Inverter.weights_sha256
    embedded_options = Inverter.__dict__["embedded_options"]
    quick_options = Inverter.__dict__["quick_options"]
    official_weights = Inverter.__dict__["official_weights"]
    configure = Inverter.__dict__["configure"]
    check_images = Inverter.check_images
    clock = Inverter.__dict__["clock"]

    # ------------------------------------------------------------------ compatibility
    @classmethod
    def output_space(cls, embedder_space: str) -> str:
        """The latent space of `refiner@embedder` given the embedder's `latent_space` (default: `latent_space`)."""
        return cls.latent_space

    @classmethod
    def check_embedder(cls, embedder: type[Inverter]) -> None:
        """Raise InputError (one line) when `embedder`'s results cannot be refined by this refiner: codes that are
        not W / W+, W+ codes for a refiner that needs W codes, or an embedder that changes the generator (the
        built-in refiners refine codes of the unchanged generator and would silently drop the change)."""
        pair = f"{cls.name}@{embedder.name}"
        space = code_space(getattr(embedder, "latent_space", ""))
        if getattr(embedder, "changes_generator", False):
            raise InputError(f"{pair}: '{embedder.name}' changes the generator ({embedder.latent_space}); refiner "
                             f"'{cls.name}' starts from codes of the unchanged generator and would drop that change; "
                             "use an embedder that gives codes only (an encoder or a latent optimisation)")
        if space not in ("W", "W+"):
            raise InputError(f"{pair}: refiner '{cls.name}' starts from W / W+ codes, but '{embedder.name}' gives "
                             f"{space or 'no'} codes")
        if cls.accepts == "W" and space != "W":
            raise InputError(f"{pair}: refiner '{cls.name}' optimises one W code per image, but '{embedder.name}' "
                             "gives W+ codes (one per layer); use a W+ refiner (e.g. optim_wplus@"
                             f"{embedder.name}) or an embedder in W")

    def check_domain(self, domain: Domain) -> None:
        """Cheap checks of this refiner's weights against `domain` (metadata only, no inversion); raises a one-line
        ZooError (e.g. a hypernetwork trained for another generator). Default: nothing to check."""

    def check_embedding(self, inversion: Inversion, images: torch.Tensor, domain: Domain) -> torch.Tensor:
        """Validate an embedding of `images` before refining it; returns the images checked and on the device.

        Raises InputError for images of the wrong shape / range, latents that are not [B, n_styles, w_dim] of the
        domain's generator, W+ codes given to a W refiner, or a generator change the refiner cannot start from.
        """
        x = self.check_images(images, domain)
        lat = inversion.latents
        if lat.ndim != 3 or lat.shape[0] != x.shape[0]:
            raise InputError(f"{self.name}: the embedding has latents {list(lat.shape)} for {x.shape[0]} images "
                             "(expected [B, n_styles, w_dim])")
        if inversion.change is not None and not self.changes_generator_input_ok():
            raise InputError(f"{self.name}: the embedding '{inversion.method}' changed the generator; this refiner "
                             "starts from codes of the unchanged generator")
        if self.accepts == "W" and not bool((lat == lat[:, :1]).all()):
            raise InputError(f"{self.name}: needs W codes (one code repeated over the layers), but the embedding "
                             f"'{inversion.method}' has per-layer W+ codes; use a W+ refiner")
        return x

    def changes_generator_input_ok(self) -> bool:
        """Whether `run` can start from an inversion whose generator is changed (none of the built-ins can)."""
        return False

    # ------------------------------------------------------------------ refinement
    def refine(self, inversion: Inversion, images: torch.Tensor, domain: Domain, *,
               progress: bool = False) -> Inversion:
        """Refine `inversion` (the embedding of `images` [B, 3, H, W] in [-1, 1]) on `domain`.

        Returns a new Inversion whose `seconds` [B] are the embedding's plus the refinement's per image, with
        `extras['embedding_seconds']` [B] and `extras['embedding_latents']` [B, n_styles, w_dim] (the start codes).
        Raises InputError (see `check_embedding`) before any work.
        """
        x = self.check_embedding(inversion, images, domain)
        self.prepare(domain)
        start = inversion.latents.detach().to(self.device, torch.float32)
        out = self.run(inversion, x, domain, progress=progress)
        before = inversion.seconds.detach().to("cpu", torch.float64)
        out.seconds = before + out.seconds.detach().to("cpu", torch.float64)
        out.extras = {**out.extras, "embedding": inversion.method, "embedding_seconds": before,
                      "embedding_latents": start}
        out.domain = out.domain or domain
        return out

    @abstractmethod
    def run(self, inversion: Inversion, images: torch.Tensor, domain: Domain, *,
            progress: bool = False) -> Inversion:
        """Refine a validated embedding of `images` (already checked, on the device); return an Inversion whose
        `seconds` [B] are the refinement's own per-image wall time (`refine` adds the embedding's)."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        from .options import option_table

        return {"name": cls.name, "accepts": cls.accepts, "latent_space": cls.latent_space,
                "changes_generator": cls.changes_generator, "version": cls.version, "card": cls.card.to_dict(),
                "options": option_table(cls.Options)}
