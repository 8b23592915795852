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
@click.option("--domain", default=None, help="For an inverter: the options it runs with on this domain (registered "
              "name or domain file) and where each value comes from (paper / embedded / quick / domain / user).")
@click.option("--quick", is_flag=True, help="With --domain: as `zoo bench --quick` runs it.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="With --domain: a user option.")
def show_command(name: str, kind: str | None, as_json: bool, domain: str | None, quick: bool,
                 options: tuple[str, ...]) -> None:
    """Describe an inverter, editor, domain or metric; a domain file (path/to/domain.toml) is checked as by
    `zoo domain check FILE`. `zoo show METHOD --domain D` lists the options METHOD runs with on D (as `zoo bench`,
    `zoo invert`, `zoo edit` and zoo.create_inverter_for resolve them) and the source of each value."""
    from ..userdomain import is_domain_file

    if is_domain_file(name):
        from .domain_cmd import run_check

        run_check(name, as_json=as_json)
        return
    info = registry.describe(name, kind)  # type: ignore[arg-type]
    if domain is not None:
        if info.get("type") != "inverter":
            raise click.UsageError("--domain applies to inverters (the options they run with on that domain)")
        info["resolved_options"] = resolved_option_sources(name, domain, options, quick)
    elif options or quick:
        raise click.UsageError("-o / --quick need --domain")
    if as_json:
        echo_json(info)
        return
    render(info)
    if "resolved_options" in info:
        click.echo(f"\non {domain}{' (--quick)' if quick else ''}:")
        echo_table(info["resolved_options"], [("name", "option"), ("value", "value"), ("source", "source")])


def resolved_option_sources(name: str, domain_name: str, pairs: tuple[str, ...], quick: bool) -> list[dict[str, Any]]:
    """[{name, value, source}] of the options `name` runs with on the domain, source one of paper (the Options
    default), embedded (embedded_options on an embedded domain), quick, domain (a domain file's [methods.NAME]) or
    user (-o); the same resolution as `registry.create_inverter_for`."""

    from ..options import parse_option_strings

    cls = registry.get_inverter_class(name)
    dom = registry.get_domain(domain_name)
    user = parse_option_strings(pairs, name)
    own = registry.domain_method_options(dom, name)
    split = getattr(cls, "split_options", None)
    if callable(split):  # `refiner@embedder`: each part's options with their own sources, named part.key
        parts = zip(("refiner", "embedder"), (cls.refiner_cls, cls.embedder_cls), split({**own, **user}))
        rows = []
        for _, part_cls, part_user in parts:
            part_own = registry.domain_method_options(dom, part_cls.name)
            for row in _sources(part_cls, dom, {k: v for k, v in part_user.items() if k not in part_own},
                                part_own, quick):
                rows.append({**row, "name": f"{part_cls.name}.{row['name']}"})
        return rows
    return _sources(cls, dom, user, own, quick)


def _sources(cls: Any, dom: Any, user: dict[str, Any], own: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    import dataclasses

    from ..options import make_options

    resolved = cls.configure({**own, **user}, embedded=dom.embedded, quick=quick)
    final = make_options(cls.Options, resolved)
    layers = [("user", user), ("domain", own), ("quick", cls.quick_options() if quick else {}),
              ("embedded", cls.embedded_options() if dom.embedded and not cls.official_weights({**own, **user})
               else {})]
    rows = []
    for f in dataclasses.fields(final):
        source = next((label for label, layer in layers if f.name in layer), "paper")
        rows.append({"name": f.name, "value": getattr(final, f.name), "source": source})
    return rows


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
    skip = {"name", "type", "plugin", "distribution", "card", "options", "weights", "resolved_options"}
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
