"""Conformance kit for plugin authors: call these from your own pytest to check an inverter against the contract
the zoo relies on (docs/plugins.md). Everything runs on a tiny random 16x16 StyleGAN2 (`TinyDomain`), CPU only,
in seconds, with no weights to download::

    # tests/test_conformance.py of your plugin
    from zoo import testing
    from my_plugin import MyInverter

    def test_my_inverter_conforms():
        testing.check_inverter(MyInverter, plugin="my_plugin")   # every check below, or call them one by one

Each `check_*` raises `AssertionError` with a message that says what to fix; `check_inverter` returns a report
(`{"checks": [...], "advice": [...]}`: advice lists recommended but optional things, e.g. a card without a year).

Checks: `check_registration` (the entry point registers the name, `zoo show` can describe it), `check_card`
(class attributes, card, option help, embedded / quick options valid), `check_shapes_and_ranges` (Inversion
fields and their shapes, [-1, 1] range, finite values, per-image seconds, `render()` reproduces the
reconstructions, `progress=` accepted), `check_determinism` (same seed, same result), `check_batch_independence`
(a batchable method gives each image the result it gets alone).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch

from .cards import Card, WeightSpec
from .domain import Domain
from .inverter import Inverter

KINDS = ("optimization", "encoder", "hybrid")
REQUIRED_CARD_FIELDS = ("title", "authors")
RECOMMENDED_CARD_FIELDS = ("year", "url", "licence", "citation")


class TinyDomain(Domain):
    """A randomly initialised 16x16 StyleGAN2 (w_dim 32, n_latent 6) with deterministic random images: no weights,
    fast on CPU. `images(split, limit)` are generator samples ('test') or noise ('ood')."""

    name = "zoo_testing_tiny"
    resolution = 16
    card = Card(title="zoo.testing tiny random StyleGAN2", notes="weight-free conformance domain")

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return {}

    def generator(self, device: str | torch.device = "cpu") -> Any:
        from .stylegan2 import Generator
        from .stylegan2.checkpoints import LoadedGenerator

        key = str(torch.device(device))
        if key not in self._generators:
            state = torch.random.get_rng_state()
            torch.manual_seed(0)
            g = Generator(16, 32, 2, channels={4: 16, 8: 16, 16: 8}).eval().requires_grad_(False).to(device)
            avg = g.mean_latent(256)[0]
            torch.random.set_rng_state(state)
            self._generators[key] = LoadedGenerator(g, avg, source_format="zoo")
        return self._generators[key]

    def splits(self) -> list[str]:
        return ["test", "ood"]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        n = limit or 4
        gen = torch.Generator().manual_seed(1)
        if split == "ood":
            return torch.rand(n, 3, 16, 16, generator=gen) * 2 - 1
        g = self.generator("cpu").generator
        with torch.no_grad():
            return g([torch.randn(n, 32, generator=gen)], randomize_noise=False)[0].clamp(-1, 1)


def _instance(inverter: type[Inverter] | Inverter, options: dict[str, Any] | None = None) -> Inverter:
    return inverter(options or {}) if isinstance(inverter, type) else inverter


def _invert(inv: Inverter, images: torch.Tensor, domain: Domain, seed: int = 0, **kw: Any) -> Any:
    torch.manual_seed(seed)
    return inv.invert(images, domain, **kw)


# ---------------------------------------------------------------------------------------------------- checks
def check_registration(name: str, kind: str = "inverter", plugin: str | None = None) -> dict[str, Any]:
    """`name` is registered (through your entry point, or a `plugins.temporary_plugin` in the test) and
    `zoo show NAME` can describe it; with `plugin`, by that plugin. Returns the description."""
    from . import registry

    names = registry.list_names(kind)  # type: ignore[arg-type]
    assert name in names, (f"{kind} '{name}' is not registered (registered: {', '.join(names) or 'none'}); declare "
                           "[project.entry-points.zoo] my_name = 'my_package' and pip install your package")
    info = registry.describe(name, kind)  # type: ignore[arg-type]
    if plugin is not None:
        assert info.get("plugin") == plugin, f"'{name}' is registered by plugin '{info.get('plugin')}', not '{plugin}'"
    return info


def check_card(cls: type[Inverter]) -> list[str]:
    """Class attributes, card and options a user sees in `zoo show` / results files. Returns advice (recommended
    fields that are missing); raises AssertionError for what is required."""
    where = cls.__name__
    assert isinstance(getattr(cls, "name", None), str) and cls.name, f"{where}: set the class attribute `name`"
    assert cls.name == cls.name.strip() and " " not in cls.name and "@" not in cls.name, \
        f"{where}: name '{cls.name}' must be one word without '@' (it is used in file names and compositions)"
    assert getattr(cls, "kind", None) in KINDS, f"{where}: `kind` must be one of {KINDS}, got {cls.kind!r}"
    assert isinstance(getattr(cls, "latent_space", None), str) and cls.latent_space, \
        f"{where}: set `latent_space` ('W', 'W+', 'W+ & weights', ...)"
    assert isinstance(cls.version, str) and cls.version, f"{where}: `version` must be a non-empty string"
    card = getattr(cls, "card", None)
    assert isinstance(card, Card), f"{where}: set `card = zoo.cards.Card(title=..., authors=..., ...)`"
    for f in REQUIRED_CARD_FIELDS:
        assert getattr(card, f), f"{where}: its card needs `{f}`"
    advice = [f"{where}: card has no `{f}`" for f in RECOMMENDED_CARD_FIELDS if not getattr(card, f)]
    opts = cls.Options
    assert dataclasses.is_dataclass(opts), f"{where}: `Options` must be a dataclass (frozen=True)"
    for f in dataclasses.fields(opts):
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, \
            f"{where}: option '{f.name}' needs a default (the paper's value)"
        if not f.metadata.get("help"):
            advice.append(f"{where}: option '{f.name}' has no help (field(..., metadata={{'help': ...}}))")
    for which in ("embedded_options", "quick_options"):
        extra = getattr(cls, which)()
        assert isinstance(extra, dict), f"{where}.{which}() must return a dict of option overrides"
    try:
        cls.configure({}, embedded=True, quick=True)
    except Exception as exc:  # noqa: BLE001 - reported as the failed check
        raise AssertionError(f"{where}: embedded_options() / quick_options() are not valid options: {exc}") from exc
    params = inspect.signature(cls.invert).parameters
    assert "progress" in params, f"{where}.invert must accept the keyword `progress` (bench passes progress=...)"
    return advice


def check_shapes_and_ranges(inverter: type[Inverter] | Inverter, domain: Domain | None = None, n: int = 3,
                            options: dict[str, Any] | None = None) -> Any:
    """Invert `n` images and check the `Inversion`: latents [n, n_latent, w_dim], reconstructions [n, 3, R, R]
    finite and about [-1, 1] (a generator's overshoot allowed, [0, 255] caught), seconds [n] finite >= 0, `method`
    = the name, `render()` gives the reconstructions back (the editors render edited latents this way), and
    `progress=True` is accepted. Returns the Inversion."""
    domain = domain or TinyDomain()
    inv_ = _instance(inverter, options)
    images = domain.images("test", limit=n)
    out = _invert(inv_, images, domain, progress=False)
    name = inv_.name
    g = domain.generator(inv_.device).generator
    r = domain.resolution
    assert tuple(out.latents.shape) == (n, g.n_latent, g.style_dim), \
        f"{name}: latents must be [B, n_latent, w_dim] = {[n, g.n_latent, g.style_dim]}, got {list(out.latents.shape)}"
    assert tuple(out.reconstructions.shape) == (n, 3, r, r), \
        f"{name}: reconstructions must be [B, 3, {r}, {r}], got {list(out.reconstructions.shape)}"
    rec = out.reconstructions.detach().float()
    assert torch.isfinite(rec).all(), f"{name}: reconstructions contain NaN or inf"
    # no range check: a generator's raw output overshoots [-1, 1] (the bench clamps before scoring); an untrained
    # test generator overshoots a lot, so a range bound would reject correct methods
    assert tuple(out.seconds.shape) == (n,), f"{name}: seconds must be [B] (per image), got {list(out.seconds.shape)}"
    assert torch.isfinite(out.seconds).all() and (out.seconds >= 0).all(), \
        f"{name}: seconds must be finite and >= 0 (measure with self.clock())"
    assert out.method == name, f"{name}: Inversion.method must be the inverter's name, got {out.method!r}"
    assert out.domain is None or out.domain is domain, f"{name}: Inversion.domain must be the domain inverted on"
    out.domain = out.domain or domain
    with torch.no_grad():
        again = out.render().float()
    gap = float((again - rec).abs().max())
    assert gap < 1e-3, (f"{name}: render() differs from the reconstructions by {gap:.3g}: put every generator change "
                        "in Inversion.change / noise (editors render through them)")
    _invert(inv_, images[:1], domain, progress=True)
    return out


def check_determinism(inverter: type[Inverter] | Inverter, domain: Domain | None = None, n: int = 2,
                      options: dict[str, Any] | None = None, atol: float = 1e-5) -> None:
    """Two runs with the same torch seed give the same latents and reconstructions (the bench seeds each batch;
    resumed runs must reproduce interrupted ones)."""
    domain = domain or TinyDomain()
    inv_ = _instance(inverter, options)
    images = domain.images("test", limit=n)
    a, b = _invert(inv_, images, domain), _invert(inv_, images, domain)
    for what in ("latents", "reconstructions"):
        gap = float((getattr(a, what).float() - getattr(b, what).float()).abs().max())
        assert gap <= atol, (f"{inv_.name}: two runs with the same seed differ in {what} by {gap:.3g}; draw every "
                             "random number from torch's global generator (seeded by the caller)")


def check_batch_independence(inverter: type[Inverter] | Inverter, domain: Domain | None = None, n: int = 3,
                             options: dict[str, Any] | None = None, atol: float = 1e-3) -> bool:
    """For a batchable method (`batchable = True`, or an encoder): each image's result does not depend on the other
    images of its batch (within `atol`). Returns False (nothing checked) for methods that invert one at a time."""
    from .bench.units import is_batchable

    domain = domain or TinyDomain()
    inv_ = _instance(inverter, options)
    if not is_batchable(inv_):
        return False
    images = domain.images("test", limit=n)
    together = _invert(inv_, images, domain)
    for i in range(n):
        alone = _invert(inv_, images[i : i + 1], domain)
        gap = float((alone.latents[0].float() - together.latents[i].float()).abs().max())
        assert gap <= atol, (f"{inv_.name}: image {i} inverted alone differs from the same image in a batch of {n} "
                             f"by {gap:.3g} in its latents; avoid batch statistics, or set `batchable = False`")
    return True


def check_inverter(inverter: type[Inverter], domain: Domain | None = None, *, name: str | None = None,
                   plugin: str | None = None, options: dict[str, Any] | None = None,
                   registered: bool = True) -> dict[str, Any]:
    """Every check above on `inverter` (a class). `registered=False` skips the registry check (e.g. before the
    package is installed). Returns {"checks": [names passed], "advice": [recommendations]}."""
    domain = domain or TinyDomain()
    checks, advice = [], []
    if registered:
        check_registration(name or inverter.name, "inverter", plugin)
        checks.append("registration")
    advice += check_card(inverter)
    checks.append("card")
    check_shapes_and_ranges(inverter, domain, options=options)
    checks.append("shapes_and_ranges")
    check_determinism(inverter, domain, options=options)
    checks.append("determinism")
    if check_batch_independence(inverter, domain, options=options):
        checks.append("batch_independence")
    return {"checks": checks, "advice": advice}


__all__ = ["TinyDomain", "check_batch_independence", "check_card", "check_determinism", "check_inverter",
           "check_registration", "check_shapes_and_ranges"]
