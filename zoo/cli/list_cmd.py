"""`zoo list [inverters|refiners|editors|domains|metrics|all] [--filter PATTERN] [--json]`.

Refiners are second stages: `REFINER@INVERTER` names a composed inverter (zoo.composition), e.g. `pti@e4e`."""

from __future__ import annotations

from typing import Any

import click

from .. import registry
from ..composition import GRAMMAR
from ..registry import Kind, Registration
from .output import echo_json, echo_table

PLURALS: dict[str, Kind] = {"inverters": "inverter", "refiners": "refiner", "editors": "editor", "domains": "domain",
                            "metrics": "metric"}
COLUMNS: dict[Kind, list[tuple[str, str]]] = {
    "inverter": [("name", "name"), ("kind", "kind"), ("latent_space", "latent space"),
                 ("changes_generator", "tunes G"), ("plugin", "plugin"), ("title", "paper")],
    "refiner": [("name", "name"), ("accepts", "starts from"), ("latent_space", "latent space"),
                ("changes_generator", "tunes G"), ("plugin", "plugin"), ("title", "paper")],
    "editor": [("name", "name"), ("plugin", "plugin"), ("title", "paper")],
    "domain": [("name", "name"), ("resolution", "resolution"), ("plugin", "plugin"), ("title", "title")],
    "metric": [("name", "name"), ("direction", "better"), ("plugin", "plugin"), ("title", "title")],
}


@click.command("list")
@click.argument("what", type=click.Choice([*PLURALS, "all"]), default="all", required=False)
@click.option("--filter", "-f", "pattern", default="*", metavar="PATTERN",
              help="fnmatch pattern ('restyle*'); without wildcards it matches anywhere in the name.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rows instead of tables.")
def list_command(what: str, pattern: str, as_json: bool) -> None:
    """List registered inverters, editors, domains and metrics (default: all of them)."""
    kinds = list(PLURALS.values()) if what == "all" else [PLURALS[what]]
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    rows = {k: [row(registry.registrations(k)[n]) for n in registry.list_names(k, pattern)] for k in kinds}
    if as_json:
        echo_json([r for k in kinds for r in rows[k]])
        return
    for i, kind in enumerate(kinds):
        if len(kinds) > 1:
            click.echo(("\n" if i else "") + click.style(f"{kind.capitalize()}s ({len(rows[kind])})", bold=True))
        if rows[kind]:
            echo_table(rows[kind], COLUMNS[kind])
            if kind == "refiner":
                click.echo(f"compose: {GRAMMAR}; zoo show REFINER@EMBEDDER")
        else:
            click.echo(f"no {kind}s registered" if pattern == "*" else f"no {kind}s match '{pattern}'")


def row(reg: Registration) -> dict[str, Any]:
    """A flat, JSON-friendly summary of one registration (class attributes only: nothing is instantiated).

    `type` is the registry (inverter, ...); `kind` is an inverter's optimization / encoder / hybrid."""
    src = reg.instance if reg.instance is not None else reg.cls
    card = getattr(src, "card", None)
    out: dict[str, Any] = {"type": reg.kind, "name": reg.name, "plugin": reg.plugin,
                           "title": getattr(card, "title", "")}
    if reg.kind == "inverter":
        out.update(kind=src.kind, latent_space=src.latent_space, changes_generator=src.changes_generator,
                   version=src.version)
    elif reg.kind == "refiner":
        out.update(accepts="W codes" if src.accepts == "W" else "W / W+ codes", latent_space=src.latent_space,
                   changes_generator=src.changes_generator, version=src.version)
    elif reg.kind == "domain":
        out["resolution"] = getattr(src, "resolution", None)
    elif reg.kind == "metric":
        out["higher_is_better"] = src.higher_is_better
        out["direction"] = "higher" if src.higher_is_better else "lower"
    else:
        out["version"] = src.version
    return out
