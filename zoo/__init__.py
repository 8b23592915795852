"""inversion-zoo: a plugin-based zoo of StyleGAN inversion methods with a reproducible benchmark.

The registry is available at the top level (timm style), imported lazily so `import zoo` stays light::

    import zoo
    zoo.list_inverters()                         # ['e4e', 'hyperstyle', ..., 'pti', ...]
    domain = zoo.get_domain("peeps")             # or a domain file: zoo.get_domain("ffhq.toml")
    inverter = zoo.create_inverter_for("pti", domain)   # the options `zoo bench` uses on that domain
    inversion = inverter.invert(domain.images("test", limit=2), domain)
    edited = zoo.create_editor("interfacegan").edit(inversion, "smile", 2.0)

Also: `create_inverter` (paper defaults), `list_editors` / `create_editor`, `list_metrics` / `create_metric`,
`list_domains`, `describe`, the interfaces (`Inverter`, `Inversion`, `Editor`, `Domain`, `Metric`, `Card`) and
`run_bench` / `BenchConfig`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .hookspecs import hookimpl

try:
    __version__ = version("inversion-zoo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

# name -> (module, attribute): resolved on first use
_LAZY = {
    **{name: ("zoo.registry", name) for name in (
        "list_inverters", "get_inverter_class", "create_inverter", "create_inverter_for", "list_refiners",
        "get_refiner_class", "create_refiner", "list_editors", "get_editor_class", "create_editor", "list_metrics",
        "get_metric_class", "create_metric", "list_domains", "get_domain", "describe")},
    "Inverter": ("zoo.inverter", "Inverter"), "Refiner": ("zoo.refiner", "Refiner"),
    "Inversion": ("zoo.inversion", "Inversion"),
    "Editor": ("zoo.editor", "Editor"), "Domain": ("zoo.domain", "Domain"), "Metric": ("zoo.metric", "Metric"),
    "Card": ("zoo.cards", "Card"), "WeightSpec": ("zoo.cards", "WeightSpec"),
    "run_bench": ("zoo.bench", "run_bench"), "BenchConfig": ("zoo.bench", "BenchConfig"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", "hookimpl", *_LAZY]
