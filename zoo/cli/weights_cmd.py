"""`zoo weights`: prepare and verify every weights file the domains and metrics need (offline)."""

from __future__ import annotations

import click

from .. import registry
from ..errors import ZooError
from .output import echo_json, echo_table


def _domain_rows() -> list[tuple[str, str, str]]:
    rows = []
    for name in registry.list_domains():
        try:
            specs = registry.get_domain(name).weights
        except ZooError as exc:
            rows.append((f"{name}", "error", str(exc)))
            continue
        for role, spec in specs.items():
            try:
                rows.append((spec.name, "ok", str(spec.resolve())))
            except ZooError as exc:
                rows.append((spec.name, "error", str(exc)))
    return rows


def _metric_rows() -> list[tuple[str, str, str]]:
    try:
        from zoo_metrics.weights import prepare_metric_weights
    except ImportError:
        return [("metrics", "missing", "the built-in metrics plugin is not installed")]
    return list(prepare_metric_weights(verbose=False))


@click.command("weights")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def weights_command(as_json: bool) -> None:
    """Prepare (convert) and sha256-verify all weights of domains and metrics; exit 1 if any is unusable."""
    rows = _domain_rows() + _metric_rows()
    if as_json:
        echo_json([{"name": n, "status": s, "detail": d} for n, s, d in rows])
    else:
        echo_table([{"name": n, "status": s, "detail": d} for n, s, d in rows],
                   [("name", "name"), ("status", "status"), ("detail", "path or fix")])
    if any(status == "error" for _, status, _ in rows):
        raise click.exceptions.Exit(1)
