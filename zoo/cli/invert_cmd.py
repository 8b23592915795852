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


@click.command("edit")
@click.argument("method")
@click.argument("editor")
@click.argument("direction")
@_with_common
@click.option("--steps", default="-3,-1.5,0,1.5,3", show_default=True, help="Comma-separated step sizes.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
def edit_command(method: str, editor: str, direction: str, domain: str, images: str | None, split: str, limit: int,
                 options: tuple[str, ...], device: str, steps: str, out: str) -> None:
    """Invert with METHOD, then edit along EDITOR's DIRECTION; writes one strip per image (input | steps...)."""
    from ..training.stylegan2_gan import save_grid

    try:
        step_values = [float(s) for s in steps.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"--steps {steps!r} must be comma-separated numbers") from None
    inverter = registry.create_inverter(method, options=parse_option_strings(options), device=device)
    ed = registry.create_editor(editor)
    dom = registry.get_domain(domain)
    x, names = _inputs(dom, images, split, limit)
    inverter.prepare(dom)
    inv = inverter.invert(x, dom, progress=True)
    with torch.no_grad():
        edits = [ed.edit(inv, direction, s).cpu() for s in step_values]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = torch.stack([x.cpu(), *edits], 1).reshape(-1, *x.shape[1:])
    save_grid(grid, out_dir / f"{method}_{editor}_{direction}.png", nrow=len(step_values) + 1)
    click.echo(f"edits of {len(names)} images ({editor}:{direction}, steps {step_values}) -> {out_dir}")
