"""`zoo video invert CLIP --method M` and `zoo video edit CLIP --method M --direction D --steps ...`: invert a clip
frame by frame, smooth the latents (stylegan3-editing's kernel), optionally tune one generator on the whole clip
(video PTI), edit every frame with one direction, and write (--out):

  video.mp4                        input | unsmoothed | reconstruction | edit per step, side by side
  strip.png                        the same columns as rows, for up to --strip-frames evenly spaced frames
  metrics.json                     per-frame L2 / LPIPS / ID, flicker, temporal error, ground truth (embedded clips)
  frames/<frame>.inversion.safetensors   every frame's inversion (Inversion.load; reused by --resume)
  video_pti.safetensors (+ .checkpoint.pt)  the tuned generator as deltas (with --video-pti; resumable)
  fov.mp4                          the field-of-view expanded reconstruction (--fov, StyleGAN3 domains)
  video_run.json                   what ran, with which options, and the command that resumes it

CLIP: a video file (mp4 etc., decoded with imageio-ffmpeg), a folder of frame images, or `embedded:NAME[:FRAMES]`
(the domain's generated clips; peeps: turn, drift, talk, mixed, shaky). Inputs are never written; an earlier run in
--out is continued only with --resume and replaced only with --overwrite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import registry
from ..errors import InputError
from ..options import make_options, parse_option_strings
from .batches import batch_size_for, check_device, command_line, echo_err, option_words
from .edit_cmd import parse_steps, resolve_direction, unknown_direction
from .group import CommandGroup

RUN_FILE = "video_run.json"
OUR_FILES = ("video.mp4", "strip.png", "metrics.json", "frames", "video_pti.safetensors", "video_pti.checkpoint.pt",
             "fov.mp4", RUN_FILE)


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options `zoo video invert` and `zoo video edit` share."""
    decorators = [
        click.argument("clip"),
        click.option("--method", "-m", required=True, help="Inverter, e.g. psp, e4e, optim (zoo list inverters)."),
        click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
                     help="Method option KEY=VALUE as in zoo invert (repeatable; zoo show METHOD)."),
        click.option("--domain", default="peeps", show_default=True,
                     help="Registered domain or a domain file (path/to/domain.toml)."),
        click.option("--out", type=click.Path(file_okay=False), required=True,
                     help="Output folder (one run per folder; never an input folder)."),
        click.option("--frames", "max_frames", type=click.IntRange(min=1), default=None,
                     help="Use the first N frames (embedded clips: render N frames; default 24)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Frames per invert call (default 8 for encoders, 1 for optimisation methods)."),
        click.option("--smooth/--no-smooth", default=True, show_default=True,
                     help="Smooth the latents over time (fine codes averaged over the clip, then the official 5-tap "
                          "window [0.25, 0.75, 1, 0.75, 0.25] / 3)."),
        click.option("--fine-from", default="auto", show_default=True,
                     help="First code averaged over the clip: auto (9 of 16 on SG3; the last resolution block's "
                          "codes on SG2), none, or an index."),
        click.option("--edges", type=click.Choice(["none", "replicate"]), default="none", show_default=True,
                     help="none: official, the first and last 2 frames are dropped; replicate: keep every frame."),
        click.option("--video-pti", is_flag=True, help="Tune one generator on the whole clip (video PTI)."),
        click.option("--pti-steps", type=click.IntRange(min=0), default=None,
                     help="Video PTI steps (default 350, the official default; the paper used 8000)."),
        click.option("--pti-batch", type=click.IntRange(min=1), default=None, help="Video PTI frames per step (4)."),
        click.option("--pti-freeze", default=None,
                     help="Video PTI frozen layers: auto (SG3: the Fourier input), none, input, or name prefixes."),
        click.option("--pti-option", "pti_options", multiple=True, metavar="KEY=VALUE",
                     help="Other video PTI option (lr, l2_weight, lpips_weight, lpips_threshold, lpips_size, seed, "
                          "save_every)."),
        click.option("--unaligned", is_flag=True, help="Invert the aligned frames and render each with its transform "
                                                       "(SG3 domains; real clips are aligned with dlib per frame)."),
        click.option("--align-frame", type=click.Choice(["first", "image", "face"]), default="first",
                     show_default=True, help="--unaligned on a real clip: the unaligned frame = the first frame's FFHQ "
                                             "crop for all (official), or zoo align's image / face square per frame."),
        click.option("--no-face", type=click.Choice(["error", "previous"]), default="error", show_default=True,
                     help="--unaligned on a real clip, a frame without a face: stop naming it, or reuse the previous "
                          "frame's landmarks."),
        click.option("--fov", type=click.IntRange(min=0), default=0,
                     help="Field-of-view expansion by this many pixels per side (SG3 domains only)."),
        click.option("--fps", type=float, default=None, help="Frame rate of video.mp4 (default: the clip's)."),
        click.option("--scale", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Nearest-neighbour upscaling of video.mp4 (small frames stay visible)."),
        click.option("--strip-frames", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Frames shown in strip.png."),
        click.option("--no-metrics", is_flag=True, help="Skip L2 / LPIPS / ID (flicker is always measured)."),
        click.option("--resume", is_flag=True, help="Continue the run in --out (saved frame inversions and the "
                                                    "video PTI checkpoint are reused when they match)."),
        click.option("--overwrite", is_flag=True, help="Replace the earlier run in --out (inputs never)."),
        click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (CUDA if any)."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


@click.group("video", cls=CommandGroup)
def video_group() -> None:
    """Invert and edit video clips: per-frame inversion, latent smoothing, video PTI, temporal-consistency metrics
    (docs/video.md)."""


@video_group.command("invert")
@_common
@click.pass_context
def video_invert_command(ctx: click.Context, **kw: Any) -> None:
    """Invert CLIP frame by frame with --method; writes video.mp4 (input | unsmoothed | reconstruction), strip.png,
    metrics.json and the per-frame inversions to --out. CLIP: a video file, a folder of frames, or
    embedded:NAME[:FRAMES] (peeps: turn, drift, talk, mixed, shaky)."""
    _run(ctx, kw, None)


@video_group.command("edit")
@_common
@click.option("--direction", "-d", required=True, help="Direction, e.g. smile, stylespace:glasses (zoo directions "
                                                       "EDITOR).")
@click.option("--editor", default=None, help="Editor (default: the first that has the direction).")
@click.option("--steps", default="-2,2", show_default=True, help="Edit strengths, one video column each (-3:3, "
                                                                "-3..3, -3:3:0.5, -2,0,2).")
@click.option("--editor-option", "editor_options", multiple=True, help="Editor option key=value (repeatable).")
@click.pass_context
def video_edit_command(ctx: click.Context, direction: str, editor: str | None, steps: str,
                       editor_options: tuple[str, ...], **kw: Any) -> None:
    """Invert CLIP and edit every frame along --direction through the (video-PTI-tuned) generator; writes video.mp4
    (input | unsmoothed | reconstruction | one column per step), strip.png, metrics.json and the inversions.
    CLIP: a video file, a folder of frames, or embedded:NAME[:FRAMES] (peeps: turn, drift, talk, mixed, shaky)."""
    _run(ctx, kw, (direction, editor, steps, editor_options))


def _run(ctx: click.Context, kw: dict[str, Any], edit: tuple[str, str | None, str, tuple[str, ...]] | None) -> None:
    from ..io import OutputGuard
    from ..progress import bars_enabled
    from ..video.clip_io import EMBEDDED_PREFIX, load_clip
    from ..video.metrics import FrameScorer
    from ..video.outputs import write_outputs
    from ..video.pipeline import EditRequest, VideoOptions, check_capabilities, check_clip, run_video
    from ..video.video_pti import VideoPTIOptions

    resume, overwrite = kw["resume"], kw["overwrite"]
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    device = check_device(kw["device"])
    dom = registry.get_domain(kw["domain"])
    method = kw["method"]
    pti_over = parse_option_strings(kw["pti_options"])
    for key, flag in (("steps", "pti_steps"), ("batch", "pti_batch"), ("freeze", "pti_freeze")):
        if kw[flag] is not None:
            pti_over[key] = kw[flag]
    if pti_over and not kw["video_pti"]:
        raise click.UsageError("--pti-* options apply to video PTI; add --video-pti")
    pti = make_options(VideoPTIOptions, pti_over)
    vopts = VideoOptions(smooth=kw["smooth"], fine_from=kw["fine_from"], edges=kw["edges"],
                         video_pti=kw["video_pti"], pti=pti, unaligned=kw["unaligned"], fov=kw["fov"])
    check_capabilities(dom, vopts, device)  # SG3-only options fail before any work
    edit_req = None
    if edit is not None:
        direction, editor, steps, editor_options = edit
        step_values = parse_steps(steps)
        editor_name, direction = resolve_direction(direction, editor, dom)
        ed = registry.create_editor(editor_name, options=parse_option_strings(editor_options))
        if not ed.accepts(direction, dom):
            raise unknown_direction(f"{editor_name}:{direction}", {editor_name: list(ed.directions(dom))}, dom.name)
        edit_req = EditRequest(ed, editor_name, direction, tuple(step_values))
    inverter = registry.create_inverter_for(method, dom, parse_option_strings(kw["options"], method), device=device)

    if kw["unaligned"] and not kw["clip"].startswith(EMBEDDED_PREFIX):  # real clip: dlib alignment per frame
        from ..video.align_frames import align_clip

        if not Path(kw["clip"]).exists():
            raise InputError(f"{kw['clip']}: no such video file or folder of frames")
        clip = align_clip(kw["clip"], dom.resolution, frame=kw["align_frame"], missing=kw["no_face"],
                          max_frames=kw["max_frames"], on_frame=_align_reporter)
    else:
        if kw["align_frame"] != "first" or kw["no_face"] != "error":
            raise click.UsageError("--align-frame / --no-face apply to --unaligned on a video file or folder of frames")
        clip = load_clip(kw["clip"], dom, max_frames=kw["max_frames"])
    check_clip(clip, vopts)
    out_dir = Path(kw["out"])
    clip_path = None if kw["clip"].startswith(EMBEDDED_PREFIX) else Path(kw["clip"])
    guard = OutputGuard([clip_path] if clip_path is not None and clip_path.is_file() else [],
                        [clip_path] if clip_path is not None and clip_path.is_dir() else [])
    guard.check_out_dir(out_dir)
    command = "edit" if edit is not None else "invert"
    header = {"kind": "zoo video", "version": 1, "command": command, "clip": kw["clip"], "clip_name": clip.name,
              "frames": len(clip), "method": method, "domain": dom.name}
    _check_out(out_dir, header, resume, overwrite)

    resume_cmd = command_line(_resume_words(command, kw, edit))
    out_dir.mkdir(parents=True, exist_ok=True)
    from ..bench.cache import atomic_write_json
    from ..bench.units import resolved_options
    from ..io.manifest import now

    run = dict(header, status="running", resume_command=resume_cmd, method_options=resolved_options(inverter),
               video_options={**{k: v for k, v in vopts.__dict__.items() if k != "pti"},
                              "pti": pti.__dict__ if vopts.video_pti else None}, started_at=now())
    atomic_write_json(out_dir / RUN_FILE, run)
    scorer = None if kw["no_metrics"] else FrameScorer(dom, device)
    bs = batch_size_for(inverter, kw["batch_size"])
    try:
        result = run_video(clip, dom, inverter, out_dir, vopts, batch_size=bs, resume=resume, guard=guard,
                           edit=edit_req, scorer=scorer, progress=bars_enabled(), echo=echo_err)
    except KeyboardInterrupt:
        atomic_write_json(out_dir / RUN_FILE, dict(run, status="interrupted"))
        echo_err(f"Interrupted: saved frame inversions and the video PTI checkpoint stay in {out_dir}; resume with: "
                 f"{resume_cmd}")
        ctx.exit(130)
    except BaseException:
        atomic_write_json(out_dir / RUN_FILE, dict(run, status="failed"))
        raise
    for note in result.notes:
        echo_err(f"note: {note}")
    files = write_outputs(result.columns, out_dir, kw["fps"] or clip.fps, kw["scale"], kw["strip_frames"],
                          guard=guard)
    if result.fov is not None:  # field-of-view expanded reconstruction (SG3)
        from ..video.clip_io import encode_mp4

        guard.check(out_dir / "fov.mp4")
        encode_mp4(result.fov, out_dir / "fov.mp4", kw["fps"] or clip.fps, kw["scale"])
        files["fov"] = "fov.mp4"
    metrics = {"clip": kw["clip"], "clip_name": clip.name, "frames_in": len(clip), "frames_out": len(result.kept),
               "kept_frames": result.kept, "method": method, "fine_from": result.fine_from,
               "columns": list(result.columns), "timings_seconds": result.timings, "video_pti": result.pti,
               **result.metrics}
    atomic_write_json(out_dir / "metrics.json", json.loads(json.dumps(metrics, default=float)))
    atomic_write_json(out_dir / RUN_FILE, dict(run, status="complete", finished_at=now(),
                                               files={**files, "metrics": "metrics.json", "frames": "frames/"}))
    rec = result.metrics["reconstruction"]
    parts = [f"flicker {rec['flicker']:.4f} (input {rec['input_flicker']:.4f})"]
    if "unsmoothed" in result.metrics:
        parts.append(f"unsmoothed {result.metrics['unsmoothed']['flicker']:.4f}")
    parts += [f"{k} {v:.4f}" for k, v in rec["mean"].items()]
    click.echo(f"{len(clip)} frames of {kw['clip']} {command}ed with {method} -> {out_dir} ({len(result.kept)} frames "
               f"out; {', '.join(parts)}; {result.timings['total']:.1f} s)")


def _check_out(out_dir: Path, header: dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: an earlier `zoo video` run is continued only with --resume (same clip, method, domain)
    and replaced only with --overwrite; other files of ours without a run file also need --overwrite."""
    run_path = out_dir / RUN_FILE
    if run_path.is_file():
        try:
            old = json.loads(run_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError(f"{run_path} is damaged; move it away or choose another --out") from None
        if overwrite:
            echo_err(f"note: --overwrite: replacing the `zoo video` run in {out_dir}")
            return
        same = all(old.get(k) == header[k] for k in ("clip", "method", "domain", "frames"))
        if resume and same:
            return
        if resume:
            raise InputError(f"--out {out_dir} holds a run of {old.get('method')} on {old.get('clip')} "
                             f"({old.get('frames')} frames); --resume continues only that run: use another --out")
        raise InputError(f"--out {out_dir} already holds a `zoo video` run ({old.get('method')} on {old.get('clip')});"
                         " add --resume to continue it, --overwrite to replace it, or choose another --out")
    existing = [f for f in OUR_FILES if (out_dir / f).exists()]
    if existing and not overwrite:
        raise InputError(f"--out {out_dir}: {existing[0]} already exists and is not from a `zoo video` run; add "
                         "--overwrite to replace it, or choose another --out")
    if resume and out_dir.exists():
        echo_err(f"note: nothing to resume in {out_dir} (no {RUN_FILE}); starting a new run")


def _align_reporter(done: int, total: int) -> None:
    if done == total or done % 25 == 0:
        echo_err(f"video: aligned {done}/{total} frames")


def _resume_words(command: str, kw: dict[str, Any], edit: Any) -> list[Any]:
    words: list[Any] = ["zoo", "video", command, kw["clip"], "--method", kw["method"],
                        *option_words("-o", kw["options"]), "--domain", kw["domain"], "--out", kw["out"]]
    for flag, key in (("--frames", "max_frames"), ("--batch-size", "batch_size"), ("--pti-steps", "pti_steps"),
                      ("--pti-batch", "pti_batch"), ("--pti-freeze", "pti_freeze")):
        if kw[key] is not None:
            words += [flag, kw[key]]
    words += ([] if kw["smooth"] else ["--no-smooth"]) + (["--fine-from", kw["fine_from"]]
                                                          if kw["fine_from"] != "auto" else [])
    words += (["--edges", kw["edges"]] if kw["edges"] != "none" else []) + (["--video-pti"] if kw["video_pti"] else [])
    words += option_words("--pti-option", kw["pti_options"])
    words += (["--unaligned"] if kw["unaligned"] else []) + (["--fov", kw["fov"]] if kw["fov"] else [])
    words += (["--align-frame", kw["align_frame"]] if kw["align_frame"] != "first" else [])
    words += (["--no-face", kw["no_face"]] if kw["no_face"] != "error" else [])
    if edit is not None:
        direction, editor, steps, editor_options = edit
        words += ["--direction", direction, *(["--editor", editor] if editor else []), "--steps", steps,
                  *option_words("--editor-option", editor_options)]
    if kw["device"] not in ("auto", "cpu"):
        words += ["--device", kw["device"]]
    return words + ["--resume"]
