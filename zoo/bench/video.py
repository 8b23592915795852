"""The video section of `zoo bench --video`: per domain, embedded bench clip and method, the `zoo.video` pipeline
(`run_video`) without and with video PTI, each reported without and with smoothing.

One pipeline run per (domain, clip, method, video PTI on/off) with smoothing on (stylegan3-editing's kernel
[0.25, 0.75, 1, 0.75, 0.25] / 3, fine codes averaged over the clip, no padding: T frames give T - 4) yields both rows:
"official" = the smoothed reconstruction, "none" = the unsmoothed reconstruction of the same T - 4 frames (so the
two rows compare like with like; `zoo video --no-smooth` would score all T frames). Video PTI (one generator tuned on
the whole clip from the per-frame latents; anchors-wave2 §2.6) runs `video_pti_steps` steps (default 350, the
official default; quick 20; 0 = no video-PTI rows).

Reported per row (docs/video.md "Metrics"): the means of the per-frame `l2` / `lpips` / `id` board metrics (those of
the run's `--metrics` that are video metrics), flicker of the output and of the input frames ([-1, 1] units) and
their ratio, temporal error (vs the input and vs the ground truth), GT L1 (mean |output - truth|), and wall seconds:
per-frame inversion, video PTI, and the whole pipeline run (loading, inversion, tuning, rendering, scoring).

Cached and resumable like the image units: each pipeline run's summary is a record of the run's `ResultCache`
(key: clip frames sha256, method, version, options, weights, video options, metrics); the per-frame inversions and
the video-PTI checkpoint live in `<run>/video/<domain>/<clip>-<frames>/<method>-<hash>/` (`run_video` with
`resume=True`: an interrupted run continues from the saved frames and the last checkpoint). The section runs in the
bench process after the image units, whatever the executor. Results: `results["video"]` and `<run>/video.json`;
`video_markdown` renders the leaderboard section.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import log as zlog
from ..errors import CheckpointError
from ..plugins import one_line
from .cache import ResultCache, atomic_write_json
from .units import canonical_json, image_sha256, is_batchable, resolved_options

if TYPE_CHECKING:
    from ..domain import Domain
    from ..inverter import Inverter
    from .config import BenchConfig
    from .runner import Plan

VIDEO_FILE = "video.json"
VIDEO_DIR = "video"
VIDEO_RECORD_VERSION = 1
SMOOTHING = ("none", "official")  # row labels: the unsmoothed / smoothed reconstruction of the same frames
MEASURES = ("flicker", "input_flicker", "flicker_ratio", "temporal_error", "temporal_error_vs_truth", "gt_l1_mean")


def default_clips(domain: Domain) -> list[str]:
    """The domain's bench clip(s): its `clips` module's BENCH_CLIP (else its first clip); [] without clips."""
    from ..video.clip_io import embedded_clip_module

    module = embedded_clip_module(domain)
    if module is None:
        return []
    bench = getattr(module, "BENCH_CLIP", None)
    return [bench] if bench else list(module.clip_names())[:1]


def check_video(cfg: BenchConfig, plan: Plan) -> None:
    """InputError before any work for --video clips a domain does not have (named in the error)."""
    from ..errors import InputError
    from ..video.clip_io import embedded_clip_module

    for dname, domain in plan.domains.items():
        module = embedded_clip_module(domain)
        known = list(module.clip_names()) if module is not None else []
        unknown = [c for c in cfg.video_clips or [] if c not in known]
        if unknown:
            raise InputError(f"--video-clips {','.join(unknown)}: not an embedded clip of domain '{dname}' (known: "
                             f"{', '.join(known) or 'none'})")


def run_video_section(cfg: BenchConfig, plan: Plan, run_dir: Path, cache: ResultCache, log: Callable[[str], None],
                      *, skip: Collection[tuple[str, str]] = (), inverters: dict[str, Inverter] | None = None) -> dict[str, Any]:
    """Run (or resume) the video section of a resolved config; returns {"config", "rows", "failures", "notes"} and
    writes it to `<run_dir>/video.json`. skip: (method, domain) pairs without weights (not benchmarked);
    inverters: already prepared inverters by `method|options` (reused). A failing method is recorded in "failures"
    (re-raised with cfg.fail_fast) and the others still run."""
    from .. import registry
    from ..video.clip_io import EMBEDDED_PREFIX, load_clip
    from ..video.metrics import FRAME_METRICS, FrameScorer
    from ..video.pipeline import VideoOptions, check_clip
    from ..video.video_pti import VideoPTIOptions

    inverters = {} if inverters is None else inverters
    metric_names = tuple(n for n in FRAME_METRICS if n in plan.metrics)
    pti_steps = int(cfg.video_pti_steps or 0)
    variants = [False] + ([True] if pti_steps > 0 else [])
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    notes: list[str] = []
    for dname, domain in plan.domains.items():
        clips = list(cfg.video_clips) if cfg.video_clips else default_clips(domain)
        if clips and domain.poses("test", 1) is not None:  # aligned crops + user transforms (StyleGAN3 domains)
            notes.append(f"{dname}: no video rows yet (its bench clips would need per-frame aligned crops and poses; "
                         "video inversion on a StyleGAN3 domain: `zoo video invert --unaligned`)")
            log(f"note: video: {notes[-1]}")
            continue
        if not clips:
            notes.append(f"{dname} has no embedded clips: no video rows")
            log(f"note: video: {notes[-1]}")
            continue
        scorer = FrameScorer(domain, cfg.device, metric_names) if metric_names else None
        notes += [f"{dname}: {n}" for n in (scorer.notes if scorer else [])]
        for cname in clips:
            clip = load_clip(f"{EMBEDDED_PREFIX}{cname}:{cfg.video_frames}", domain)
            clip_sha = hashlib.sha256("".join(image_sha256(f) for f in clip.frames).encode()).hexdigest()
            for mname in plan.methods:
                if (mname, dname) in skip:
                    continue
                opts = plan.options_for(mname, dname)
                try:
                    ikey = f"{mname}|{canonical_json(opts)}"
                    inverter = inverters.get(ikey) or registry.create_inverter(mname, opts, device=cfg.device)
                    inverters[ikey] = inverter
                    try:
                        inverter.prepare(domain)
                    except CheckpointError as exc:
                        if cfg.methods is not None:
                            raise
                        notes.append(f"{mname} unavailable on {dname}: {one_line(exc)}")
                        continue
                    ident = {"kind": "video", "version": VIDEO_RECORD_VERSION, "domain": dname, "clip": cname,
                             "frames": len(clip), "clip_sha256": clip_sha, "method": mname,
                             "method_version": str(inverter.version), "options": resolved_options(inverter),
                             "weights": inverter.weights_sha256(domain), "metrics": list(metric_names),
                             "batch_size": cfg.batch_size if is_batchable(inverter) else 1}
                    folder = (run_dir / VIDEO_DIR / dname / f"{cname}-{len(clip)}" /
                              f"{mname}-{_sha(canonical_json({**ident, 'pti_steps': pti_steps}))[:10]}")
                    for pti in variants:
                        vopts = VideoOptions(smooth=True, video_pti=pti, pti=VideoPTIOptions(steps=pti_steps))
                        check_clip(clip, vopts)
                        key = _sha(canonical_json({**ident, "smooth": True, "fine_from": vopts.fine_from,
                                                   "edges": vopts.edges,
                                                   "pti": asdict(vopts.pti) if pti else None}))
                        record = cache.load(key)
                        reused = record is not None
                        what = f"{mname} on {dname}:{cname} ({len(clip)} frames{', video PTI' if pti else ''})"
                        if record is None:
                            log(f"video: {what}")
                            record = _run_cell(clip, domain, inverter, folder, vopts, ident["batch_size"], scorer,
                                               pti_steps if pti else 0)
                            cache.save(key, record)
                        else:
                            log(f"video: {what}: cached")
                        rows += cell_rows(record, dname, cname, mname, reused=reused)
                except Exception as exc:
                    if cfg.fail_fast:
                        raise
                    failures.append({"method": mname, "domain": dname, "clip": cname, "error": one_line(exc),
                                     "section": "video"})
                    log(f"error: video: {mname} on {dname}:{cname} failed: {one_line(exc)} (rerun with the same "
                        "--out to retry)")
    section = {"config": {"clips": cfg.video_clips, "frames": cfg.video_frames, "pti_steps": pti_steps,
                          "smoothing": "official kernel [0.25, 0.75, 1, 0.75, 0.25]/3, fine codes averaged "
                                       "(fine_from auto), no padding (T - 4 frames)",
                          "metrics": list(metric_names)},
               "rows": rows, "failures": failures, "notes": notes}
    atomic_write_json(run_dir / VIDEO_FILE, section)
    return section


def _run_cell(clip: Any, domain: Domain, inverter: Inverter, folder: Path, vopts: Any, batch_size: int,
              scorer: Any, pti_steps: int) -> dict[str, Any]:
    """One `run_video` (resume=True: reuses the folder's saved frames and video-PTI checkpoint) -> cache record."""
    from ..video.pipeline import run_video

    start = time.perf_counter()
    result = run_video(clip, domain, inverter, folder, vopts, batch_size=batch_size, resume=True, scorer=scorer,
                       echo=zlog.debug)
    wall = time.perf_counter() - start
    return {"frames_in": len(clip), "frames_out": len(result.kept), "pti_steps": pti_steps, "wall_s": wall,
            "timings": result.timings, "video_pti": result.pti, "fine_from": result.fine_from,
            "notes": result.notes, "summaries": {"official": _summary(result.metrics["reconstruction"]),
                                                 "none": _summary(result.metrics["unsmoothed"])}}


def _summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The means of a `zoo.video.metrics.summarise` result (per-frame lists dropped)."""
    return {"frames": metrics["frames"], "mean": dict(metrics.get("mean", {})),
            **{k: metrics[k] for k in MEASURES if k in metrics}}


def cell_rows(record: Mapping[str, Any], domain: str, clip: str, method: str, *, reused: bool) -> list[dict[str, Any]]:
    """The two rows (smoothing none / official) of one cached pipeline run."""
    timings = record.get("timings", {})
    out = []
    for smoothing in SMOOTHING:
        s = record["summaries"][smoothing]
        out.append({"domain": domain, "clip": clip, "method": method, "smoothing": smoothing,
                    "video_pti_steps": record["pti_steps"], "video_pti_steps_run": (record.get("video_pti") or {})
                    .get("steps"), "frames_in": record["frames_in"], "frames": s["frames"], **s["mean"],
                    **{k: s.get(k) for k in MEASURES}, "invert_s": timings.get("invert_frames"),
                    "video_pti_s": timings.get("video_pti", 0.0), "wall_s": record["wall_s"], "reused": reused})
    return out


def video_table(results: Mapping[str, Any]) -> tuple[Any, str, list[str]] | None:
    """The run's video section as (table: pandas DataFrame of formatted rows, or None without rows; the explanatory
    note; the section's notes), or None when the run has no video section. Shared by the leaderboard (Markdown) and
    report.html."""
    import pandas as pd

    from .report import fmt, fmt_time

    video = results.get("video")
    if not video:
        return None
    rows = video.get("rows", [])
    frame = None
    if rows:
        table = []
        for r in rows:
            pti = r["video_pti_steps"]
            row = {"method": r["method"], "clip": f"{r['domain']}:{r['clip']}", "smoothing": r["smoothing"],
                   "video PTI": f"{r['video_pti_steps_run']}/{pti} steps" if pti else "—",
                   "frames": f"{r['frames']}/{r['frames_in']}"}
            for name in ("l2", "lpips", "id"):
                if name in r:
                    row[f"{name} {'↑' if name == 'id' else '↓'}"] = fmt(r[name])
            row["flicker out / in"] = f"{fmt(r['flicker'])} / {fmt(r['input_flicker'])}"
            row["temporal err ↓"] = fmt(r["temporal_error"])
            row["temporal err vs truth ↓"] = fmt(r.get("temporal_error_vs_truth"))
            row["GT L1 ↓"] = fmt(r.get("gt_l1_mean"))
            row["invert s"] = fmt_time(r["invert_s"])
            row["video PTI s"] = fmt_time(r["video_pti_s"]) if pti else "—"
            row["wall s"] = fmt_time(r["wall_s"])
            table.append(row)
        frame = pd.DataFrame(table)
    cfg = video.get("config", {})
    note = (f"Per frame: means over the kept frames (smoothing without padding keeps T - 4 of T); both smoothing "
            f"rows of a run score the same frames. Flicker: mean |x[t+1] - x[t]| ([-1, 1] units) of the output "
            f"and the input; temporal error: mean |Δoutput - Δinput| between consecutive frames (vs truth: "
            f"against the clean clip); GT L1: mean |output - truth|. Wall s: the whole pipeline run (both rows "
            f"of a run share it; cached rows keep their measured time); video PTI {cfg.get('pti_steps')} steps "
            f"(run/asked: it stops early once a batch's LPIPS <= 0.06), from the frames inverted for the run "
            f"without it (its invert s is ~0). See docs/video.md.")
    return frame, note, list(video.get("notes", []))  # failures are listed with the run's other failures


def video_markdown(results: Mapping[str, Any]) -> list[str]:
    """The leaderboard's video section (Markdown lines; [] when the run has none)."""
    section = video_table(results)
    if section is None:
        return []
    frame, note, notes = section
    lines = ["## Video (embedded clips)", ""]
    if frame is not None:
        lines += [frame.to_markdown(index=False, disable_numparse=True), ""]
    lines.append(note)
    lines += [f"- {n}" for n in notes]
    return lines + [""]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
