"""`zoo show NAME [--type TYPE] [--json]`: card, properties, options and (for domains) sha256-pinned weights;
`zoo show path/to/domain.toml` prints what `zoo domain check` prints."""

from __future__ import annotations

from typing import Any

import click

from .. import registry
from .output import echo_json, echo_table

OPTION_COLUMNS = [("name", "option"), ("type", "type"), ("default", "default"), ("help", "help")]
WEIGHT_COLUMNS = [("role", "role"), ("filename", "file"), ("sha256", "sha256"), ("size", "size"),
                  ("licence", "licence"), ("source", "source")]
CARD_FIELDS = ("authors", "year", "url", "code_url", "licence", "notes", "citation")


@click.command("show")
@click.argument("name")
@click.option("--type", "kind", type=click.Choice(list(registry.KINDS)),
              help="Registry to look in (for names used by several).")
@click.option("--json", "as_json", is_flag=True, help="Print the full description as JSON.")
def show_command(name: str, kind: str | None, as_json: bool) -> None:
    """Describe an inverter, editor, domain or metric; a domain file (path/to/domain.toml) is checked as by
    `zoo domain check FILE`."""
    from ..userdomain import is_domain_file

    if is_domain_file(name):
        from .domain_cmd import run_check

        run_check(name, as_json=as_json)
        return
    info = registry.describe(name, kind)  # type: ignore[arg-type]
    if as_json:
        echo_json(info)
        return
    render(info)


def render(info: dict[str, Any]) -> None:
    """Human-readable description."""
    dist = info.get("distribution")
    origin = f"plugin '{info['plugin']}'" + (f", {dist['name']} {dist['version'] or ''}".rstrip() if dist else "")
    click.echo(click.style(info["name"], bold=True) + f"  ({info['type']}; {origin})")
    card = info.get("card") or {}
    if card.get("title"):
        click.echo(f"  {card['title']}")
    for key in CARD_FIELDS:
        if key in card:
            click.echo(f"  {key}: {card[key]}")
    skip = {"name", "type", "plugin", "distribution", "card", "options", "weights"}
    props = {k: v for k, v in info.items() if k not in skip}
    if props:
        click.echo("")
        for key, value in props.items():
            click.echo(f"{key.replace('_', ' ')}: {_fmt(value)}")
    if "options" in info:
        click.echo("")
        if info["options"]:
            echo_table(info["options"], OPTION_COLUMNS)
        else:
            click.echo("no options")
    if "weights" in info:
        click.echo("")
        rows = [_weight_row(role, w) for role, w in info["weights"].items()]
        if rows:
            echo_table(rows, WEIGHT_COLUMNS)
        else:
            click.echo("no weights")


def _weight_row(role: str, w: dict[str, Any]) -> dict[str, Any]:
    size = w.get("size_bytes")
    return {"role": role, "filename": w.get("filename"), "sha256": w.get("sha256"),
            "size": f"{size / 2**20:.1f} MiB" if size else "", "licence": w.get("licence"),
            "source": "shipped" if w.get("path") else (w.get("url") or "")}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)
