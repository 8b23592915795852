"""`zoo train`: an empty group that plugins fill through `register_commands` (e.g. `zoo train generator`)."""

from __future__ import annotations

import click

from .group import CommandGroup


@click.group("train", cls=CommandGroup)
def train_group() -> None:
    """Train generators and encoders.

    The subcommands come from plugins; a plugin adds one with
    `cli.commands["train"].add_command(...)` in its `register_commands(cli)` hook
    (e.g. `zoo train generator --domain peeps`).
    """
