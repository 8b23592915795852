"""The `Editor` interface: latent-space edits rendered through each inversion's own (possibly tuned) generator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .cards import Card
from .errors import UnknownNameError
from .options import NoOptions, make_options

if TYPE_CHECKING:
    from .domain import Domain
    from .inversion import Inversion


class Editor(ABC):
    """Moves inverted latents along named directions; `edit` returns images [B, 3, H, W]."""

    name: ClassVar[str]
    card: ClassVar[Card]
    version: ClassVar[str] = "1"
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None, **overrides: Any) -> None:
        if options is None or isinstance(options, dict):
            options = make_options(self.Options, {**(options or {}), **overrides})
        self.options = options

    @abstractmethod
    def directions(self, domain: Domain) -> list[str]:
        """Names of the directions available on `domain`."""

    @abstractmethod
    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        """Edited W+ codes [B, n_styles, w_dim] for `step` along `direction`."""

    def edit(self, inversion: Inversion, direction: str, step: float) -> torch.Tensor:
        """Edit and render through the inversion's own generator (tuned weights / offsets kept)."""
        if inversion.domain is None:
            raise ValueError("this inversion does not know its domain; invert through an Inverter first")
        names = self.directions(inversion.domain)
        if direction not in names:
            raise UnknownNameError.for_name("direction", direction, names)
        latents = self.edit_latents(inversion.latents, direction, float(step), inversion.domain)
        return inversion.render(latents)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        from .options import option_table

        return {"name": cls.name, "version": cls.version, "card": cls.card.to_dict(),
                "options": option_table(cls.Options)}
