"""pluggy hook specifications. Plugins implement them with `@zoo.hookimpl` and call `register(...)`.

A third-party package exposes a module under the `zoo` entry-point group::

    [project.entry-points.zoo]
    my_method = "my_package.zoo_plugin"

    # my_package/zoo_plugin.py
    import zoo

    @zoo.hookimpl
    def register_inverters(register):
        register(MyInverter)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_inverters(register: Callable[[type], None]) -> None:
    """Register `Inverter` subclasses: `register(MyInverter)`."""


@hookspec
def register_refiners(register: Callable[[type], None]) -> None:
    """Register `Refiner` subclasses (second stages of `refiner@embedder` compositions): `register(MyRefiner)`."""


@hookspec
def register_editors(register: Callable[[type], None]) -> None:
    """Register `Editor` subclasses: `register(MyEditor)`."""


@hookspec
def register_domains(register: Callable[[Any], None]) -> None:
    """Register `Domain` objects (or zero-argument factories returning one): `register(my_domain)`."""


@hookspec
def register_metrics(register: Callable[[type], None]) -> None:
    """Register `Metric` subclasses: `register(MyMetric)`."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the `zoo` CLI group (e.g. `zoo train <method>` subcommands)."""
