"""The `Inverter` interface every inversion method implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from .cards import Card
from .errors import InputError
from .options import NoOptions, make_options

if TYPE_CHECKING:
    from .domain import Domain
    from .inversion import Inversion

Kind = Literal["optimization", "encoder", "hybrid"]


class Inverter(ABC):
    """Maps images [B, 3, H, W] in [-1, 1] (H = W = the domain's resolution) to an `Inversion`.

    Subclasses set the class attributes and implement `invert`. Weights are loaded in `prepare(domain)` (cached
    per domain) so that timing never includes loading. `version` is part of the bench cache key: bump it whenever
    a change alters results.
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    latent_space: ClassVar[str]  # "W", "W+", "W+ & weights", ...
    changes_generator: ClassVar[bool] = False
    card: ClassVar[Card]
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = NoOptions
    generators: ClassVar[tuple[str, ...]] = ("stylegan2",)  # generator families it runs on (+ "stylegan3")

    def __init__(self, options: Any = None, device: str | torch.device = "cpu", **overrides: Any) -> None:
        if options is None or isinstance(options, dict):
            options = make_options(self.Options, {**(options or {}), **overrides})
        elif overrides:
            raise TypeError("pass either an Options instance or keyword overrides, not both")
        self.options = options
        self.device = torch.device(device)
        self._prepared: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle
    def prepare(self, domain: Domain) -> Any:
        """Load everything this method needs for `domain` (cached); returns the per-domain state."""
        if domain.name not in self._prepared:
            self.check_generator(domain)
            self._prepared[domain.name] = self.load(domain)
        return self._prepared[domain.name]

    def check_generator(self, domain: Domain) -> None:
        """CheckpointError (one line; the bench lists the method as unavailable on that domain) when `domain`'s
        generator is of a family this method cannot drive yet (a StyleGAN3 generator, `zoo.stylegan3`, for methods
        whose `generators` lack "stylegan3")."""
        from .errors import CheckpointError

        if "stylegan3" in self.generators:
            return
        try:
            g = domain.generator(self.device).generator
        except (CheckpointError, NotImplementedError):
            return  # no usable domain generator: `load` reports what the method itself lacks
        if hasattr(getattr(g, "synthesis", None), "input"):  # Fourier-feature input: StyleGAN3
            from .registry import list_inverters, get_inverter_class

            able = [n for n in list_inverters() if "stylegan3" in getattr(get_inverter_class(n), "generators", ())]
            raise CheckpointError(f"{self.name} cannot run on a StyleGAN3 generator yet (domain '{domain.name}'); "
                                  f"methods that can: {', '.join(able) or 'none'}")

    def load(self, domain: Domain) -> Any:
        """Override to load weights for `domain`; the default needs only the domain's generator."""
        return domain.generator(self.device)

    def weights_sha256(self, domain: Domain) -> dict[str, str]:
        """sha256 of every weights file the method uses on `domain` (goes into result files and cache keys)."""
        return {"generator": domain.weights["generator"].sha256} if "generator" in domain.weights else {}

    @classmethod
    def embedded_options(cls) -> dict[str, Any]:
        """Documented option overrides for the small embedded domains (Options defaults = paper configuration)."""
        return {}

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        """Option overrides for `--quick` runs (fewer steps); none by default."""
        return {}

    @classmethod
    def official_weights(cls, options: dict[str, Any]) -> bool:
        """Whether `options` load an official (paper) checkpoint; then embedded-domain overrides never apply."""
        return False

    @classmethod
    def configure(cls, options: dict[str, Any] | None = None, *, embedded: bool = False,
                  quick: bool = False) -> dict[str, Any]:
        """The options a run uses, as one dict: paper defaults < `embedded_options()` (only on embedded domains
        and never with an official checkpoint) < `quick_options()` (with `quick`) < the user's `options`.

        Raises InputError / TypeError (via `make_options`) for an unknown option or a bad value, before any work.
        """
        user = dict(options or {})
        small = cls.embedded_options() if embedded and not cls.official_weights(user) else {}
        resolved = {**small, **(cls.quick_options() if quick else {}), **user}
        make_options(cls.Options, resolved)
        return resolved

    # ------------------------------------------------------------------ inversion
    @abstractmethod
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        """Invert images [B, 3, H, W] in [-1, 1]; returns an Inversion with per-image seconds."""

    def check_images(self, images: torch.Tensor, domain: Domain) -> torch.Tensor:
        """Validate shape/range and move to the device (raises InputError with the expected shape)."""
        r = domain.resolution
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (r, r):
            raise InputError(f"{self.name}: images must be [B, 3, {r}, {r}] for domain '{domain.name}', "
                             f"got {list(images.shape)}")
        if images.min() < -1.01 or images.max() > 1.01:
            raise InputError(f"{self.name}: images must be in [-1, 1] (got [{images.min():.2f}, {images.max():.2f}])")
        return images.to(self.device, torch.float32)

    @staticmethod
    def clock() -> float:
        """Wall clock for per-image timings (synchronises CUDA first)."""
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        from .options import option_table

        return {"name": cls.name, "kind": cls.kind, "latent_space": cls.latent_space,
                "changes_generator": cls.changes_generator, "version": cls.version,
                "generators": list(cls.generators),
                "card": cls.card.to_dict(), "options": option_table(cls.Options)}
