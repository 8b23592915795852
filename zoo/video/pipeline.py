"""The video pipeline of stylegan3-editing (anchors-wave2 §2.5-2.7), each step an option:

1. per-frame inversion with any registered inverter, batched over frames, saved per frame (`frames.invert_frames`);
   with `unaligned` (StyleGAN3) the aligned frames are inverted and rendered back with each frame's transform;
2. smoothing of the latents (fine codes averaged over the clip, then the official 5-tap window; `smoothing`), and of
   the per-frame transforms when the generator renders them (SG3);
3. video PTI: one generator tuned on the whole clip from the per-frame latents (`video_pti`);
4. editing every frame with one direction through the (tuned) generator;
5. metrics (`metrics.summarise`) and outputs (mp4, frame strip, metrics json).

Generator-specific steps check the generator first: rendering unaligned frames with their transforms, freezing the
Fourier-feature input and field-of-view expansion need a StyleGAN3 generator (`transforms.require_fourier_input`).
Edits are applied to the smoothed latents: for the additive editors (InterFaceGAN / GANSpace directions in W+,
StyleSpace offsets constant over time) that equals smoothing the edited latents, which is what the official
editors do (the kernel sums to 1).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError
from ..inversion import Inversion, TunedWeights
from .smoothing import Edges, default_fine_from, kept_frames, smooth_latents, smooth_transforms
from .fov import expand
from .transforms import has_fourier_input, require_fourier_input
from .video_pti import VideoPTIOptions, render_tuned, tune_video

if TYPE_CHECKING:
    from ..domain import Domain
    from ..editor import Editor
    from ..inverter import Inverter
    from ..io import OutputGuard
    from .clip import Clip

FRAMES_DIR = "frames"
PTI_FILE = "video_pti.safetensors"
PTI_CHECKPOINT = "video_pti.checkpoint.pt"


@dataclass(frozen=True)
class VideoOptions:
    """Pipeline options. fine_from: first fine code averaged over the clip ("auto": `default_fine_from`, "none":
    no averaging, or an index); edges: "none" (official, T - 4 frames) or "replicate" (T frames)."""

    smooth: bool = True
    fine_from: str = "auto"
    edges: Edges = "none"
    video_pti: bool = False
    pti: VideoPTIOptions = field(default_factory=VideoPTIOptions)
    unaligned: bool = False
    fov: int = 0

    def resolve_fine_from(self, n_styles: int) -> int | None:
        """The fine-code index for a generator with n_styles codes (None: no averaging). InputError when invalid."""
        text = str(self.fine_from).strip().lower()
        if text == "auto":
            return default_fine_from(n_styles)
        if text == "none":
            return None
        try:
            value = int(text)
        except ValueError:
            raise InputError(f"--fine-from must be auto, none or a code index, got {self.fine_from!r}") from None
        if not 0 <= value <= n_styles:
            raise InputError(f"--fine-from {value} is outside 0..{n_styles} (this generator has {n_styles} codes)")
        return value


@dataclass(frozen=True)
class EditRequest:
    """One direction of one editor at several steps."""

    editor: Editor
    editor_name: str
    direction: str
    steps: tuple[float, ...]


@dataclass
class VideoResult:
    """What a run produced: frame indices kept, the output videos [T', 3, H, W] by column label (input, unsmoothed,
    reconstruction, edit steps), metrics, timings (wall seconds) and notes."""

    kept: list[int]
    columns: dict[str, torch.Tensor]
    metrics: dict[str, Any]
    timings: dict[str, float]
    notes: list[str]
    fine_from: int | None
    pti: dict[str, Any] | None = None
    fov: torch.Tensor | None = None  # field-of-view expanded reconstruction [T', 3, H + 2p, W + 2p] (--fov)


def check_capabilities(domain: Domain, options: VideoOptions, device: str) -> None:
    """InputError for options the domain's generator cannot do (SG3-only steps on an SG2 domain)."""
    g = domain.generator(device).generator
    if options.unaligned:
        require_fourier_input(g, "--unaligned (rendering every frame with its transform)", domain.name)
    if options.fov:
        require_fourier_input(g, f"--fov {options.fov} (field-of-view expansion)", domain.name)


def check_clip(clip: Clip, options: VideoOptions) -> None:
    """InputError when the clip is too short for the smoothing asked for (5 frames without edge replication) or
    --unaligned is asked for a clip without per-frame transforms."""
    if options.smooth and options.edges == "none" and len(clip) < 5:
        raise InputError(f"{clip.source}: smoothing needs at least 5 frames without edge replication (the clip has "
                         f"{len(clip)}); add --edges replicate or --no-smooth")
    if options.unaligned and (clip.transforms() is None or clip.aligned is None):
        raise InputError(f"{clip.source}: --unaligned needs aligned frames and per-frame transforms (embedded clips "
                         "carry them; `zoo video` aligns a video file / frame folder with dlib: "
                         "zoo.video.align_frames.align_clip)")


def run_video(clip: Clip, domain: Domain, inverter: Inverter, out_dir: Path, options: VideoOptions, *,
              batch_size: int, resume: bool, guard: OutputGuard | None = None, edit: EditRequest | None = None,
              scorer: Any = None, progress: bool = False, echo: Any = None) -> VideoResult:
    """Run the pipeline on `clip` (see the module doc), saving per-frame inversions into out_dir/frames and the
    video-PTI deltas / checkpoint into out_dir. Returns VideoResult; writes no videos (the caller does)."""
    from .frames import invert_frames
    from .metrics import flicker, summarise

    say = echo or (lambda line: None)
    device = str(inverter.device)
    check_capabilities(domain, options, device)
    notes: list[str] = []
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = domain.generator(device)
    g = loaded.generator
    check_clip(clip, options)

    # 1. per-frame inversion (resumable)
    inverter.prepare(domain)
    t = time.perf_counter()
    inv, stats = invert_frames(inverter, domain, clip, out_dir / FRAMES_DIR, batch_size=batch_size, resume=resume,
                               guard=guard, progress=progress, frames=clip.aligned if options.unaligned else None,
                               on_batch=lambda d, n: say(f"video: inverted {d}/{n} frames"))
    timings["invert_frames"] = time.perf_counter() - t
    timings["method_seconds_per_frame"] = float(inv.seconds.mean())
    if stats["resumed"]:
        notes.append(f"{stats['resumed']} frame inversion(s) reused from {out_dir / FRAMES_DIR} (--resume)")
    n_styles = int(inv.latents.shape[1])
    fine_from = options.resolve_fine_from(n_styles)
    kept = kept_frames(len(clip), options.smooth, options.edges)
    transforms = clip.transforms()
    raw_t = final_t = None  # per-frame inverse transforms rendered (--unaligned, SG3 only)
    if options.unaligned:
        if inv.change is not None and not options.video_pti:
            raise InputError(f"--unaligned renders through one generator: {inverter.name} changes the generator per "
                             "frame; add --video-pti or use a method without generator changes")
        raw_t = transforms.to(device)
        final_t = (smooth_transforms(transforms, options.edges) if options.smooth else transforms[kept]).to(device)

    # 2. video PTI on the per-frame latents (official: the un-smoothed pivots, targets = the frames)
    pti_info = None
    deltas = None
    if options.video_pti:
        if inv.change is not None:
            notes.append(f"video PTI replaces {inverter.name}'s per-frame generator changes by one tuned generator")
        t = time.perf_counter()
        ckpt = out_dir / PTI_CHECKPOINT
        if guard is not None:
            guard.check(ckpt)
        res = tune_video(g, inv.latents, clip.frames.to(device), options.pti, transforms=raw_t, checkpoint=ckpt,
                         resume=resume, on_step=_step_reporter(say, options.pti.steps))
        timings["video_pti"] = time.perf_counter() - t
        deltas = {k: v.to(device) for k, v in res.deltas.items()}
        pti_info = {"steps": res.steps, "resumed_from": res.resumed_from, "stopped_early": res.stopped_early,
                    "final_lpips": res.final_lpips, "seconds": res.seconds, "tuned_parameters": len(res.tuned),
                    "frozen_parameters": res.frozen, "file": PTI_FILE}
        _save_deltas(out_dir / PTI_FILE, res.deltas, pti_info, options.pti, guard)

    def clip_inversion(latents: torch.Tensor, rows: list[int]) -> Inversion:
        """An Inversion of frames `rows` with these latents, rendered through the tuned / per-frame generator."""
        if deltas is not None:
            change: Any = TunedWeights([deltas] * len(rows))
        else:
            change = inv.select(rows).change
        sub = inv.select(rows)
        return replace(sub, latents=latents, change=change, noise=None if deltas is not None else sub.noise,
                       domain=domain)

    t = time.perf_counter()
    all_rows = list(range(len(clip)))
    with torch.no_grad():
        raw_inv = clip_inversion(inv.latents, all_rows)
        raw = _render(raw_inv, g, deltas, raw_t)
    # 3. smoothing
    if options.smooth:
        latents = smooth_latents(inv.latents, fine_from, options.edges)
        final_inv = clip_inversion(latents, kept)
        with torch.no_grad():
            final = _render(final_inv, g, deltas, final_t)
    else:
        final_inv, final = raw_inv, raw
    smoothed_transforms = None
    if transforms is not None and options.smooth:
        smoothed_transforms = smooth_transforms(transforms, options.edges)  # rendered only by an SG3 generator
    timings["smooth_and_render"] = time.perf_counter() - t

    columns: dict[str, torch.Tensor] = {"input": clip.frames[kept].cpu()}
    if options.smooth:
        columns["unsmoothed"] = raw[kept].cpu()
    columns["reconstruction"] = final.cpu()

    # 4. edits of every frame through the (tuned) generator
    if edit is not None:
        t = time.perf_counter()
        with torch.no_grad():
            for s in edit.steps:
                if final_t is None:
                    img = edit.editor.edit(final_inv, edit.direction, s)
                else:  # through the one generator with each frame's transform
                    edit.editor.check_direction(edit.direction, domain, n_styles)
                    codes = edit.editor.edit_codes(final_inv.latents, edit.direction, float(s), domain)
                    img = render_tuned(g, codes.latents, deltas, codes.style_offsets, final_t)
                columns[f"{edit.direction} {s:+g}"] = img.cpu()
        timings["edit"] = time.perf_counter() - t
    fov = None
    if options.fov:  # field-of-view expansion of the final reconstruction (SG3)
        t = time.perf_counter()
        with torch.no_grad():
            fov = expand(g, final_inv.latents, final_t, options.fov, options.fov, options.fov, options.fov,
                         deltas=deltas).cpu()
        timings["fov"] = time.perf_counter() - t

    # 5. metrics
    t = time.perf_counter()
    truth = clip.truth[kept] if clip.truth is not None else None
    metrics: dict[str, Any] = {"reconstruction": summarise(final, clip.frames[kept], scorer, truth)}
    if options.smooth:
        metrics["unsmoothed"] = summarise(raw[kept], clip.frames[kept], scorer, truth)
        metrics["unsmoothed_all_frames"] = {"frames": len(clip), "flicker": flicker(raw),
                                            "input_flicker": flicker(clip.frames)}
    if edit is not None:
        metrics["edits"] = {k: {"flicker": flicker(v), "mean_abs_change_vs_reconstruction":
                                float((v.clamp(-1, 1) - final.cpu().clamp(-1, 1)).abs().mean())}
                            for k, v in columns.items() if k.startswith(f"{edit.direction} ")}
    if smoothed_transforms is not None:
        metrics["transforms"] = {"note": "the clip's inverse transforms smoothed like the latents (rendered with "
                                         "--unaligned on an SG3 domain)", "smoothed": smoothed_transforms.tolist()}
    timings["metrics"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    if scorer is not None:
        notes += list(getattr(scorer, "notes", []))
    if smoothed_transforms is not None and final_t is None and has_fourier_input(g):  # SG2 cannot render them
        notes.append("the clip's per-frame transforms are smoothed (metrics.json) but not rendered (--unaligned, "
                     "StyleGAN3 domains only)")
    return VideoResult(kept, columns, metrics, timings, notes, fine_from, pti_info, fov)


def _render(inversion: Inversion, g: Any, deltas: dict[str, torch.Tensor] | None,
            transforms: torch.Tensor | None = None) -> torch.Tensor:
    if deltas is not None or transforms is not None:  # one (tuned) generator for every frame: one batched call
        return render_tuned(g, inversion.latents, deltas, transforms=transforms)
    return inversion.render()


def _step_reporter(say: Any, steps: int) -> Any:
    interval = max(1, steps // 10)

    def report(step: int, total: int, loss: float) -> None:
        if step % interval == 0 or step == total:
            say(f"video PTI: step {step}/{total}, loss {loss:.4f}")

    return report


def _save_deltas(path: Path, deltas: dict[str, torch.Tensor], info: dict[str, Any], options: VideoPTIOptions,
                 guard: OutputGuard | None) -> None:
    """The tuned generator as tuned - original deltas (safetensors; metadata: options and run info)."""
    import json

    from safetensors.torch import save as st_save

    from ..bench.cache import atomic_write_bytes

    if guard is not None:
        guard.check(path)
    data = st_save({k: v.contiguous() for k, v in deltas.items()} or {"_empty": torch.zeros(0)},
                   metadata={"format": "zoo.video_pti", "options": json.dumps(asdict(options)),
                             "info": json.dumps(info, default=str)})
    atomic_write_bytes(path, data)
