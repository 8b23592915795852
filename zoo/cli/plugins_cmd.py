"""`zoo plugins [--json]`: installed plugins, versions, hooks, and why a plugin failed or was skipped."""

from __future__ import annotations

import click

from ..plugins import DISABLE_ENV, plugin_info
from .output import echo_json, echo_table

COLUMNS = [("name", "name"), ("distribution", "distribution"), ("version", "version"), ("status", "status"),
           ("hooks", "hooks")]


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per plugin).")
def plugins_command(as_json: bool) -> None:
    """Show plugins: where they come from, the hooks they implement and failures."""
    info = plugin_info()
    if as_json:
        echo_json(info)
        return
    if not info:
        click.echo("no plugins installed (entry-point group 'zoo')")
        return
    rows = [{**p, "hooks": [h.removeprefix("register_") for h in p["hooks"]]} for p in info]
    echo_table(rows, COLUMNS)
    problems = [p for p in info if p["error"] or p["note"]]
    if problems:
        click.echo("")
        for p in problems:
            click.echo(f"{p['name']}: {p['error'] or p['note']}")
    if any(p["status"] in ("failed", "error") for p in info):
        click.echo(f"\nswitch a plugin off with {DISABLE_ENV}=name (comma-separated)")
