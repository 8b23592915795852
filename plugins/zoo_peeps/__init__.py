"""Built-in plugin: the embedded `peeps` domain (registered through the `zoo` entry-point group)."""

from __future__ import annotations

import zoo


@zoo.hookimpl
def register_domains(register) -> None:
    from .domain import PeepsDomain

    register(PeepsDomain)


@zoo.hookimpl
def register_commands(cli) -> None:
    from .commands import add_commands

    add_commands(cli)
