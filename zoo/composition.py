"""Composed methods `refiner@embedder`: any embedding (an `Inverter`) refined by any `Refiner`.

`pti@e4e` is PTI's pivotal tuning from e4e's codes (the paper's `first_inv_type='w+'`), `hyperstyle@restyle_e4e`
HyperStyle's offset iterations from ReStyle-e4e's codes, `optim_wplus@psp` the W+ projector started from pSp's codes,
`idinvert@idinvert_encoder` IDInvert's own two stages (equal to the built-in `idinvert`). The embedder may itself be
a composition (`pti@optim_wplus@psp`: the name splits at its first '@').

A composition is an `Inverter` built by the registry on lookup (`registry.get_inverter_class('pti@e4e')`), so every
command that takes a method name takes one (`zoo invert pti@e4e`, `zoo edit --method pti@e4e`, `zoo bench --methods
pti@e4e`, `zoo show pti@e4e`). Incompatible pairs fail on lookup with one line (`Refiner.check_embedder`), weights
that do not fit the domain when the inverter is created for it (`Refiner.check_domain`), and an embedder whose
generator is not the refiner's when it is prepared — always before any image is inverted.

Options grammar. Every option names its part, by name or by role:
    -o pti.steps=50 -o e4e.weights=e4e_ffhq_encode.pt        (zoo invert / zoo edit)
    -o refiner.steps=50 -o embedder.weights=…                 (the same; needed when both parts have one name)
    --option pti@e4e.pti.steps=50                             (zoo bench: METHOD.KEY=VALUE, KEY = part.option)
Each part is configured exactly as when it runs alone (`Inverter.configure` / `Refiner.configure`: paper defaults <
embedded-domain settings < quick options < a domain file's `[methods.<part>]` < the user's). The resolved options
are nested: {"refiner": {...}, "embedder": {...}} (what results files, cache keys and saved inversions record, and
what the constructor takes back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .cards import Card
from .errors import CheckpointError, InputError
from .inverter import Inverter
from .refiner import Refiner, code_space

if TYPE_CHECKING:
    from .domain import Domain
    from .inversion import Inversion
    from .stylegan2 import Generator

SEPARATOR = "@"
ROLES = ("refiner", "embedder")
GRAMMAR = "REFINER@EMBEDDER (e.g. pti@e4e, hyperstyle@restyle_e4e, optim_wplus@psp); options -o REFINER.KEY=V " \
          "-o EMBEDDER.KEY=V"


def is_composition(name: str) -> bool:
    """Whether `name` is a `refiner@embedder` composition name."""
    return SEPARATOR in name


def split_name(name: str) -> tuple[str, str]:
    """'pti@e4e' -> ('pti', 'e4e'); 'pti@optim@psp' -> ('pti', 'optim@psp'). InputError for an empty part."""
    refiner, _, embedder = name.partition(SEPARATOR)
    if not refiner or not embedder:
        raise InputError(f"'{name}' is not a composition: write REFINER@EMBEDDER, e.g. pti@e4e")
    return refiner, embedder


@dataclass(frozen=True)
class ComposedOptions:
    """Options of a composition: the refiner's and the embedder's own Options instances."""

    refiner: Any
    embedder: Any


@dataclass
class ComposedState:
    """What a composition prepares per domain: both parts' states (each part caches its own)."""

    embedder: Any
    refiner: Any
    generator: Generator | None  # the refiner's generator (checked equal to the embedder's)


class ComposedInverter(Inverter):
    """`refiner@embedder`: inverts with the embedder, then refines with the refiner (one `Inversion`, per-image
    seconds = embedding + refinement). Concrete classes are made by `compose(refiner_cls, embedder_cls)`."""

    refiner_cls: ClassVar[type[Refiner]]
    embedder_cls: ClassVar[type[Inverter]]
    kind = "hybrid"
    Options = ComposedOptions

    def __init__(self, options: Any = None, device: str | torch.device = "cpu", **overrides: Any) -> None:
        if isinstance(options, ComposedOptions):
            if overrides:
                raise TypeError("pass either a ComposedOptions instance or keyword overrides, not both")
            ref_opts, emb_opts = options.refiner, options.embedder
        else:
            ref_opts, emb_opts = self.split_options({**dict(options or {}), **overrides})
        self.refiner = self.refiner_cls(ref_opts, device=device)
        self.embedder = self.embedder_cls(emb_opts, device=device)
        self.options = ComposedOptions(self.refiner.options, self.embedder.options)
        self.device = torch.device(device)
        self._prepared: dict[str, Any] = {}

    # ------------------------------------------------------------------ options
    @classmethod
    def split_options(cls, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(refiner options, embedder options) from nested {"refiner": {...}, "embedder": {...}} tables and flat
        'part.key' entries (part = a part's name or its role; flat entries win). InputError for a key without a
        part, an unknown part, or a part name shared by both parts (then only the role names are accepted)."""
        parts: dict[str, dict[str, Any]] = {"refiner": {}, "embedder": {}}
        ref, emb = cls.refiner_cls.name, cls.embedder_cls.name
        for role in ROLES:
            table = options.get(role)
            if isinstance(table, Mapping):
                parts[role].update(table)
        for key, value in options.items():
            if key in ROLES and isinstance(value, Mapping):
                continue
            part, dot, opt = key.partition(".")
            if not dot or not opt:
                raise InputError(f"{cls.name}: option '{key}' must name its part: {ref}.{key} or {emb}.{key} "
                                 f"(or refiner.{key} / embedder.{key})")
            if part in ROLES:
                parts[part][opt] = value
            elif part == ref == emb:
                raise InputError(f"{cls.name}: both parts are called '{ref}'; write refiner.{opt} or embedder.{opt}")
            elif part == ref:
                parts["refiner"][opt] = value
            elif part == emb:
                parts["embedder"][opt] = value
            else:
                raise InputError(f"{cls.name}: option '{key}' names '{part}', which is neither the refiner '{ref}' "
                                 f"nor the embedder '{emb}'")
        return parts["refiner"], parts["embedder"]

    @classmethod
    def configure(cls, options: dict[str, Any] | None = None, *, embedded: bool = False,
                  quick: bool = False) -> dict[str, Any]:
        """Nested resolved options {"refiner": {...}, "embedder": {...}}: each part resolved by its own `configure`
        (paper < embedded < quick < the part's options given here, nested or 'part.key'; a domain file's
        `[methods.NAME]` of each part reaches here through `registry.create_inverter_for`).

        Raises InputError naming the composition and the part for an unknown option or a bad value.
        """
        ref, emb = cls.split_options(options or {})
        out = {}
        for role, part_cls, user in (("refiner", cls.refiner_cls, ref), ("embedder", cls.embedder_cls, emb)):
            try:
                out[role] = part_cls.configure(user, embedded=embedded, quick=quick)
            except InputError as exc:
                raise InputError(f"{cls.name}: {role} '{part_cls.name}': {exc}") from None
        return out

    @classmethod
    def official_weights(cls, options: dict[str, Any]) -> bool:
        ref, emb = cls.split_options(options)
        return cls.refiner_cls.official_weights(ref) or cls.embedder_cls.official_weights(emb)

    # ------------------------------------------------------------------ lifecycle
    def check_domain(self, domain: Domain) -> None:
        """Both parts' cheap checks against `domain` (a nested composition checks its own parts too)."""
        check = getattr(self.embedder, "check_domain", None)
        if callable(check):
            check(domain)
        try:
            self.refiner.check_domain(domain)
        except (InputError, CheckpointError) as exc:
            raise type(exc)(f"{self.name}: {exc}") from None

    def load(self, domain: Domain) -> ComposedState:
        """Prepare both parts (cached by each) and check that the embedder's codes belong to the refiner's generator
        (the same object, or equal weights); CheckpointError naming both otherwise."""
        self.check_domain(domain)
        emb_state = self.embedder.prepare(domain)
        ref_state = self.refiner.prepare(domain)
        g_emb = generator_of(emb_state, domain, self.device)
        g_ref = generator_of(ref_state, domain, self.device)
        if not same_generator(g_emb, g_ref):
            raise CheckpointError(f"{self.name}: '{self.embedder.name}' gives codes of another generator than the one "
                                  f"'{self.refiner.name}' refines with (different weights, e.g. an official "
                                  "checkpoint's decoder vs the domain's generator); use parts made for one generator")
        return ComposedState(emb_state, ref_state, g_ref)

    def weights_sha256(self, domain: Domain) -> dict[str, str]:
        """Both parts' weights, keyed 'embedder:ROLE' and 'refiner:ROLE'."""
        out = {f"embedder:{k}": v for k, v in self.embedder.weights_sha256(domain).items()}
        out.update({f"refiner:{k}": v for k, v in self.refiner.weights_sha256(domain).items()})
        return out

    # ------------------------------------------------------------------ inversion
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        """Embed `images` [B, 3, H, W] in [-1, 1], then refine; per-image seconds include both stages."""
        x = self.check_images(images, domain)
        self.prepare(domain)
        embedding = self.embedder.invert(x, domain, progress=progress)
        return self.refine(embedding, x, domain, progress=progress)

    def refine(self, embedding: Inversion, images: torch.Tensor, domain: Domain, *,
               progress: bool = False) -> Inversion:
        """The refinement stage alone, from an embedding computed earlier (the bench reuses one embedding for every
        composition that shares the embedder)."""
        self.prepare(domain)
        out = self.refiner.refine(embedding, images, domain, progress=progress)
        out.method = self.name
        return out

    @classmethod
    def describe(cls) -> dict[str, Any]:
        info = super().describe()
        rows = []
        for role, part in (("refiner", cls.refiner_cls), ("embedder", cls.embedder_cls)):
            for row in part.describe()["options"]:
                rows.append({**row, "name": f"{part.name}.{row['name']}"})
        papers = [f"{p.card.title} ({p.card.url})" if p.card.url else p.card.title
                  for p in (cls.refiner_cls, cls.embedder_cls)]
        return {**info, "refiner": cls.refiner_cls.name, "embedder": cls.embedder_cls.name, "papers": papers,
                "options": rows}


# ---------------------------------------------------------------------------------------------------- helpers
def compose(refiner_cls: type[Refiner], embedder_cls: type[Inverter]) -> type[ComposedInverter]:
    """The `ComposedInverter` class `refiner@embedder`. Raises InputError for an incompatible pair (one line)."""
    refiner_cls.check_embedder(embedder_cls)
    name = f"{refiner_cls.name}{SEPARATOR}{embedder_cls.name}"
    batchable = bool(getattr(refiner_cls, "batchable", True)) and bool(
        getattr(embedder_cls, "batchable", embedder_cls.kind == "encoder"))
    attrs = {"name": name, "refiner_cls": refiner_cls, "embedder_cls": embedder_cls,
             "latent_space": refiner_cls.output_space(embedder_cls.latent_space),
             "changes_generator": bool(refiner_cls.changes_generator or embedder_cls.changes_generator),
             "version": f"{refiner_cls.version}{SEPARATOR}{embedder_cls.version}", "batchable": batchable,
             "card": composed_card(refiner_cls, embedder_cls), "__module__": __name__, "__doc__": f"{name}: {refiner_cls.name} refining the "
             f"codes of {embedder_cls.name} (see zoo.composition)."}
    return type(f"Composed_{refiner_cls.__name__}_{embedder_cls.__name__}", (ComposedInverter,), attrs)


def composed_card(refiner_cls: type[Refiner], embedder_cls: type[Inverter]) -> Card:
    """A card naming both papers: the refinement's and the embedding's."""
    r, e = refiner_cls.card, embedder_cls.card
    name = f"{refiner_cls.name}{SEPARATOR}{embedder_cls.name}"

    def join(a: str, b: str, sep: str = "; ") -> str:
        return sep.join(x for x in (a, b) if x)

    return Card(
        title=f"{r.title} — from the embedding of: {e.title}",
        authors=join(f"refinement: {r.authors}" if r.authors else "", f"embedding: {e.authors}" if e.authors else ""),
        year=max([y for y in (r.year, e.year) if y] or [0]) or None,
        url=join(r.url, e.url, " | "), code_url=join(r.code_url, e.code_url, " | "),
        citation=join(r.citation, e.citation, "\n"), licence=join(r.licence, e.licence),
        notes=f"Composition {name}: '{embedder_cls.name}' embeds the images ({embedder_cls.latent_space}), "
              f"'{refiner_cls.name}' refines that inversion ({refiner_cls.output_space(embedder_cls.latent_space)}); "
              f"per-image time includes both. Options: -o {refiner_cls.name}.KEY=V for the refiner, "
              f"-o {embedder_cls.name}.KEY=V for the embedder (or refiner.KEY / embedder.KEY).",
    )


def generator_of(state: Any, domain: Domain, device: torch.device) -> Generator | None:
    """The generator a prepared part renders with: `state.generator` (encoders, compositions, a LoadedGenerator),
    `state.loaded.generator` (optimisations), else the domain's generator; None when there is none."""
    from .stylegan2 import Generator

    for candidate in (state, getattr(state, "generator", None),
                      getattr(getattr(state, "loaded", None), "generator", None)):
        if isinstance(candidate, Generator):
            return candidate
    try:
        return domain.generator(device).generator
    except Exception:  # noqa: BLE001 - a domain without a generator file: nothing to compare
        return None


def same_generator(a: Generator | None, b: Generator | None) -> bool:
    """The same object, or the same parameter and buffer tensors (exactly); True when either is unknown."""
    if a is None or b is None or a is b:
        return True
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    return all(sa[k].shape == sb[k].shape and torch.equal(sa[k].to(sb[k].device), sb[k]) for k in sa)


__all__ = ["GRAMMAR", "ComposedInverter", "ComposedOptions", "ComposedState", "code_space", "compose",
           "composed_card", "is_composition", "same_generator", "split_name"]
