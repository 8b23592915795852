"""`zoo train generator|identity|attributes --domain lorelei`: the peeps training commands gain a `lorelei` choice.

The peeps plugin owns `zoo train generator|identity|attributes` (with `--domain peeps`); this plugin extends those
command objects' `--domain` choice, dispatching `lorelei` to the lorelei recipe and every other choice to the original
callback unchanged (the peeps plugin still adds the commands to the CLI).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from zoo.cards import cache_dir


def _run_dir(out: str | None, name: str) -> Path:
    return Path(out) if out else cache_dir() / "runs" / "lorelei" / name


def _generator(out: str | None, minutes: float | None, steps: int | None, install: bool, **_: Any) -> None:
    from .generator_training import install_generator, run

    run_dir = _run_dir(out, "generator")
    summary = run(run_dir, minutes, steps)
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "log_tail"}, indent=2, default=str))
    if install:
        click.echo(json.dumps(install_generator(run_dir), indent=2, default=str))


def _identity(out: str | None, **_: Any) -> None:
    from .small_nets import run_identity

    click.echo(json.dumps(run_identity(_run_dir(out, "identity")), indent=2, default=str))


def _attributes(out: str | None, **_: Any) -> None:
    from .small_nets import run_attributes

    click.echo(json.dumps(run_attributes(_run_dir(out, "attributes")), indent=2, default=str))


LORELEI_TRAINERS: dict[str, Callable[..., None]] = {"generator": _generator, "identity": _identity,
                                                      "attributes": _attributes}


def extend_command(cmd: click.Command, lorelei: Callable[..., None]) -> None:
    """Add `lorelei` to `cmd`'s `--domain` choices and route it to `lorelei(**options)` (threads applied first);
    idempotent."""
    if getattr(cmd.callback, "_lorelei", False):
        return
    param = next(p for p in cmd.params if p.name == "domain")
    if isinstance(param.type, click.Choice) and "lorelei" not in param.type.choices:
        param.type = click.Choice([*param.type.choices, "lorelei"])
    original = cmd.callback
    assert original is not None

    @functools.wraps(original)
    def callback(domain: str, **options: Any) -> None:
        if domain != "lorelei":
            return original(domain=domain, **options)
        from zoo_peeps.commands import _threads

        _threads(options.get("threads"))
        return lorelei(**options)

    callback._lorelei = True  # type: ignore[attr-defined]
    cmd.callback = callback


def add_commands(cli: click.Group) -> None:
    """Extend the peeps plugin's command objects (whichever plugin's hook runs first, they are the same objects)."""
    from zoo_peeps import commands as peeps_commands

    for name, fn in LORELEI_TRAINERS.items():
        extend_command(getattr(peeps_commands, f"train_{name}"), fn)
