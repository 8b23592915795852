"""`zoo invert`: invert images with one method, streaming them in batches; every image's whole inversion (latents,
generator change, noise, method, domain, options, seconds, input) is saved as soon as its batch is done, with its
reconstruction and a manifest; interrupted runs resume. (`zoo edit` / `zoo directions`: see edit_cmd.py.)

Output folder (--out):
  <name>.png                      the reconstruction: the saved inversion rendered again (bit for bit what
                                  `Inversion.load(file).render()` gives), clamped to [-1, 1] and rounded to uint8
  <name>.inversion.safetensors    the whole Inversion of the image (`Inversion.save`)
  manifest.json                   input -> outputs, status and seconds per image, the command that resumes the run
<name> is the input's file name with its suffix kept (face.png -> face_png; see zoo/io/outputs.py).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import click
import torch

from .. import registry
from ..errors import InputError
from ..options import parse_option_strings
from ..progress import ItemProgress, bars_enabled
from .batches import (DEFAULT_SPLIT_LIMIT, batch_size_for, batched, check_device, command_line, echo_err,
                      option_words, plan_inputs, stream_images)
from .edit_cmd import directions_command, edit_command, parse_steps, resolve_direction

__all__ = ["directions_command", "edit_command", "invert_command", "parse_steps", "resolve_direction"]

RENDER_TOLERANCE = 0.01  # a re-render further than this from the method's reconstruction is reported


@click.command("invert")
@click.argument("method")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder (one run per folder; never an input folder).")
@click.option("--domain", default="peeps", show_default=True,
              help="Registered domain or a domain file (path/to/domain.toml).")
@click.option("--split", default="test", show_default=True, help="Domain split when no INPUTS are given.")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help=f"At most this many images (0 = all). Default: every given input; the first {DEFAULT_SPLIT_LIMIT} "
                   "of the split when no INPUTS are given.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Method option KEY=VALUE or METHOD.KEY=VALUE as in zoo bench (repeatable; zoo show METHOD).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per invert call (default 1 for optimisation methods, 8 for encoders and hybrids; "
                   "1 for methods that cannot batch). Results are saved after every batch.")
@click.option("--resume", is_flag=True, help="Continue the run in --out: images whose saved inversion matches "
                                              "(input sha256, method, version, options) are not inverted again.")
@click.option("--overwrite", is_flag=True, help="Replace the earlier run / files in --out (inputs never).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (CUDA if any).")
@click.option("--bootstrap", default=None, metavar="SOURCE_DOMAIN",
              help="ReStyle encoder bootstrapping: one step of SOURCE_DOMAIN's encoder, then this domain's "
                   "(= -o bootstrap=SOURCE_DOMAIN; steps: -o target_steps=N, default 1).")
@click.option("--transforms", "transforms_file", default=None, type=click.Path(dir_okay=False),
              help="transforms.json of `zoo align`: invert the aligned crops, render each in its unaligned frame "
                   "(StyleGAN3 domains; the image's (r, tx, ty) is saved with its inversion).")
@click.option("--images", "images_option", multiple=True, type=click.Path(), hidden=True,
              help="Deprecated: pass files or folders as arguments.")
@click.pass_context
def invert_command(ctx: click.Context, method: str, inputs: tuple[str, ...], out: str, domain: str, split: str,
                   limit: int | None, options: tuple[str, ...], batch_size: int | None, resume: bool,
                   overwrite: bool, device: str, images_option: tuple[str, ...], bootstrap: str | None = None,
                   transforms_file: str | None = None) -> None:
    """Invert INPUTS (image files or folders; default: the domain's test split) with METHOD. Writes per image
    <name>.png (reconstruction) and <name>.inversion.safetensors (the whole inversion: `zoo edit --from`,
    Inversion.load), plus manifest.json, to --out, as each batch finishes. Ctrl-C keeps finished images;
    --resume continues."""
    from ..bench.units import resolved_options
    from ..io import InvertManifest, OutputGuard, read_manifest

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    device = check_device(device)
    if images_option:
        echo_err("warning: --images is deprecated; pass files or folders as arguments: "
                 f"zoo invert {method} {' '.join(images_option)} ...")
    paths = list(inputs) + list(images_option)
    if paths and ctx.get_parameter_source("split") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--split selects domain images when no INPUTS are given; drop it or the INPUTS")
    dom = registry.get_domain(domain)
    if bootstrap:
        options = (*options, f"bootstrap={bootstrap}")
    inverter = registry.create_inverter_for(method, dom, parse_option_strings(options, method), device=device)
    plan = plan_inputs(dom, paths, split, limit, DEFAULT_SPLIT_LIMIT)
    poses = _unaligned_poses(transforms_file, plan, dom, device) if transforms_file else None
    out_dir = Path(out)
    guard = OutputGuard(plan.files, plan.folders)
    guard.check_out_dir(out_dir)
    opts = resolved_options(inverter)
    version = str(inverter.version)

    old = read_manifest(out_dir) if out_dir.is_dir() else None
    fixed: dict[str, str] = {}
    earlier: InvertManifest | None = None
    if old is not None:
        earlier = InvertManifest.from_dict(out_dir, old) if old.get("kind") == "zoo invert" else None
        if earlier is None:
            raise InputError(f"--out {out_dir} holds `{old.get('kind')}` outputs (manifest.json); choose another --out")
        guard.protect(Path(e["key"]) for e in earlier.entries  # an earlier run's inputs stay untouched
                      if isinstance(e.get("key"), str) and Path(e["key"]).is_absolute())
        if resume:
            if (earlier.header.get("method"), earlier.header.get("domain")) != (method, dom.name):
                raise InputError(f"--out {out_dir} holds a run of {earlier.describe()}; --resume continues only "
                                 f"that method on that domain (use another --out for {method} on {dom.name})")
            fixed = {e["key"]: e["name"] for e in earlier.entries if "key" in e and "name" in e}
        elif not overwrite:
            raise InputError(f"--out {out_dir} already holds a `zoo invert` run ({earlier.describe()}): add --resume "
                             "to continue it, --overwrite to replace it, or choose another --out")
        else:
            echo_err(f"note: --overwrite: replacing the run in {out_dir} ({earlier.describe()}); its files that this "
                     "run does not write again stay in place")
    elif resume and out_dir.exists():
        echo_err(f"note: nothing to resume in {out_dir} (no manifest.json); starting a new run")

    from ..io import assign_names, inversion_file_name

    def free(name: str) -> bool:
        return not any(guard.is_input(out_dir / f) for f in (f"{name}.png", inversion_file_name(name)))

    names = assign_names([(i.key, i.name) for i in plan.items], fixed=fixed, is_free=free)
    if earlier is None and not overwrite:
        for item in plan.items:
            for f in (f"{names[item.key]}.png", inversion_file_name(names[item.key])):
                if (out_dir / f).exists():
                    raise InputError(f"--out {out_dir}: {f} already exists and is not from a `zoo invert` run; add "
                                     "--overwrite to replace it, or choose another --out")
    resume_words = ["zoo", "invert", method, *paths, "--out", out, "--domain", dom.reference(),
                    *(["--split", split] if not paths else []),
                    *(["--limit", limit] if limit is not None else []), *option_words("-o", options),
                    *(["--batch-size", batch_size] if batch_size is not None else []),
                    *(["--device", device] if device != "cpu" else []),
                    *(["--transforms", transforms_file] if transforms_file else []), "--resume"]
    resume_cmd = command_line(resume_words)

    inverter.prepare(dom)  # loading errors (missing weights) happen before anything is written
    from .. import __version__

    provenance = {"method_version": version, "weights_sha256": inverter.weights_sha256(dom), "zoo_version": __version__,
                  "torch_version": torch.__version__, "device": device}
    if earlier is not None and resume and earlier.header.get("weights_sha256") not in (None,
                                                                                       provenance["weights_sha256"]):
        raise InputError(f"--out {out_dir}: its run used other weights (generator / checkpoints: "
                         f"{earlier.header['weights_sha256']}) than {dom.reference()} gives now; --resume would mix "
                         "them: use another --out (or --overwrite)")
    entries = []
    old_entries = {e.get("key"): e for e in (earlier.entries if earlier is not None and resume else [])}
    for item in plan.items:
        name = names[item.key]
        entry = {"input": item.name, "key": item.key, "name": name, "reconstruction": f"{name}.png",
                 "inversion": inversion_file_name(name), "status": "pending"}
        prev = old_entries.get(item.key)
        if prev is not None and prev.get("status") == "done":
            entry.update({k: prev[k] for k in ("status", "image_sha256", "seconds", "pose") if k in prev})
        entries.append(entry)
    planned = {item.key for item in plan.items}
    for key, prev in old_entries.items():  # earlier outputs of this run whose inputs are not given now: still listed
        if key not in planned:
            entries.append(dict(prev, note="not among the inputs of the latest --resume"))
    if earlier is not None and resume and earlier.header.get("options") != opts:
        echo_err("note: the options differ from the earlier run's; its images are inverted again with the new ones")
    header = {"kind": "zoo invert", "version": 1, "method": method, "method_version": version, "domain": dom.name,
              "domain_ref": dom.reference(), "weights_sha256": provenance["weights_sha256"], "options": opts, "inputs": plan.source, "resume_command": resume_cmd,
              "created_at": (earlier.header.get("created_at") if earlier is not None and resume else None)}
    from ..io.manifest import now

    header["created_at"] = header["created_at"] or now()
    manifest = InvertManifest(out_dir, header, entries)
    by_key = {e["key"]: e for e in entries}
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.save("running")

    bs = batch_size_for(inverter, batch_size)
    stats: dict[str, Any] = {"inverted": 0, "resumed": 0, "seconds": []}
    progress = bars_enabled()

    position = {item.key: i for i, item in enumerate(plan.items)}
    counter = ItemProgress("invert", min(len(plan.items), plan.limit or len(plan.items)), echo_err)  # log-file lines

    def todo() -> Any:
        from ..bench.units import image_sha256

        for item, image in stream_images(plan, dom.resolution, echo_err, dom.resample, dom.prepare_input):
            sha = image_sha256(image)
            entry = by_key[item.key]
            same_pose = poses is None or entry.get("pose") == list(poses[item.key])  # --transforms: pose in the key
            if resume and same_pose and manifest.is_finished(entry, sha, method, opts, version):
                stats["resumed"] += 1
                continue
            entry.update(status="pending", image_sha256=sha)
            yield item, image, sha

    try:
        for batch in batched(todo(), bs, block=lambda t: position[t[0].key] // bs):
            x = torch.stack([image for _, image, _ in batch])
            torch.manual_seed(0)  # the same results whatever the batch position (resume-safe)
            inv = inverter.invert(x, dom, progress=progress)
            inv.domain = inv.domain or dom
            for j, (item, image, sha) in enumerate(batch):
                entry = by_key[item.key]
                one = inv.select([j])
                one.method = one.method or method
                one.options, one.provenance, one.images = dict(opts), dict(provenance, created_at=now()), x[j : j + 1]
                if poses is not None:  # aligned crop inverted; reconstruction rendered in the unaligned frame
                    one = one.with_transform(poses[item.key])
                    entry["pose"] = list(poses[item.key])
                one.sources = [{"name": item.name, "path": str(item.path) if item.path else None, "key": item.key,
                                "split": item.split, "index": item.index, "image_sha256": sha}]
                _write_result(one, out_dir, entry, guard)
                stats["seconds"].append(float(one.seconds[0]))
                stats["inverted"] += 1
            _record_skipped(plan, by_key)
            manifest.save()
            counter.advance(len(batch))
    except KeyboardInterrupt:
        _record_skipped(plan, by_key)
        manifest.save("interrupted")
        done = manifest.counts().get("done", 0)
        echo_err(f"Interrupted: kept {done} finished image(s) of {len(plan.items)} in {out_dir} (manifest.json); "
                 f"resume with: {resume_cmd}")
        ctx.exit(130)
    except BaseException:
        _record_skipped(plan, by_key)
        manifest.save("failed")
        done = manifest.counts().get("done", 0)
        if done:
            echo_err(f"kept {done} finished image(s) in {out_dir}; after fixing the error resume with: {resume_cmd}")
        raise
    _record_skipped(plan, by_key)
    for item in plan.items[len(plan.items) - plan.not_reached :] if plan.not_reached else []:
        if by_key[item.key]["status"] == "pending":
            by_key[item.key].update(status="not_reached", note=f"left out by --limit {plan.limit}")
    manifest.save("complete")
    if not stats["inverted"] and not stats["resumed"]:
        raise InputError(f"none of {plan.source} is a usable image (see the warnings above)")
    click.echo(_closing_line(method, out_dir, plan, stats))


def _unaligned_poses(transforms_file: str, plan: Any, dom: Any, device: str) -> dict[str, tuple[float, float, float]]:
    """{input key: (r, tx, ty)} from a `zoo align` transforms file, matched by file name; InputError (one line)
    for a domain without a StyleGAN3 generator or an input the file does not list."""
    from ..align.unaligned import read_transforms_file
    from ..video.transforms import require_fourier_input

    require_fourier_input(dom.generator(device).generator, "--transforms (rendering in the unaligned frame)", dom.name)
    table = read_transforms_file(transforms_file)
    out = {}
    for item in plan.items:
        name = Path(str(item.path)).name if item.path else item.name
        if name not in table:
            raise InputError(f"{transforms_file}: no transform for input {name} (invert the aligned/ folder that "
                             "`zoo align` wrote next to this file)")
        out[item.key] = table[name]
    return out


def _record_skipped(plan: Any, by_key: dict[str, dict[str, Any]]) -> None:
    for item, reason in plan.skipped:
        by_key[item.key].update(status="skipped", note=reason)


def _write_result(one: Any, out_dir: Path, entry: dict[str, Any], guard: Any) -> None:
    """Save one image's inversion, then its reconstruction rendered from exactly what was saved."""
    from ..io import write_png

    with torch.no_grad():
        shown = one.render()
    gap = float((shown.float().cpu() - one.reconstructions.float().cpu()).abs().max())
    inv_path = out_dir / entry["inversion"]
    guard.check(inv_path)
    one.save(inv_path)
    write_png(shown[0], out_dir / entry["reconstruction"], guard)
    entry.update(status="done", seconds=float(one.seconds[0]))
    if gap > RENDER_TOLERANCE:
        note = (f"rendering the saved inversion differs from {one.method}'s reconstruction by up to {gap:.3g}: the "
                "method keeps state its Inversion does not carry; the PNG shows the re-render")
        entry["note"] = note
        echo_err(f"warning: {entry['input']}: {note}")
    else:
        entry.pop("note", None)


def _closing_line(method: str, out_dir: Path, plan: Any, stats: dict[str, Any]) -> str:
    n = stats["inverted"]
    parts = []
    if stats["resumed"]:
        parts.append(f"{stats['resumed']} already done (--resume)")
    if plan.skipped:
        parts.append(f"{len(plan.skipped)} skipped (not images, see above)")
    if plan.limit_note():
        parts.append(plan.limit_note())
    if stats["seconds"]:
        parts.append(f"median {statistics.median(stats['seconds']):.3g} s/image")
    tail = f" ({'; '.join(parts)})" if parts else ""
    return f"{n} image{'s' if n != 1 else ''} inverted with {method} -> {out_dir}{tail}"
