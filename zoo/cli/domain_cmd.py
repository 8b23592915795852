"""`zoo domain new NAME ...` (a commented starting domain file) and `zoo domain check FILE [--json]` (load and
verify everything a domain file names; also what `zoo show FILE.toml` prints)."""

from __future__ import annotations

from typing import Any

import click

from .. import log as zlog
from .group import CommandGroup
from .output import echo_json


@click.group("domain", cls=CommandGroup)
def domain_group() -> None:
    """Your own domain from a TOML file: write a starting file (new), verify one (check)."""


@domain_group.command("new")
@click.argument("name")
@click.option("--generator", required=True, metavar="FILE",
              help="The generator: a rosinality .pt, an NVlabs .pkl or a pSp/e4e/ReStyle/HyperStyle .pt.")
@click.option("--images", required=True, metavar="DIR", help="Test images: a folder or a glob.")
@click.option("--ood", metavar="DIR", help="Out-of-domain images: a folder or a glob (optional).")
@click.option("--identity", default="none", show_default=True, metavar="MODEL",
              help="ID metric model: arcface:PATH, curricularface:PATH, dlib, moco:PATH or none.")
@click.option("--align", type=click.Choice(["none", "ffhq"]), default="none", show_default=True,
              help="ffhq: align photos with dlib's 68 landmarks (pip install 'inversion-zoo[align]').")
@click.option("--out", metavar="NAME.toml", help="File to write (default: NAME.toml here); never overwritten.")
def new_command(name: str, generator: str, images: str, ood: str | None, identity: str, align: str,
                out: str | None) -> None:
    """Write a commented starting domain file NAME.toml (every field shown; paths relative to the file)."""
    from ..userdomain.template import write_template

    path, notes = write_template(out or f"{name}.toml", name, generator, images, ood, identity, align)
    for note in notes:
        zlog.warn(f"{note} (`zoo domain check` will report it)")
    click.echo(f"wrote {path}; next: zoo domain check {path}")


@domain_group.command("check")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document (card, problems, warnings, estimate).")
@click.option("--no-estimate", is_flag=True, help="Skip the timing runs of the bench-time estimate.")
@click.option("--device", default="auto", show_default=True, help="Device of the estimate: cpu, cuda, cuda:N, auto.")
def check_command(file: str, as_json: bool, no_estimate: bool, device: str) -> None:
    """Load and verify every entry of a domain file; exit 1 with one line per problem."""
    run_check(file, as_json=as_json, estimate=not no_estimate, device=device)


def run_check(file: str, *, as_json: bool = False, estimate: bool = True, device: str = "auto") -> None:
    """Check `file`, print the card (or JSON) and every warning / problem line; exit 1 when there are problems."""
    from ..userdomain.check import check_domain_file

    result = check_domain_file(file, estimate=estimate, device=device)
    if as_json:
        echo_json(result.to_dict())
    else:
        render(result)
    if result.problems:
        click.get_current_context().exit(1)


# ---------------------------------------------------------------------------------------------------- text output
def render(result: Any) -> None:
    from tabulate import tabulate

    card = result.card

    def table(rows: list[list[Any]], headers: list[str]) -> None:
        click.echo(tabulate([[_cell(c) for c in r] for r in rows], headers=headers, tablefmt="simple",
                            disable_numparse=True))

    if card:
        click.echo(click.style(f"domain {card.get('name')}", bold=True) + f"  ({card.get('file')})")
        gen = card.get("generator") or {}
        rows = [["title", card.get("title")], ["face", card.get("face")], ["resize", card.get("resize")],
                ["generator", gen.get("path")]]
        if "format" in gen:
            arch = (f"channel multiplier {gen['channel_multiplier']}" if gen.get("channel_multiplier")
                    else f"channels {gen.get('channels')}")
            if str(gen.get("network", "")).startswith("StyleGAN3"):
                chans = list((gen.get("channels") or {}).values())
                arch = (f"{gen['network']}, {gen.get('synthesis_layers')} synthesis layers (channels "
                        f"{max(chans[:-1], default=0)} max)")
            rows += [["  format", gen["format"]],
                     ["  resolution", f"{gen['resolution']}x{gen['resolution']}"],
                     ["  styles / w_dim", f"{gen['n_styles']} x {gen['w_dim']}"],
                     ["  architecture", f"{arch}, {gen['mapping_layers']} mapping layers"],
                     ["  latent_avg", gen["latent_avg"]]]
        if gen.get("sha256"):
            pinned = " (matches generator.sha256)" if gen.get("sha256_expected") == gen["sha256"] else \
                " (not pinned)" if not gen.get("sha256_expected") else " (≠ generator.sha256)"
            rows += [["  sha256", gen["sha256"] + pinned], ["  weights digest", gen.get("digest")]]
        ident = card.get("identity") or {}
        rows.append(["identity", ident.get("model", "") + (f":{ident['path']}" if ident.get("path") else "")
                     + (f" ({ident['detail']})" if ident.get("detail") else "")])
        imgs = card.get("images") or {}
        rows += [["images.limit", imgs.get("limit") or "0 (all)"], ["images.align", imgs.get("align")]]
        if imgs.get("aligner"):
            rows.append(["  aligner", imgs["aligner"]])
        metrics = card.get("metrics") or {}
        rows.append(["metrics", f"size {metrics.get('size')}, lpips {metrics.get('lpips')}"])
        for key in ("notes", "licence"):
            if card.get(key):
                rows.append([key, card[key]])
        table(rows, ["field", "value"])
        splits = imgs.get("splits") or {}
        if splits:
            click.echo("")
            table([[s, ", ".join(e["entries"]), e["files"], e["used"], e["first"], e["last"]]
                   for s, e in splits.items()], ["split", "entries", "files", "used", "first", "last"])
        _render_directions(card.get("directions") or {}, table)
        methods = card.get("methods") or {}
        if methods:
            click.echo("")
            rows = []
            for name, m in methods.items():
                opts = ", ".join(f"{k}={v}" for k, v in m.get("options", {}).items())
                ck = m.get("checkpoint") or {}
                what = f"{ck['method']} ({ck['encoder_type']})" if ck else ""
                if m.get("decoder"):
                    what += f"; decoder {m['decoder']}"
                rows.append([name, m.get("kind", "?"), opts, what])
            table(rows, ["method", "kind", "options", "checkpoint"])
    est = result.estimate
    if est:
        click.echo("")
        fwd = est.get("generator_forward_s")
        imgs = est.get("images", {})
        click.echo(click.style("bench time estimate", bold=True) + f" on {est['device']} ({est['threads']} threads)"
                   + (f": generator forward {fwd:.3g} s at batch 1" if fwd else ""))
        rows = []
        for name, row in est.get("methods", {}).items():
            rows.append([name, row["kind"], _secs(row.get("per_image_s")), _secs(row.get("default_run_s")),
                         _secs(row.get("whole_splits_s")), row["how"]])
        if rows:
            table(rows, ["method", "kind", "per image", f"default run ({imgs.get('default_run')} images)",
                         f"--limit 0 ({imgs.get('whole_splits')} images)", "how"])
        if est.get("editing_sweep_per_image_method_s") is not None:
            click.echo(f"editing sweep: + {_secs(est['editing_sweep_per_image_method_s'])} per image and method "
                       f"({est['editing_sweep_how']})")
        click.echo(f"estimate: {est['how']}")
    if card or est:
        click.echo("")
    for line in result.warnings:
        click.echo(f"warning: {line}")
    for line in result.problems:
        click.echo(f"problem: {line}")
    n, w = len(result.problems), len(result.warnings)
    verdict = "ok" if not n else f"{n} problem{'s' if n != 1 else ''}"
    click.echo(f"{verdict}, {w} warning{'s' if w != 1 else ''} (checked in {result.seconds:.1f} s)")


def _render_directions(d: dict[str, Any], table: Any) -> None:
    rows = []
    for name, e in (d.get("interfacegan") or {}).items():
        rows.append(["interfacegan", name, e.get("file"), "x".join(map(str, e["shape"])) if e.get("shape") else ""])
    gs = d.get("ganspace")
    if gs:
        comp = f"{gs['components']} components" if gs.get("components") else ""
        rows.append(["ganspace", "(PCA)", gs.get("file"), comp])
        for name, e in (gs.get("edits") or {}).items():
            rows.append(["ganspace", name, "", f"component {e[0]}, layers {e[1]}-{e[2] - 1}, strength {e[3]:g}"])
    for name, ch in (d.get("stylespace") or {}).items():
        rows.append(["stylespace", name, "", ch])
    if rows:
        click.echo("")
        table(rows, ["editor", "direction", "file", "shape / edit"])


def _secs(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s < 1:
        return f"{s * 1000:.3g} ms"
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    return f"{s / 3600:.3g} h"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
