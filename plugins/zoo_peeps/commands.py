"""`zoo train generator|identity|attributes|directions --domain peeps` (added to the CLI by register_commands)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from zoo.cards import cache_dir


def _run_dir(out: str | None, name: str) -> Path:
    return Path(out) if out else cache_dir() / "runs" / "peeps" / name


def _threads(n: int | None) -> None:
    import torch

    torch.set_num_threads(n or int(os.environ.get("ZOO_THREADS", "0")) or torch.get_num_threads())


domain_option = click.option("--domain", type=click.Choice(["peeps"]), default="peeps", show_default=True,
                             help="Domain whose model to train.")
out_option = click.option("--out", type=click.Path(file_okay=False), default=None,
                          help="Run directory (default: <cache>/runs/peeps/<model>); rerun to resume.")
threads_option = click.option("--threads", type=int, default=None, help="torch CPU threads (default: all).")


@click.command("generator")
@domain_option
@out_option
@click.option("--minutes", type=float, default=None, help="Stop (and checkpoint) after this much wall time.")
@click.option("--steps", type=int, default=None, help="Total steps (default: the recipe's).")
@click.option("--install/--no-install", default=False, help="Export the EMA generator into the package weights "
              "with its model card, sample grids and KID (source checkouts).")
@threads_option
def train_generator(domain: str, out: str | None, minutes: float | None, steps: int | None, install: bool,
                    threads: int | None) -> None:
    """Train (or resume) the StyleGAN2 of the peeps domain."""
    from .generator_training import install_generator, run

    _threads(threads)
    run_dir = _run_dir(out, "generator")
    summary = run(run_dir, minutes, steps)
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "log_tail"}, indent=2, default=str))
    if install:
        click.echo(json.dumps(install_generator(run_dir), indent=2, default=str))


@click.command("identity")
@domain_option
@out_option
@threads_option
def train_identity(domain: str, out: str | None, threads: int | None) -> None:
    """Train the identity embedder (ID metric / ID loss) and install it with its model card."""
    from .small_nets import run_identity

    _threads(threads)
    click.echo(json.dumps(run_identity(_run_dir(out, "identity")), indent=2, default=str))


@click.command("attributes")
@domain_option
@out_option
@threads_option
def train_attributes(domain: str, out: str | None, threads: int | None) -> None:
    """Train the attribute scorers (smile, glasses, facial hair, pose) and install them."""
    from .small_nets import run_attributes

    _threads(threads)
    click.echo(json.dumps(run_attributes(_run_dir(out, "attributes")), indent=2, default=str))


@click.command("directions")
@domain_option
@out_option
@threads_option
def train_directions(domain: str, out: str | None, threads: int | None) -> None:
    """Fit the editing directions (InterFaceGAN boundaries, StyleSpace channels, edited regions) from
    renderer-labelled reconstructions and install them; rerun to resume."""
    from .directions import run_directions

    _threads(threads)
    click.echo(json.dumps(run_directions(_run_dir(out, "directions")), indent=2, default=str))


def add_commands(cli: click.Group) -> None:
    train = cli.commands["train"]
    for cmd in (train_generator, train_identity, train_attributes, train_directions):
        train.add_command(cmd)
