"""`zoo train psp|e4e|restyle_psp|restyle_e4e|hyperstyle|w_encoder --domain NAME` (added by register_commands)."""

from __future__ import annotations

import json
import os

import click

from .configs import METHODS

HELP = {
    "psp": "Train pSp (IR-SE FPN encoder) on a domain's train split.",
    "e4e": "Train e4e (progressive deltas, delta regularisation, latent discriminator).",
    "restyle_psp": "Train ReStyle-pSp (iterative residual encoder, per-iteration losses).",
    "restyle_e4e": "Train ReStyle-e4e (ReStyle iterations with e4e's encoder and training terms).",
    "hyperstyle": "Train the HyperStyle hypernetwork (needs a trained W-encoder: `zoo train w_encoder` first).",
    "w_encoder": "Train HyperStyle's single-w encoder (pSp-style losses).",
}


def _threads(n: int | None) -> None:
    import torch

    torch.set_num_threads(n or int(os.environ.get("ZOO_THREADS", "0")) or torch.get_num_threads())


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    from zoo.options import parse_option_strings

    return parse_option_strings(pairs)


def make_command(method: str) -> click.Command:
    @click.command(method, help=HELP[method] + " Reruns resume from the run directory's state.pt.")
    @click.option("--domain", default="peeps", show_default=True, help="Domain whose generator and data to use.")
    @click.option("--steps", type=int, default=None, help="Total optimiser steps (default: the recipe's).")
    @click.option("--minutes", type=float, default=None,
                  help="Wall-time budget of the whole run in minutes, summed over resumes (default: the recipe's).")
    @click.option("--batch", type=int, default=None, help="Batch size (default 8).")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--out", type=click.Path(file_okay=False), default=None,
                  help="Run directory (default: <cache>/runs/<domain>/<method>); rerun to resume.")
    @click.option("--fresh", is_flag=True, help="Ignore an existing state.pt in the run directory and start over.")
    @click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                  help="Override a recipe setting, e.g. --set lr=1e-4 --set n_iters_per_batch=3.")
    @click.option("--install/--no-install", default=False,
                  help="Export fp16 weights and register them (model card + sha256) in the peeps package weights.")
    @click.option("--threads", type=int, default=None, help="torch CPU threads (default: all).")
    @click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (CUDA if any).")
    def command(domain: str, steps: int | None, minutes: float | None, batch: int | None, seed: int,
                out: str | None, fresh: bool, sets: tuple[str, ...], install: bool, threads: int | None,
                device: str, backbone: str | None = None, w_encoder: str | None = None) -> None:
        from zoo.bench.config import resolve_device

        from .train import export_encoder, train_encoder

        _threads(threads)
        summary = train_encoder(method, domain, out, steps=steps, batch=batch, max_minutes=minutes,
                                resume=not fresh, seed=seed, backbone=backbone, recipe=_parse_sets(sets),
                                w_encoder=w_encoder, device=resolve_device(device))
        click.echo(json.dumps(summary, indent=2, default=str))
        exported = export_encoder(method, summary["run_dir"], domain, install=install)
        click.echo(json.dumps({"export": exported}, indent=2, default=str))

    if method in ("restyle_psp", "restyle_e4e"):
        command = click.option("--backbone", type=click.Choice(["irse", "resnet34"]), default="irse",
                               show_default=True, help="Encoder backbone (IR-SE: faces recipe).")(command)
    if method == "hyperstyle":
        command = click.option("--w-encoder", "w_encoder", type=click.Path(dir_okay=False), default=None,
                               help="Frozen W-encoder file (default: the domain's installed one, else the default "
                                    "w_encoder run's export).")(command)
    return command


def add_commands(cli: click.Group) -> None:
    train = cli.commands["train"]
    for method in METHODS:
        train.add_command(make_command(method))
