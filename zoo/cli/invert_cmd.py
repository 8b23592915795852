"""`zoo invert` and `zoo edit`: invert images with one method, save reconstructions/latents, render edits."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from .. import registry
from ..options import parse_option_strings


def _inputs(domain, images: str | None, split: str, limit: int) -> tuple[torch.Tensor, list[str]]:
    if images:
        from ..bench.inputs import load_folder

        folder = load_folder(images, domain.resolution)
        for m in folder.messages:
            click.echo(m.line(), err=True)
        return folder.images[:limit] if limit else folder.images, folder.files[: limit or None]
    x = domain.images(split, limit=limit or None)
    return x, [f"{split}_{i:05d}" for i in range(len(x))]


def _save_png(img: torch.Tensor, path: Path) -> None:
    from PIL import Image

    arr = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(arr).save(path)


common = [
    click.option("--domain", default="peeps", show_default=True, help="Registered domain."),
    click.option("--images", type=click.Path(), default=None, help="Folder of images (else the domain's split)."),
    click.option("--split", default="test", show_default=True, help="Domain split when --images is not given."),
    click.option("--limit", type=int, default=8, show_default=True, help="Number of images (0 = all)."),
    click.option("-o", "--option", "options", multiple=True, help="Method option key=value (repeatable)."),
    click.option("--device", default="cpu", show_default=True),
]


def _with_common(f):
    for opt in reversed(common):
        f = opt(f)
    return f


@click.command("invert")
@click.argument("method")
@_with_common
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
def invert_command(method: str, domain: str, images: str | None, split: str, limit: int, options: tuple[str, ...],
                   device: str, out: str) -> None:
    """Invert images with METHOD; writes <name>.png reconstructions, latents.pt and timings.json to --out."""
    inverter = registry.create_inverter(method, options=parse_option_strings(options), device=device)
    dom = registry.get_domain(domain)
    x, names = _inputs(dom, images, split, limit)
    inverter.prepare(dom)
    inv = inverter.invert(x, dom, progress=True)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, img in zip(names, inv.reconstructions):
        _save_png(img, out_dir / f"{Path(name).stem}.png")
    torch.save({"latents": inv.latents.cpu(), "names": names, "method": method, "domain": domain},
               out_dir / "latents.pt")
    (out_dir / "timings.json").write_text(json.dumps(dict(zip(names, inv.seconds.tolist())), indent=2))
    click.echo(f"{len(names)} images inverted with {method} -> {out_dir} "
               f"(median {inv.seconds.median().item():.3g} s/image)")


def parse_steps(text: str) -> list[float]:
    """'-3:3' -> -3, -2, ..., 3; '-3:3:0.5' -> with step 0.5; '-2,0,2' -> the listed values."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                raise ValueError
            lo, hi, inc = parts[0], parts[1], parts[2] if len(parts) == 3 else 1.0
            n = int(round((hi - lo) / inc))
            if n < 0 or n > 200:
                raise ValueError
            return [round(lo + i * inc, 6) for i in range(n + 1)]
        values = [float(p) for p in text.split(",") if p.strip()]
        if not values:
            raise ValueError
        return values
    except ValueError:
        raise click.BadParameter(f"{text!r}: use LOW:HIGH, LOW:HIGH:INCREMENT or comma-separated numbers",
                                 param_hint="--steps") from None


EDITOR_ORDER = ("interfacegan", "stylespace", "ganspace")


def resolve_direction(direction: str, editor: str | None, domain) -> tuple[str, str]:
    """(editor name, direction) from 'editor:direction', --editor, or the first editor that knows the direction."""
    from ..errors import UnknownNameError

    if ":" in direction and editor is None:
        editor, direction = direction.split(":", 1)
    names = [editor] if editor else [n for n in EDITOR_ORDER if n in registry.list_editors()] + [
        n for n in registry.list_editors() if n not in EDITOR_ORDER]
    known: list[str] = []
    for name in names:
        ed = registry.create_editor(name)
        if ed.accepts(direction, domain):
            return name, direction
        known += [f"{name}:{d}" for d in ed.directions(domain)]
    raise UnknownNameError.for_name("direction", direction if editor is None else f"{editor}:{direction}", known)


def _edit_inputs(dom, paths: tuple[str, ...], split: str, limit: int) -> tuple[torch.Tensor, list[str]]:
    """Images from files / folders (bad files reported in one line each and skipped) or the domain's split."""
    from ..bench.inputs import load_folder, load_image_file
    from ..errors import InputError

    if not paths:
        return _inputs(dom, None, split, limit)
    images, names = [], []
    for p in map(Path, paths):
        if p.is_dir():
            x, n = _inputs(dom, str(p), split, 0)
            images += list(x)
            names += [str(p / f) for f in n]
            continue
        if not p.exists():
            click.echo(f"Warning: {p}: no such file; skipped", err=True)
            continue
        try:
            x, notes = load_image_file(p, dom.resolution)
        except InputError as exc:
            click.echo(f"Warning: {p}: {exc}", err=True)
            continue
        for note in notes:
            click.echo(f"Warning: {p}: {note}", err=True)
        images.append(x)
        names.append(str(p))
    if not images:
        raise InputError(f"none of {', '.join(paths)} is a usable image (see the warnings above)")
    if limit:
        images, names = images[:limit], names[:limit]
    return torch.stack(images), names


@click.command("edit")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--method", "-m", required=True, help="Inverter, e.g. psp, pti, hyperstyle (zoo list inverters).")
@click.option("--direction", "-d", required=True,
              help="Direction, e.g. smile, stylespace:glasses, ganspace:pc0@0-3 (zoo directions EDITOR).")
@click.option("--editor", default=None, help="Editor (default: the first of interfacegan, stylespace, ganspace "
                                             "that has the direction).")
@click.option("--steps", default="-3:3", show_default=True, help="LOW:HIGH[:INCREMENT] or comma-separated steps.")
@click.option("--domain", default="peeps", show_default=True, help="Registered domain.")
@click.option("--split", default="test", show_default=True, help="Domain split when no IMAGES are given.")
@click.option("--limit", type=int, default=4, show_default=True, help="Number of images (0 = all).")
@click.option("-o", "--option", "options", multiple=True, help="Method option key=value (repeatable).")
@click.option("--editor-option", "editor_options", multiple=True, help="Editor option key=value (repeatable).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="edits", show_default=True, help="Output folder.")
def edit_command(images: tuple[str, ...], method: str, direction: str, editor: str | None, steps: str, domain: str,
                 split: str, limit: int, options: tuple[str, ...], editor_options: tuple[str, ...], device: str,
                 out: str) -> None:
    """Invert IMAGES (files or folders; default: the domain's test split) with --method and write one strip PNG
    per image: input | reconstruction | each step along --direction, rendered through the inversion's own
    generator. Images of another size are resized (with a warning); grayscale and RGBA are converted."""
    step_values = parse_steps(steps)
    dom = registry.get_domain(domain)
    editor_name, direction = resolve_direction(direction, editor, dom)
    ed = registry.create_editor(editor_name, options=parse_option_strings(editor_options))
    if not ed.accepts(direction, dom):  # options (e.g. n_components) can change what exists
        from ..errors import UnknownNameError

        raise UnknownNameError.for_name("direction", direction, ed.directions(dom))
    inverter = registry.create_inverter(method, options=parse_option_strings(options), device=device)
    x, names = _edit_inputs(dom, images, split, limit)
    inverter.prepare(dom)
    inv = inverter.invert(x, dom, progress=True)
    with torch.no_grad():
        edits = [ed.edit(inv, direction, s).cpu() for s in step_values]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    from ..training.stylegan2_gan import save_grid

    safe_dir = direction.replace("@", "_at_").replace(":", "_")
    written = []
    for i, name in enumerate(names):
        strip = torch.stack([x[i].cpu(), inv.reconstructions[i].cpu(), *[e[i] for e in edits]])
        path = out_dir / f"{Path(name).stem}_{method}_{editor_name}_{safe_dir}.png"
        save_grid(strip, path, nrow=len(strip))
        written.append(path)
    click.echo(f"{len(written)} strip(s) (input | reconstruction | {editor_name}:{direction} at steps "
               f"{', '.join(f'{s:g}' for s in step_values)}) -> {out_dir}")


@click.command("directions")
@click.argument("editor")
@click.option("--domain", default="peeps", show_default=True, help="Registered domain.")
@click.option("--editor-option", "editor_options", multiple=True, help="Editor option key=value (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def directions_command(editor: str, domain: str, editor_options: tuple[str, ...], as_json: bool) -> None:
    """List EDITOR's directions on --domain with what is known about them (boundary accuracy, explained
    variance, StyleSpace channels)."""
    from tabulate import tabulate

    ed = registry.create_editor(editor, options=parse_option_strings(editor_options))
    rows = ed.direction_table(registry.get_domain(domain))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(tabulate(rows, headers="keys", tablefmt="github") if rows else f"{editor}: no directions")
