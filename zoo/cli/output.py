"""Output helpers shared by the commands: JSON and tabulate tables on stdout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from tabulate import tabulate


def echo_json(data: Any) -> None:
    """Pretty JSON on stdout (non-JSON values such as paths and tuples become strings / lists)."""
    click.echo(json.dumps(data, indent=2, default=str))


def echo_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """A plain-text table of `rows` with (key, header) `columns`."""
    body = [[_cell(r.get(key)) for key, _ in columns] for r in rows]
    click.echo(tabulate(body, headers=[h for _, h in columns], tablefmt="simple", disable_numparse=True))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)
