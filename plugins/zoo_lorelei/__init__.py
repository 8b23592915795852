"""Plugin: the embedded `lorelei` domain (registered through the `zoo` entry-point group, like a third-party plugin)."""

from __future__ import annotations

import zoo


@zoo.hookimpl
def register_domains(register) -> None:
    from .domain import LoreleiDomain

    register(LoreleiDomain)


@zoo.hookimpl
def register_commands(cli) -> None:
    from .commands import add_commands

    add_commands(cli)
