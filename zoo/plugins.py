"""The zoo plugin manager: entry points of group `zoo`, loaded one by one so that a broken plugin is reported
(by name, with the way to switch it off) instead of crashing everything.

Environment variables (comma-separated entry-point or distribution names):

* ``ZOO_DISABLE_PLUGINS=a,b`` skips these plugins;
* ``ZOO_LOAD_PLUGINS=a,b`` loads only these (``ZOO_LOAD_PLUGINS=`` loads none).

Built-in plugins (``plugins/zoo_*``) are entry points of the same group as third-party ones.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pluggy

from . import hookspecs
from .errors import PluginLoadError

ENTRY_POINT_GROUP = "zoo"
DISABLE_ENV = "ZOO_DISABLE_PLUGINS"
LOAD_ENV = "ZOO_LOAD_PLUGINS"

Status = Literal["loaded", "failed", "disabled", "error"]


@dataclass
class PluginRecord:
    """What `zoo plugins` shows for one plugin.

    status: "loaded"; "failed" (import or hook validation failed: not registered); "disabled" (skipped by an env
    var); "error" (registered, but one of its hooks raised: its contributions to that hook are ignored).
    """

    name: str
    module: str = ""
    distribution: str | None = None
    version: str | None = None
    source: Literal["entry point", "programmatic"] = "entry point"
    status: Status = "loaded"
    error: str | None = None
    note: str | None = None
    hook_errors: dict[str, str] = field(default_factory=dict)


pm = pluggy.PluginManager("zoo")
pm.add_hookspecs(hookspecs)

_records: dict[str, PluginRecord] = {}
_loaded = False
_generation = 0
_lock = threading.RLock()


# ---------------------------------------------------------------------------------------------------- public API
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide PluginManager, with the `zoo` entry points loaded (once, lazily)."""
    load_plugins()
    return pm


def generation() -> int:
    """A counter bumped whenever the set of registered plugins changes (registries cache on it)."""
    return _generation


def load_plugins() -> None:
    """Load every selected entry point of group `zoo` (idempotent); failures are recorded and reported on stderr."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        eps = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        only = _env_names(LOAD_ENV)
        disabled = _env_names(DISABLE_ENV) or set()
        for ep in eps:
            _load_entry_point(ep, only, disabled)
        if only:
            known = {ep.name for ep in eps} | {_dist_name(ep) for ep in eps}
            for missing in sorted(only - known):
                _warn(f"{LOAD_ENV} names '{missing}' but no installed plugin is called that "
                      f"(installed: {', '.join(sorted(ep.name for ep in eps)) or 'none'})")
        _bump()


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register `plugin` (module, class instance, ...) under `name`; raises PluginLoadError naming it on failure.

    The entry points are loaded first, so a programmatic plugin never hides an installed one by accident.
    """
    load_plugins()
    with _lock:
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if pm.has_plugin(name):
            raise PluginLoadError(f"plugin name '{name}' is already registered; unregister it first or pick another")
        record = PluginRecord(name=name, module=_module_of(plugin), source="programmatic")
        error = _register_checked(plugin, name)
        if error:
            raise PluginLoadError(f"plugin '{name}' {error}")
        _records[name] = record
        _bump()
        return name


def unregister_plugin(name: str) -> None:
    """Unregister a plugin by name (no error if it is not registered) and forget its record."""
    with _lock:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        _records.pop(name, None)
        _bump()


@contextmanager
def temporary_plugin(plugin: Any, name: str | None = None) -> Iterator[str]:
    """Register `plugin` for the duration of a `with` block (tests); always unregistered afterwards."""
    registered = register_plugin(plugin, name)
    try:
        yield registered
    finally:
        unregister_plugin(registered)


def reset_plugins() -> None:
    """Unregister everything and forget all records; the next access reloads the entry points (tests, env changes)."""
    global _loaded
    with _lock:
        for name, _ in pm.list_name_plugin():
            pm.unregister(name=name)
        _records.clear()
        _loaded = False
        _bump()


def plugin_info() -> list[dict[str, Any]]:
    """One dict per plugin (loaded, failed or disabled): name, module, distribution, version, source, status,
    hooks, error, note."""
    load_plugins()
    rows = []
    with _lock:
        for rec in _records.values():
            plugin = pm.get_plugin(rec.name)
            hooks = sorted(c.name for c in (pm.get_hookcallers(plugin) or [])) if plugin is not None else []
            error = rec.error or "; ".join(f"{h}: {e}" for h, e in rec.hook_errors.items()) or None
            rows.append({"name": rec.name, "module": rec.module, "distribution": rec.distribution,
                         "version": rec.version, "source": rec.source, "status": rec.status, "hooks": hooks,
                         "error": error, "note": rec.note})
    return rows


def plugin_record(name: str) -> PluginRecord | None:
    """The record of plugin `name` (None if unknown)."""
    return _records.get(name)


def hookimpls(hook_name: str) -> list[pluggy.HookImpl]:
    """Non-wrapper implementations of a hook, in registration order (for per-plugin calls that track origin)."""
    caller = getattr(get_plugin_manager().hook, hook_name)
    return [i for i in caller.get_hookimpls() if not (i.wrapper or i.hookwrapper)]


def call_impl(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    """Call one hook implementation with the arguments it asks for (pluggy's opt-in arguments)."""
    return impl.function(*[kwargs[a] for a in impl.argnames])


def record_hook_failure(plugin_name: str, hook_name: str, exc: BaseException) -> None:
    """Mark a registered plugin whose hook raised; warns once per (plugin, hook)."""
    with _lock:
        rec = _records.setdefault(plugin_name, PluginRecord(name=plugin_name, source="programmatic"))
        if hook_name in rec.hook_errors:
            return
        rec.hook_errors[hook_name] = one_line(exc)
        rec.status = "error"
    _warn(f"plugin '{plugin_name}'{_origin(rec)} raised in {hook_name}: {one_line(exc)}; "
          f"its {hook_name.removeprefix('register_')} are ignored; {disable_hint(plugin_name)}")


def disable_hint(name: str) -> str:
    """'switch it off with ZOO_DISABLE_PLUGINS=a,name' (keeping what is already disabled)."""
    current = [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip() and n.strip() != name]
    return f"switch it off with {DISABLE_ENV}={','.join([*current, name])}"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """'ExcType: first line of the message' (trimmed)."""
    msg = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------- internals
def _bump() -> None:
    global _generation
    _generation += 1


def _warn(message: str) -> None:
    """`warning: ...` on stderr always (also while an application's logging is configured: a broken plugin must
    be seen), unless `zoo -qq` / the `zoo` logger's level is above WARNING."""
    from . import log as zlog

    if zlog.shown(zlog.logging.WARNING):
        zlog.write(f"warning: {zlog.one_line(message)}")


def _env_names(var: str) -> set[str] | None:
    """None when unset; else the set of comma-separated names (empty string -> empty set)."""
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or ""


def _origin(rec: PluginRecord | None) -> str:
    if rec is None or not rec.distribution:
        return ""
    return f" ({rec.distribution} {rec.version})" if rec.version else f" ({rec.distribution})"


def _module_of(plugin: Any) -> str:
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return f"{cls.__module__}.{cls.__qualname__}"


def _load_entry_point(ep: Any, only: set[str] | None, disabled: set[str]) -> None:
    dist = getattr(ep, "dist", None)
    rec = PluginRecord(name=ep.name, module=ep.value, distribution=getattr(dist, "name", None),
                       version=getattr(dist, "version", None))
    names = {ep.name, rec.distribution}
    if names & disabled:
        rec.status, rec.note = "disabled", f"skipped: listed in {DISABLE_ENV}"
    elif only is not None and not names & only:
        rec.status, rec.note = "disabled", f"skipped: not listed in {LOAD_ENV}"
    elif pm.has_plugin(ep.name):
        rec.status, rec.error = "failed", f"entry-point name '{ep.name}' is already taken by another plugin"
    else:
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure must not take the CLI down
            rec.status, rec.error = "failed", one_line(exc)
        else:
            error = _register_checked(plugin, ep.name)
            if error:
                rec.status, rec.error = "failed", error
    if rec.status == "failed":
        _warn(f"plugin '{rec.name}'{_origin(rec)} failed to load: {rec.error}; {disable_hint(rec.name)}")
    key = rec.name if rec.name not in _records else f"{rec.name}@{rec.distribution or '?'}"
    _records[key] = rec


def _register_checked(plugin: Any, name: str) -> str | None:
    """Register and validate (`check_pending`); on failure unregister and return a one-line reason."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        if pm.get_plugin(name) is plugin:  # older pluggy versions could register part of it
            pm.unregister(name=name)
        return f"has an invalid hook implementation: {' '.join(str(exc).split())}"
    except ValueError as exc:  # same object already registered under another name
        return f"cannot be registered: {exc}"
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        unknown = _unknown_hooks(exc.plugin)
        pm.unregister(plugin=exc.plugin)
        if exc.plugin is not plugin:  # an older plugin went bad (should not happen: each one is checked)
            return f"could not be validated: {' '.join(str(exc).split())}"
        return "implements unknown hook " + ", ".join(unknown) + "; it was not loaded"
    return None


def _unknown_hooks(plugin: Any) -> list[str]:
    known = [n for n, c in vars(pm.hook).items() if isinstance(c, pluggy.HookCaller) and c.has_spec()]
    out = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        close = difflib.get_close_matches(caller.name, known, n=1)
        out.append(f"'{caller.name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return out
