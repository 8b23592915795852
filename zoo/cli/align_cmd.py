"""`zoo align PHOTOS --out DIR`: per photo the FFHQ-aligned crop (what the encoders and the inversion see), the
unaligned frame (an upright crop of the same scale) and the StyleGAN3 transform (r, tx, ty) between them, from dlib's
eye landmarks as stylegan3-editing computes it (zoo.align.unaligned). `zoo invert METHOD DIR/aligned --transforms
DIR/transforms.json --domain SG3_DOMAIN` then renders every inversion in its unaligned frame.

Output folder:
  aligned/<stem>.png       the FFHQ-aligned crop (--size px)
  unaligned/<stem>.png     the unaligned frame (--size px): what the unaligned reconstruction is compared with
  transforms.json          {"kind": "zoo align", "version": 1, "size", "frame", "images": {"<stem>.png": {"source",
                           "r", "tx", "ty", "frame_centre", "frame_side"}}, "skipped": {source: why}}
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError


@click.command("align")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--size", type=click.IntRange(min=8), default=256, show_default=True,
              help="Side of the crops in pixels (the generator's resolution).")
@click.option("--frame", type=click.Choice(["face", "image"]), default="face", show_default=True,
              help="Unaligned frame: face = upright square around the face (r = head roll, tx/ty ~ 0); image = the "
                   "same square centred on the photo's centre (the face keeps its place: tx/ty != 0).")
def align_command(inputs: tuple[str, ...], out: str, size: int, frame: str) -> None:
    """Align face photos (files or folders) and compute each one's StyleGAN3 transform (r, tx, ty)."""
    from PIL import Image, ImageOps

    from ..align.unaligned import TRANSFORMS_FILE, unaligned_inputs
    from ..userdomain.spec import IMAGE_SUFFIXES

    files: list[Path] = []
    for entry in inputs:
        p = Path(entry)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    if not files:
        raise InputError(f"no image files in {', '.join(inputs)}")
    out_dir = Path(out)
    if any(out_dir.resolve() == f.parent.resolve() or out_dir.resolve() in f.resolve().parents for f in files):
        raise InputError(f"--out {out_dir} holds inputs; choose another folder")
    (out_dir / "aligned").mkdir(parents=True, exist_ok=True)
    (out_dir / "unaligned").mkdir(parents=True, exist_ok=True)
    images: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    used: set[str] = set()
    for f in files:
        try:
            with Image.open(f) as im:
                photo = ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError) as exc:
            skipped[str(f)] = f"cannot read image ({type(exc).__name__})"
            click.echo(f"warning: {f}: {skipped[str(f)]}; skipped", err=True)
            continue
        res = unaligned_inputs(photo, size, frame)  # type: ignore[arg-type]
        if res is None:
            skipped[str(f)] = "no face found"
            click.echo(f"warning: {f}: no face found; skipped", err=True)
            continue
        aligned, unaligned, pose = res
        stem, k = f.stem, 2
        while stem in used:
            stem, k = f"{f.stem}_{k}", k + 1
        used.add(stem)
        aligned.save(out_dir / "aligned" / f"{stem}.png")
        unaligned.save(out_dir / "unaligned" / f"{stem}.png")
        images[f"{stem}.png"] = {"source": str(f.resolve()), **pose.to_dict()}
    manifest = {"kind": "zoo align", "version": 1, "size": size, "frame": frame,
                "convention": "r degrees counter-clockwise, tx / ty in crop widths right / down: the motion that "
                              "carries the aligned crop into the unaligned frame; the generator gets its inverse",
                "images": images, "skipped": skipped}
    (out_dir / TRANSFORMS_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    click.echo(f"{len(images)} aligned -> {out_dir} (aligned/, unaligned/, {TRANSFORMS_FILE})"
               + (f"; {len(skipped)} skipped" if skipped else ""))
    if not images:
        raise InputError("no face found in any input")
