"""`zoo edit` (invert images, or load saved inversions with --from, and write one strip per image: input |
reconstruction | each step along a direction, rendered through the inversion's own generator) and `zoo directions`.

Strips are named `<name>_<method>_<editor>_<direction>.png` (<name>: the input's file name with its suffix kept, see
zoo/io/outputs.py); manifest.json in --out maps every input to its strip (merged over the edit runs of the folder).
An existing strip is replaced only with --overwrite; an input is never written over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import torch

from .. import registry
from ..bench.config import STEPS_HELP
from ..errors import InputError
from ..options import parse_option_strings
from ..progress import ItemProgress, bars_enabled
from .batches import (DEFAULT_SPLIT_LIMIT, batch_size_for, batched, check_device, echo_err, plan_inputs,
                      stream_images)

if TYPE_CHECKING:
    from ..domain import Domain



def parse_steps(text: str) -> list[float]:
    """`--steps` of every command (zoo.bench.config.parse_steps); a usage error (exit 2) naming --steps."""
    from ..bench.config import parse_steps as parse
    from ..errors import InputError

    try:
        return parse(text)
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--steps") from None


EDITOR_ORDER = ("interfacegan", "stylespace", "ganspace")


def resolve_direction(direction: str, editor: str | None, domain: Domain) -> tuple[str, str]:
    """(editor name, direction) from 'editor:direction', --editor, or the first editor that knows the direction."""
    if ":" in direction and editor is None:
        editor, direction = direction.split(":", 1)
    names = [editor] if editor else [n for n in EDITOR_ORDER if n in registry.list_editors()] + [
        n for n in registry.list_editors() if n not in EDITOR_ORDER]
    known: dict[str, list[str]] = {}
    for name in names:
        ed = registry.create_editor(name)
        if ed.accepts(direction, domain):
            return name, direction
        known[name] = list(ed.directions(domain))
    raise unknown_direction(direction if editor is None else f"{editor}:{direction}", known, domain.name)


def unknown_direction(given: str, known: dict[str, list[str]], domain: str) -> Exception:
    """UnknownNameError: 'unknown direction 'smiel' on peeps; did you mean 'smile'? (known: interfacegan: smile,
    glasses; ...)': close matches among the bare and the `editor:direction` names, and every known direction."""
    import difflib

    from ..errors import UnknownNameError

    editor, _, bare = given.rpartition(":")
    if editor in known:  # 'stylespace:rotaton' -> 'stylespace:rotation'
        close = [f"{editor}:{c}" for c in difflib.get_close_matches(bare, known[editor], n=3, cutoff=0.5)]
    else:
        close = difflib.get_close_matches(bare, list(dict.fromkeys(d for ds in known.values() for d in ds)), n=3,
                                          cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = "; ".join(f"{e}: {', '.join(ds) if ds else '(none)'}" for e, ds in known.items())
    return UnknownNameError(f"unknown direction '{given}' on {domain}{hint} (known directions: {listing}; "
                            "details: zoo directions EDITOR)")


def saved_inversions(paths: tuple[str, ...]) -> tuple[list[tuple[Path, str]], list[str]]:
    """--from arguments -> ([(inversion file, display name)], notes). A folder is a `zoo invert` output folder (its
    manifest's finished images, in input order) or any folder of `*.inversion.safetensors` files (sorted).
    InputError (naming the path) for a path that does not exist or a folder without saved inversions."""
    from ..inversion import INVERSION_SUFFIX
    from ..io import read_manifest

    files: list[tuple[Path, str]] = []
    notes: list[str] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            manifest = read_manifest(p)
            if manifest is not None and manifest.get("kind") == "zoo invert":
                entries = manifest.get("entries") or []
                done = [e for e in entries if e.get("status") == "done"]
                if len(done) < len(entries):
                    notes.append(f"note: {given}: {len(entries) - len(done)} of {len(entries)} inputs have no "
                                 "finished inversion (skipped or not done: see its manifest.json)")
                found = [(p / e["inversion"], str(p / e["name"])) for e in done]
            else:
                found = [(f, str(p / f.name[: -len(INVERSION_SUFFIX)]))
                         for f in sorted(p.glob(f"*{INVERSION_SUFFIX}")) if not f.name.startswith(".")]
            if not found:
                raise InputError(f"{given}: no saved inversions (*{INVERSION_SUFFIX}; write them with "
                                 "`zoo invert METHOD IMAGES --out DIR`)")
            files += found
        elif p.is_file():
            name = p.name[: -len(INVERSION_SUFFIX)] if p.name.endswith(INVERSION_SUFFIX) else p.stem
            files.append((p, str(p.parent / name)))
        else:
            raise InputError(f"{given}: no such file or folder")
    return files, notes


def _strip_png(images: list[torch.Tensor]) -> bytes:
    """PNG of images [3, H, W] side by side."""
    from ..io import encode_png

    return encode_png(torch.cat([x.detach().float().cpu() for x in images], dim=2))


@click.command("edit")
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--from", "from_saved", is_flag=True,
              help="IMAGES are saved inversions (.inversion.safetensors files or `zoo invert` output folders): "
                   "edit them without inverting again; method and domain come from the files.")
@click.option("--method", "-m", default=None,
              help="Inverter, e.g. psp, pti, hyperstyle (zoo list inverters); not needed with --from.")
@click.option("--direction", "-d", required=True,
              help="Direction, e.g. smile, stylespace:glasses, ganspace:pc0@0-3 (zoo directions EDITOR).")
@click.option("--editor", default=None, help="Editor (default: the first of interfacegan, stylespace, ganspace "
                                             "that has the direction).")
@click.option("--steps", default="-3:3", show_default=True, help=STEPS_HELP + ".")
@click.option("--domain", default=None, help="Registered domain or a domain file (path/to/domain.toml); default "
                                            "peeps, with --from: the files' domain.")
@click.option("--split", default="test", show_default=True, help="Domain split when no IMAGES are given.")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help=f"At most this many images (0 = all). Default: every given image; the first {DEFAULT_SPLIT_LIMIT} "
                   "of the split when no IMAGES are given.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Method option KEY=VALUE or METHOD.KEY=VALUE as in zoo bench (repeatable; zoo show METHOD).")
@click.option("--editor-option", "editor_options", multiple=True, help="Editor option key=value (repeatable).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per invert call (default 1 for optimisation methods, 8 for the others).")
@click.option("--save-inversions", is_flag=True,
              help="Also save each image's inversion (<name>_<method>.inversion.safetensors) for `zoo edit --from`.")
@click.option("--overwrite", is_flag=True, help="Replace existing strips in --out (inputs never).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (CUDA if any).")
@click.option("--out", type=click.Path(file_okay=False), default="edits", show_default=True, help="Output folder.")
@click.pass_context
def edit_command(ctx: click.Context, images: tuple[str, ...], from_saved: bool, method: str | None, direction: str,
                 editor: str | None, steps: str, domain: str | None, split: str, limit: int | None,
                 options: tuple[str, ...], editor_options: tuple[str, ...], batch_size: int | None,
                 save_inversions: bool, overwrite: bool, device: str, out: str) -> None:
    """Invert IMAGES (files or folders; default: the domain's test split) with --method, or load saved inversions
    (--from), and write one strip PNG per image: input | reconstruction | each step along --direction, rendered
    through the inversion's own generator. Images of another size are resized (with a warning); grayscale and RGBA
    are converted."""
    from ..io import EditManifest, OutputGuard, assign_names
    from ..io.outputs import base_name

    step_values = parse_steps(steps)
    device = check_device(device)
    if images and ctx.get_parameter_source("split") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--split selects domain images when no IMAGES are given; drop it or the IMAGES")
    if from_saved:
        if not images:
            raise click.UsageError("--from needs saved inversions: .inversion.safetensors files or `zoo invert` "
                                   "output folders")
        if options or save_inversions or batch_size:
            raise click.UsageError("-o / --batch-size / --save-inversions apply to inverting; --from edits saved "
                                   "inversions as they are")
        files, notes = saved_inversions(images)
        for note in notes:
            echo_err(note)
        metas = _file_metadata(files)
        domains = sorted({m.get("domain") or "?" for m in metas})
        if len(domains) > 1:
            raise InputError(f"--from: inversions of several domains ({', '.join(domains)}); edit them separately")
        asked = registry.get_domain(domain) if domain is not None else None
        if asked is not None and asked.name != domains[0]:
            raise InputError(f"--from: the inversions are on domain '{domains[0]}', not '{asked.name}'")
        methods = sorted({m.get("method") or "?" for m in metas})
        if method is not None and methods != [method]:
            raise InputError(f"--from: the inversions were made with {', '.join(methods)}, not {method} "
                             "(drop --method)")
        refs = [m.get("domain_ref") for m in metas if m.get("domain_ref")]
        dom = asked or registry.get_domain(refs[0] if refs else domains[0])  # a domain file is found by its path
    else:
        if method is None:
            raise click.UsageError("Missing option '--method' / '-m' (or edit saved inversions with --from)")
        dom = registry.get_domain(domain or "peeps")
    editor_name, direction = resolve_direction(direction, editor, dom)
    ed = registry.create_editor(editor_name, options=parse_option_strings(editor_options))
    if not ed.accepts(direction, dom):  # options (e.g. n_components) can change what exists
        raise unknown_direction(f"{editor_name}:{direction}", {editor_name: list(ed.directions(dom))}, dom.name)
    safe_dir = base_name(direction.replace("@", "_at_").replace(":", "_"))
    out_dir = Path(out)
    what = f"{editor_name}:{direction} at steps {', '.join(f'{s:g}' for s in step_values)}"

    if from_saved:
        if limit:
            files, metas = files[:limit], metas[:limit]
        keys = [(str(f.resolve()), name) for f, name in files]
        guard = OutputGuard([f for f, _ in files], [Path(p) for p in images if Path(p).is_dir()])
        guard.check_out_dir(out_dir)
        names = assign_names(keys, is_free=lambda n: not guard.is_input(out_dir / f"{n}.png"))
        jobs = [(f, names[k], m.get("method") or "?") for (f, _), (k, _), m in zip(files, keys, metas)]
        strips = {k: f"{names[k]}_{m}_{editor_name}_{safe_dir}.png" for (k, _), (_, _, m) in zip(keys, jobs)}
        _refuse_existing(out_dir, list(strips.values()), overwrite)
        manifest = EditManifest.open(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            for (path, name, m), (key, _) in zip(jobs, keys):
                from ..inversion import Inversion

                inv = Inversion.load(path, domain=dom, device=device)
                with torch.no_grad():
                    edits = [ed.edit(inv, direction, s)[0] for s in step_values]
                first = inv.images[0] if inv.images is not None else torch.zeros_like(inv.reconstructions[0])
                if inv.images is None:
                    echo_err(f"note: {path}: no input image saved; its strip starts with a grey tile")
                strip = out_dir / strips[key]
                _write(strip, _strip_png([first, inv.reconstructions[0], *edits]), guard)
                source = (inv.sources[0].get("path") or inv.sources[0].get("name")) if inv.sources else None
                manifest.add([{"input": source, "inversion": str(path), "strip": strip.name, "method": m,
                               "editor": editor_name, "direction": direction, "steps": step_values}])
                written += 1
        except KeyboardInterrupt:
            echo_err(f"Interrupted: kept {written} strip(s) of {len(jobs)} in {out_dir} (manifest.json)")
            ctx.exit(130)
        click.echo(f"{written} strip(s) (input | reconstruction | {what}) -> {out_dir}")
        return

    inverter = registry.create_inverter_for(method, dom, parse_option_strings(options, method), device=device)
    plan = plan_inputs(dom, images, split, limit, DEFAULT_SPLIT_LIMIT)
    guard = OutputGuard(plan.files, plan.folders)
    guard.check_out_dir(out_dir)
    inv_suffix = f"_{method}.inversion.safetensors"

    def free(n: str) -> bool:
        return not guard.is_input(out_dir / f"{n}_{method}_{editor_name}_{safe_dir}.png") and not guard.is_input(
            out_dir / f"{n}{inv_suffix}")

    names = assign_names([(i.key, i.name) for i in plan.items], is_free=free)
    strip_of = {k: f"{n}_{method}_{editor_name}_{safe_dir}.png" for k, n in names.items()}
    planned = list(strip_of.values()) + ([f"{n}{inv_suffix}" for n in names.values()] if save_inversions else [])
    _refuse_existing(out_dir, planned, overwrite)
    manifest = EditManifest.open(out_dir)
    inverter.prepare(dom)
    bs = batch_size_for(inverter, batch_size)
    progress = bars_enabled()
    counter = ItemProgress("edit", min(len(plan.items), plan.limit or len(plan.items)), echo_err)  # log-file lines
    written = 0
    try:
        for batch in batched(stream_images(plan, dom.resolution, echo_err, dom.resample, dom.prepare_input), bs):
            x = torch.stack([image for _, image in batch])
            torch.manual_seed(0)
            inv = inverter.invert(x, dom, progress=progress)
            inv.domain = inv.domain or dom
            with torch.no_grad():
                edits = [ed.edit(inv, direction, s).cpu() for s in step_values]
            out_dir.mkdir(parents=True, exist_ok=True)
            entries = []
            for j, (item, _) in enumerate(batch):
                strip = out_dir / strip_of[item.key]
                _write(strip, _strip_png([x[j], inv.reconstructions[j], *[e[j] for e in edits]]), guard)
                entry = {"input": item.name, "strip": strip.name, "method": method, "editor": editor_name,
                         "direction": direction, "steps": step_values}
                if save_inversions:
                    from ..bench.units import image_sha256, resolved_options

                    one = inv.select([j])
                    one.method, one.options, one.images = one.method or method, resolved_options(inverter), x[j : j + 1]
                    one.provenance = {"method_version": str(inverter.version),
                                      "weights_sha256": inverter.weights_sha256(dom)}
                    one.sources = [{"name": item.name, "path": str(item.path) if item.path else None, "key": item.key,
                                    "image_sha256": image_sha256(x[j])}]
                    inv_path = out_dir / f"{names[item.key]}{inv_suffix}"
                    guard.check(inv_path)
                    one.save(inv_path)
                    entry["inversion"] = inv_path.name
                entries.append(entry)
                written += 1
            manifest.add(entries)
            counter.advance(len(batch))
    except KeyboardInterrupt:
        echo_err(f"Interrupted: kept {written} strip(s) in {out_dir} (manifest.json)")
        ctx.exit(130)
    if not written:
        raise InputError(f"none of {plan.source} is a usable image (see the warnings above)")
    parts = [p for p in (f"{len(plan.skipped)} skipped (not images, see above)" if plan.skipped else "",
                         plan.limit_note()) if p]
    click.echo(f"{written} strip(s) (input | reconstruction | {what}) -> {out_dir}"
               + (f" ({'; '.join(parts)})" if parts else ""))


def _file_metadata(files: list[tuple[Path, str]]) -> list[dict[str, Any]]:
    from ..inversion import read_inversion_metadata

    return [read_inversion_metadata(f) for f, _ in files]


def _refuse_existing(out_dir: Path, names: list[str], overwrite: bool) -> None:
    if overwrite:
        return
    for n in names:
        if (out_dir / n).exists():
            raise InputError(f"--out {out_dir}: {n} already exists (an earlier `zoo edit`?); add --overwrite to "
                             "replace it, or choose another --out")


def _write(path: Path, data: bytes, guard: Any) -> None:
    from ..bench.cache import atomic_write_bytes

    guard.check(path)
    atomic_write_bytes(path, data)


@click.command("directions")
@click.argument("editor")
@click.option("--domain", default="peeps", show_default=True,
              help="Registered domain or a domain file (path/to/domain.toml).")
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
