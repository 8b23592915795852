"""Name -> implementation registries for inverters, refiners, editors, domains and metrics (timm style).

Plugins register through the `register_*` hooks; each plugin's implementation is called separately so every
name knows the plugin it came from. Collections are cached per kind and rebuilt when plugins change. An inverter
name `refiner@embedder` is a composed inverter (zoo.composition), built on lookup from a refiner and an inverter.

Example::

    from zoo import registry
    registry.list_inverters("restyle*")                  # fnmatch patterns, sorted names
    inv = registry.create_inverter("mean_latent", device="cpu", batch_size=8)
    inversion = inv.invert(images, registry.get_domain("peeps"))
    registry.create_inverter_for("pti@e4e", registry.get_domain("peeps"), {"pti.steps": 100})
"""

from __future__ import annotations

import fnmatch
import inspect
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, is_dataclass
from typing import Any, Literal

from . import plugins
from .cards import Card
from .composition import compose, is_composition, split_name
from .domain import Domain
from .editor import Editor
from .errors import DuplicateNameError, PluginLoadError, UnknownNameError, ZooError
from .inverter import Inverter
from .metric import Metric
from .refiner import Refiner

Kind = Literal["inverter", "refiner", "editor", "domain", "metric"]
KINDS: tuple[Kind, ...] = ("inverter", "refiner", "editor", "domain", "metric")
HOOKS: dict[Kind, str] = {"inverter": "register_inverters", "refiner": "register_refiners",
                          "editor": "register_editors", "domain": "register_domains", "metric": "register_metrics"}
BASES: dict[Kind, type] = {"inverter": Inverter, "refiner": Refiner, "editor": Editor, "domain": Domain,
                           "metric": Metric}
REQUIRED: dict[Kind, tuple[str, ...]] = {"inverter": ("kind", "latent_space", "card"),
                                         "refiner": ("accepts", "latent_space", "card"), "editor": ("card",),
                                         "domain": ("resolution", "card"), "metric": ("higher_is_better", "card")}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass
class Registration:
    """One registered name: `obj` is the class (inverter/editor/metric) or the Domain instance / factory."""

    kind: Kind
    name: str
    plugin: str
    obj: Any
    cls: type  # the implementing class (for listing without instantiating domains)
    instance: Any = None  # the Domain, once created

    def origin(self) -> dict[str, Any]:
        """{'plugin', 'distribution', 'version'} of the plugin that registered this name."""
        rec = plugins.plugin_record(self.plugin)
        return {"plugin": self.plugin, "distribution": rec.distribution if rec else None,
                "version": rec.version if rec else None}


_cache: dict[Kind, dict[str, Registration]] = {}
_composed: dict[str, Registration] = {}  # `refiner@embedder` inverters built on lookup (see zoo.composition)
_file_domains: dict[str, Domain] = {}  # user domains loaded from files in this process, by declared name
_cache_generation = -1
_lock = threading.RLock()


# ---------------------------------------------------------------------------------------------------- generic
def registrations(kind: Kind) -> dict[str, Registration]:
    """All registrations of a kind by name (collected from the plugins; cached until plugins change)."""
    global _cache_generation
    if kind not in HOOKS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    plugins.load_plugins()
    with _lock:
        if _cache_generation != plugins.generation():
            _cache.clear()
            _composed.clear()
            _cache_generation = plugins.generation()
        if kind not in _cache:
            _cache[kind] = _collect(kind)
        return dict(_cache[kind])


def list_names(kind: Kind, pattern: str | Iterable[str] = "*") -> list[str]:
    """Sorted names of a kind matching any of the (case-insensitive) fnmatch patterns."""
    pats = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted(n for n in registrations(kind) if any(fnmatch.fnmatchcase(n.lower(), p.lower()) for p in pats))


def get_registration(kind: Kind, name: str) -> Registration:
    """The registration of `name`; UnknownNameError with suggestions otherwise. An inverter name `refiner@embedder`
    is a composition, built on first lookup (InputError for an incompatible pair)."""
    if kind == "inverter" and is_composition(name):
        return _composition(name)
    regs = registrations(kind)
    if name not in regs:
        raise _unknown(kind, name, list(regs))
    return regs[name]


def find(name: str, kind: Kind | None = None) -> Registration:
    """Find `name` in one registry (`kind`) or in all of them; ambiguous names need `kind`. A refiner that shares
    its name with another registration (the refiner `pti` and the inverter `pti`) is found only with kind='refiner'.
    `refiner@embedder` names a composed inverter."""
    if kind is not None:
        return get_registration(kind, name)
    if is_composition(name):
        return _composition(name)
    hits = [registrations(k)[name] for k in KINDS if name in registrations(k)]
    if len(hits) > 1 and any(h.kind != "refiner" for h in hits):
        hits = [h for h in hits if h.kind != "refiner"]
    if len(hits) > 1:
        kinds = " and ".join(h.kind for h in hits)
        raise ZooError(f"'{name}' is both a {kinds}; say which one (e.g. `zoo show --type {hits[0].kind} {name}`)")
    if not hits:
        known = sorted({n for k in KINDS for n in registrations(k)})
        raise _unknown("name", name, known)
    return hits[0]


def _unknown(kind: str, name: str, known: list[str]) -> UnknownNameError:
    if not known:
        what = "nothing is registered" if kind == "name" else f"no {kind}s are registered"
        return UnknownNameError(f"unknown {kind} '{name}' ({what}; see `zoo plugins`)")
    return UnknownNameError.for_name(kind, name, known)


def describe(name: str, kind: Kind | None = None) -> dict[str, Any]:
    """The `describe()` dict of any registered name, plus `type` (its registry: inverter, editor, domain or metric;
    `kind` is taken by the inverters' own "optimization" / "encoder" / "hybrid") and its plugin origin."""
    reg = find(name, kind)
    info = get_domain(name).describe() if reg.kind == "domain" else reg.cls.describe()
    origin = reg.origin()
    return {"type": reg.kind, **info, "plugin": origin["plugin"],
            "distribution": {"name": origin["distribution"], "version": origin["version"]}
            if origin["distribution"] else None}


# ---------------------------------------------------------------------------------------------------- inverters
def list_inverters(pattern: str | Iterable[str] = "*") -> list[str]:
    """Sorted inverter names matching `pattern` (fnmatch wildcards, e.g. 'restyle*')."""
    return list_names("inverter", pattern)


def get_inverter_class(name: str) -> type[Inverter]:
    return get_registration("inverter", name).obj


def create_inverter(name: str, options: Any = None, device: str = "cpu", **overrides: Any) -> Inverter:
    """Instantiate an inverter; `options` is its Options instance or a dict, `overrides` single options."""
    return get_inverter_class(name)(options, device=device, **overrides)


def create_inverter_for(name: str, domain: Domain, options: dict[str, Any] | None = None, device: str = "cpu", *,
                        quick: bool = False) -> Inverter:
    """An inverter configured for `domain` as `zoo bench` configures it (`Inverter.configure`): paper defaults <
    the method's embedded-domain settings (embedded domains; never with official weights) < quick options < the
    domain's own options for it (a domain file's `[methods.NAME]`; for `refiner@embedder`, each part's) <
    `options` (the user's; for a composition 'part.key' entries, see zoo.composition). A composition's weights
    are checked against the domain here (`check_domain`), before any work."""
    cls = get_inverter_class(name)
    resolved = cls.configure({**domain_method_options(domain, name), **(options or {})}, embedded=domain.embedded,
                             quick=quick)
    inverter = cls(resolved, device=device)
    check = getattr(inverter, "check_domain", None)
    if callable(check):
        check(domain)
    return inverter


def domain_method_options(domain: Domain, name: str) -> dict[str, Any]:
    """The options `domain` gives method `name` (a domain file's `[methods.NAME]`; {} for registered domains).
    For `refiner@embedder`: {"refiner": <the refiner's>, "embedder": <the embedder's>} (nested for compositions
    of compositions), under the composition's own `[methods."refiner@embedder"]` entries."""
    fn = getattr(domain, "method_options", None)
    own = dict(fn(name)) if callable(fn) else {}
    if not is_composition(name):
        return own
    refiner, embedder = split_name(name)
    parts = {"refiner": dict(fn(refiner)) if callable(fn) else {}, "embedder": domain_method_options(domain, embedder)}
    return {**{k: v for k, v in parts.items() if v}, **own}


# ---------------------------------------------------------------------------------------------------- refiners
def list_refiners(pattern: str | Iterable[str] = "*") -> list[str]:
    """Sorted refiner names matching `pattern` (the first stage of `refiner@embedder` compositions)."""
    return list_names("refiner", pattern)


def get_refiner_class(name: str) -> type[Refiner]:
    return get_registration("refiner", name).obj


def create_refiner(name: str, options: Any = None, device: str = "cpu", **overrides: Any) -> Refiner:
    return get_refiner_class(name)(options, device=device, **overrides)


def _composition(name: str) -> Registration:
    """The Registration of the composed inverter `refiner@embedder` (built once per plugin generation)."""
    registrations("inverter")  # refreshes the caches when plugins changed
    with _lock:
        if name not in _composed:
            refiner, embedder = split_name(name)
            ref = get_registration("refiner", refiner)
            emb = get_registration("inverter", embedder)
            cls = compose(ref.obj, emb.obj)
            _composed[name] = Registration("inverter", name, f"{ref.plugin} + {emb.plugin}", cls, cls)
        return _composed[name]


# ---------------------------------------------------------------------------------------------------- editors
def list_editors(pattern: str | Iterable[str] = "*") -> list[str]:
    return list_names("editor", pattern)


def get_editor_class(name: str) -> type[Editor]:
    return get_registration("editor", name).obj


def create_editor(name: str, options: Any = None, **overrides: Any) -> Editor:
    return get_editor_class(name)(options, **overrides)


# ---------------------------------------------------------------------------------------------------- metrics
def list_metrics(pattern: str | Iterable[str] = "*") -> list[str]:
    return list_names("metric", pattern)


def get_metric_class(name: str) -> type[Metric]:
    return get_registration("metric", name).obj


def create_metric(name: str, device: str = "cpu", **kwargs: Any) -> Metric:
    return get_metric_class(name)(device=device, **kwargs)


# ---------------------------------------------------------------------------------------------------- domains
def list_domains(pattern: str | Iterable[str] = "*") -> list[str]:
    return list_names("domain", pattern)


def get_domain(name: str) -> Domain:
    """The Domain registered as `name`, created on first use (factories are called once) and cached; or the
    user's domain defined by a file when `name` is a path ending in `.toml` (see `zoo.userdomain`), after which
    its declared name also resolves (for work units that name their domain)."""
    from . import userdomain

    if userdomain.is_domain_file(name):
        domain = userdomain.load_domain_file(name)
        if domain.name in registrations("domain"):
            raise ZooError(f"{domain.spec.file}: name '{domain.name}' is taken by a registered domain; set another "
                           "name = \"…\" in the file")
        _file_domains[domain.name] = domain
        return domain
    if name in _file_domains and name not in registrations("domain"):
        return _file_domains[name]
    reg = get_registration("domain", name)
    with _lock:
        if reg.instance is None:
            reg.instance = _instantiate_domain(reg.obj, reg.plugin, name)
        return reg.instance


# ---------------------------------------------------------------------------------------------------- collection
def _collect(kind: Kind) -> dict[str, Registration]:
    hook = HOOKS[kind]
    out: dict[str, Registration] = {}
    for impl in plugins.hookimpls(hook):
        plugin = impl.plugin_name
        found: list[Registration] = []
        problems: list[ZooError] = []

        def register(obj: Any, *, name: str | None = None, _plugin: str = plugin,
                     _found: list = found, _problems: list = problems) -> None:
            try:
                _found.append(_validate(kind, obj, _plugin, name))
            except ZooError as exc:
                _problems.append(exc)

        try:
            plugins.call_impl(impl, register=register)
        except Exception as exc:  # noqa: BLE001 - a broken plugin loses its contribution, the rest keeps working
            plugins.record_hook_failure(plugin, hook, exc)
            continue
        if problems:
            raise problems[0]
        for reg in found:
            if reg.name in out:
                raise _duplicate(kind, reg.name, out[reg.name].plugin, plugin)
            out[reg.name] = reg
    return out


def _duplicate(kind: Kind, name: str, first: str, second: str) -> DuplicateNameError:
    if first == second:
        return DuplicateNameError(f"plugin '{first}' registers {kind} '{name}' twice")
    return DuplicateNameError(
        f"{kind} '{name}' is registered by two plugins, '{first}'{_dist(first)} and '{second}'{_dist(second)}; "
        f"uninstall one or {plugins.disable_hint(second)}")


def _dist(plugin: str) -> str:
    rec = plugins.plugin_record(plugin)
    return f" ({rec.distribution})" if rec and rec.distribution else ""


def _validate(kind: Kind, obj: Any, plugin: str, name: str | None) -> Registration:
    """Check what a plugin registered; PluginLoadError naming the plugin and the problem otherwise."""
    where = f"plugin '{plugin}' ({HOOKS[kind]})"
    base = BASES[kind]
    if kind == "domain":
        return _validate_domain(obj, plugin, name, where)
    if name is not None:
        raise PluginLoadError(f"{where}: register({obj!r}, name=...) is only for domain factories; "
                              "set the class attribute `name` instead")
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginLoadError(f"{where} registered {obj!r}, which is not a subclass of zoo.{base.__name__}")
    _check_class(obj, kind, where)
    return Registration(kind, obj.name, plugin, obj, obj)


def _check_class(target: Any, kind: Kind, where: str) -> None:
    """Validate a class (or, for domain instances, the object itself) against the interface of `kind`."""
    cls = target if isinstance(target, type) else type(target)
    label = f"{where}: {cls.__module__}.{cls.__qualname__}"
    name = getattr(target, "name", None)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise PluginLoadError(f"{label} needs a class attribute `name` (letters, digits, '_', '.', '-'), "
                              f"got {name!r}")
    missing = [a for a in REQUIRED[kind] if not hasattr(target, a)]
    if missing:
        raise PluginLoadError(f"{label} ('{name}') lacks class attribute(s): {', '.join(missing)}")
    if not isinstance(target.card, Card):
        raise PluginLoadError(f"{label} ('{name}'): `card` must be a zoo.cards.Card, got {type(target.card).__name__}")
    if inspect.isabstract(cls):
        raise PluginLoadError(f"{label} ('{name}') does not implement: {', '.join(sorted(cls.__abstractmethods__))}")
    options = getattr(cls, "Options", None)
    if options is not None and not (isinstance(options, type) and is_dataclass(options)):
        raise PluginLoadError(f"{label} ('{name}'): `Options` must be a dataclass")


def _validate_domain(obj: Any, plugin: str, name: str | None, where: str) -> Registration:
    if isinstance(obj, Domain):
        _check_class(obj, "domain", where)
        return Registration("domain", _named(name, obj.name, where), plugin, obj, type(obj), instance=obj)
    if isinstance(obj, type):
        if not issubclass(obj, Domain):
            raise PluginLoadError(f"{where} registered {obj!r}, which is not a subclass of zoo.Domain")
        _check_class(obj, "domain", where)
        return Registration("domain", _named(name, obj.name, where), plugin, obj, obj)
    if not callable(obj):
        raise PluginLoadError(f"{where} registered {obj!r}: expected a Domain, a Domain subclass or a factory")
    if name is not None:  # a lazy factory with a declared name
        if not NAME_RE.fullmatch(name):
            raise PluginLoadError(f"{where}: invalid domain name {name!r}")
        return Registration("domain", name, plugin, obj, Domain)
    domain = _instantiate_domain(obj, plugin, None)  # anonymous factory: the name is only known by calling it
    _check_class(domain, "domain", where)
    return Registration("domain", domain.name, plugin, obj, type(domain), instance=domain)


def _named(given: str | None, actual: str, where: str) -> str:
    if given is not None and given != actual:
        raise PluginLoadError(f"{where}: registered name '{given}' differs from the domain's name '{actual}'")
    return actual


def _instantiate_domain(factory: Callable[[], Any], plugin: str, name: str | None) -> Domain:
    label = f"domain '{name}'" if name else "a domain factory"
    try:
        domain = factory()
    except ZooError:
        raise
    except Exception as exc:
        raise PluginLoadError(f"{label} from plugin '{plugin}' failed to initialise: {plugins.one_line(exc)}") from exc
    if not isinstance(domain, Domain):
        raise PluginLoadError(f"{label} from plugin '{plugin}' returned {type(domain).__name__}, not a zoo.Domain")
    if name is not None and domain.name != name:
        raise PluginLoadError(f"{label} from plugin '{plugin}' created a domain named '{domain.name}'")
    return domain
