"""Built-in plugin: the embedded `peeps` (StyleGAN2) and `peeps3` (StyleGAN3) domains (registered through the `zoo`
entry-point group)."""

from __future__ import annotations

import zoo


@zoo.hookimpl
def register_domains(register) -> None:
    from .domain import PeepsDomain
    from .domain3 import Peeps3Domain

    register(PeepsDomain)
    register(Peeps3Domain)


@zoo.hookimpl
def register_commands(cli) -> None:
    from .commands import add_commands

    add_commands(cli)
