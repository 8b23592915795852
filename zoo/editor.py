"""The `Editor` interface: latent-space edits rendered through each inversion's own (possibly tuned) generator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .cards import Card
from .errors import InputError, UnknownNameError
from .options import NoOptions, make_options

if TYPE_CHECKING:
    from .domain import Domain
    from .inversion import Inversion


@dataclass
class EditCodes:
    """What an edit renders: W+ latents [B, n_styles, w_dim] and optional StyleSpace offsets (one entry per
    generator layer slot, None or [B|1, in_channels] added to that layer's S code)."""

    latents: torch.Tensor
    style_offsets: Sequence[torch.Tensor | None] | None = None


def check_layer_range(first: int, last: int | None, n_styles: int | None, what: str) -> tuple[int, int | None]:
    """Validate the inclusive W+ layer range first..last (last None: through the last layer) of an edit.

    n_styles: the generator's number of W+ layers (latents [B, n_styles, w_dim]); None checks only what needs no
    generator (first >= 0, first <= last). Returns (first, last), last resolved to n_styles - 1 when n_styles is
    known. Raises InputError naming `what`, the range and n_styles, e.g. "ganspace 'pc3@20-25': layer range 20-25
    is outside the generator's 8 styles (n_styles=8: layers 0-7)".
    """
    shown = f"{first}-{'end' if last is None else last}"
    layers = f" (n_styles={n_styles}: layers 0-{n_styles - 1})" if n_styles else ""
    if first < 0 or (last is not None and last < 0):
        raise InputError(f"{what}: layer range {shown} has a negative layer; W+ layers count from 0{layers}")
    if last is not None and last < first:
        raise InputError(f"{what}: layer range {shown} is empty (reversed: the first layer is after the last)")
    if n_styles is None:
        return first, last
    if first >= n_styles:
        raise InputError(f"{what}: layer range {shown} is outside the generator's {n_styles} styles{layers}")
    if last is not None and last >= n_styles:
        raise InputError(f"{what}: layer range {shown} goes beyond the generator's {n_styles} styles{layers}")
    return first, n_styles - 1 if last is None else last


class Editor(ABC):
    """Moves inverted codes along named directions; `edit` returns images [B, 3, H, W].

    Latent-space editors implement `edit_latents`; editors of other code spaces (StyleSpace) override `edit_codes`.
    """

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

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        """Edited W+ codes [B, n_styles, w_dim] for `step` along `direction`."""
        raise NotImplementedError(f"editor '{self.name}' does not edit W+ codes; use edit_codes()")

    def edit_codes(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> EditCodes:
        """The codes to render for `step` along `direction` (default: `edit_latents`, no style offsets)."""
        return EditCodes(self.edit_latents(latents, direction, step, domain))

    def check_direction(self, direction: str, domain: Domain, n_styles: int) -> None:
        """Raise InputError when editing `direction` cannot work on latents [B, n_styles, w_dim] (e.g. a layer range
        beyond the generator's styles). `edit` calls it before `accepts`; the default checks nothing."""

    def accepts(self, direction: str, domain: Domain) -> bool:
        """Whether `direction` can be edited on `domain` (default: one of `directions(domain)`)."""
        return direction in self.directions(domain)

    def scorers_used(self, direction: str, domain: Domain) -> tuple[str, ...]:
        """Names of `domain`'s attribute scorers that chose `direction` (the attribute change they measure along it is
        then not an independent measure; the bench flags it). Default: none."""
        return ()

    def direction_table(self, domain: Domain) -> list[dict[str, Any]]:
        """One row per direction with whatever the editor knows about it (fit accuracy, variance, channels)."""
        return [{"direction": d} for d in self.directions(domain)]

    def edit(self, inversion: Inversion, direction: str, step: float) -> torch.Tensor:
        """Edit and render through the inversion's own generator (tuned weights / offsets kept): images
        [B, 3, H, W]. InputError when the edit cannot apply to these latents (`check_direction`), UnknownNameError for
        a direction the editor does not know."""
        if inversion.domain is None:
            raise ValueError("this inversion does not know its domain; invert through an Inverter first")
        self.check_direction(direction, inversion.domain, int(inversion.latents.shape[1]))
        if not self.accepts(direction, inversion.domain):
            raise UnknownNameError.for_name("direction", direction, self.directions(inversion.domain))
        codes = self.edit_codes(inversion.latents, direction, float(step), inversion.domain)
        return inversion.render(codes.latents, style_offsets=codes.style_offsets)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        from .options import option_table

        return {"name": cls.name, "version": cls.version, "card": cls.card.to_dict(),
                "options": option_table(cls.Options)}
