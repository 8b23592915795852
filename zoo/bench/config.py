"""`BenchConfig`: everything that decides what `zoo bench` computes, resolved before any work starts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError

DEFAULT_STEPS: tuple[float, ...] = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
QUICK_STEPS: tuple[float, ...] = (-2.0, 0.0, 2.0)
DEFAULT_LIMIT = 8  # images per split in a default run (0 = the whole split): 15 minutes on 2 CPU cores (benchmarks/bench_budget.py)
QUICK_LIMIT = 8
BOARD_MIN_LIMIT = 32  # a run is leaderboard-eligible with at least this many images per split (or the whole split)
DEFAULT_RUNS_DIR = "zoo-runs"
DEFAULT_VIDEO_FRAMES, QUICK_VIDEO_FRAMES = 24, 12  # --video: frames of each bench clip
DEFAULT_VIDEO_PTI_STEPS, QUICK_VIDEO_PTI_STEPS = 350, 20  # --video: video PTI steps (stylegan3-editing default 350)


@dataclass
class BenchConfig:
    """What to benchmark and how. `resolved()` fills the defaults that depend on `quick` and the machine.

    methods / metrics / editors: None = every registered one. domains: names of registered domains.
    limit: images per split (None = DEFAULT_LIMIT, or QUICK_LIMIT with `quick`; 0 = the whole split). steps: editing step sizes. device: "auto", "cpu", "cuda", "cuda:1", ...
    batch_size: images per `invert` call for batchable methods (encoders, or inverters with `batchable = True`).
    timing_images: images timed one by one at batch size 1 (the first `warmup` are discarded).
    throughput_batch: batch size of the throughput measurement (batchable methods only).
    images_dir: benchmark a user folder against the (single) domain instead of its splits.
    threads: torch.set_num_threads for the run (recorded with the timings; None keeps torch's default).
    options: per-method option overrides {method: {key: value}} (strings are converted to the declared types).
    executor: "inprocess" (default) or "ray" (`address`, `workers`, `cpus_per_worker`, `gpus_per_worker`: see
    zoo.bench.ray_executor; needs the `ray` extra).
    video: add the video section (zoo.bench.video; `video_clips`, `video_frames`, `video_pti_steps`; runs in this
    process after the image units).
    """

    methods: list[str] | None = None
    domains: list[str] = field(default_factory=lambda: ["peeps"])
    metrics: list[str] | None = None
    editors: list[str] | None = None
    split: str = "test"
    ood: bool = True
    edit_splits: list[str] | None = None  # None = [split] (the editing sweep runs on the main split)
    limit: int | None = None
    quick: bool = False
    steps: list[float] | None = None
    device: str = "auto"
    out: str | None = None
    batch_size: int = 8
    seed: int = 0
    timing_images: int | None = None
    warmup: int = 1
    throughput_batch: int | None = None
    images_dir: str | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    grid_images: int = 8
    threads: int | None = None  # torch CPU threads for the run (None: leave torch's default)
    report: bool = True  # render leaderboards and HTML (False: results.json and rows only; `zoo report` later)
    progress: bool | None = None  # None: tqdm bars only when stderr is a terminal
    fail_fast: bool = False  # re-raise a method's error instead of recording it and going on
    executor: str = "inprocess"  # where units run: "inprocess" or "ray" (zoo.bench.executors)
    address: str | None = None  # ray: cluster address ("auto", "HOST:PORT"); None starts a local cluster
    workers: int | None = None  # ray: actors (None: as many as the cluster's CPUs / GPUs allow)
    cpus_per_worker: float = 1.0  # ray: num_cpus per actor (its torch threads unless `threads` is set)
    gpus_per_worker: float = 0.0  # ray: num_gpus per actor (> 0: workers run on CUDA)
    video: bool = False  # the video section (zoo.bench.video): embedded clips, smoothing and video PTI per method
    video_clips: list[str] | None = None  # embedded clip names (None: each domain's bench clip, peeps: mixed)
    video_frames: int | None = None  # frames per clip (None: DEFAULT_VIDEO_FRAMES, quick QUICK_VIDEO_FRAMES)
    video_pti_steps: int | None = None  # video PTI steps (None: 350, quick 20; 0: no video-PTI rows)

    def resolved(self) -> BenchConfig:
        """A copy with every None default made explicit (quick settings, device, out dir, steps)."""
        c = dataclasses.replace(self, options={k: dict(v) for k, v in self.options.items()})
        if c.limit is None:
            c.limit = QUICK_LIMIT if c.quick else DEFAULT_LIMIT
        c.limit = max(int(c.limit), 0)
        c.steps = [float(s) for s in (c.steps if c.steps is not None else (QUICK_STEPS if c.quick else DEFAULT_STEPS))]
        c.device = resolve_device(c.device)
        c.out = str(c.out) if c.out else default_out_dir()
        c.edit_splits = list(c.edit_splits) if c.edit_splits is not None else [c.split]
        if c.timing_images is None:
            c.timing_images = 3 if c.quick else 5
        if c.throughput_batch is None:
            c.throughput_batch = min(c.batch_size, 4) if c.quick else c.batch_size
        if c.threads is not None and c.threads < 1:
            raise InputError(f"--threads must be >= 1, got {c.threads}")
        if c.batch_size < 1 or c.throughput_batch < 1:
            raise InputError(f"batch sizes must be >= 1 (got --batch-size {c.batch_size})")
        if c.executor not in ("inprocess", "ray"):
            raise InputError(f"unknown executor '{c.executor}' (use inprocess or ray)")
        if c.executor == "ray" and ((c.workers is not None and c.workers < 1) or c.cpus_per_worker <= 0
                                    or c.gpus_per_worker < 0):
            raise InputError("--workers must be >= 1, --cpus-per-worker > 0 and --gpus-per-worker >= 0")
        if c.video_frames is None:
            c.video_frames = QUICK_VIDEO_FRAMES if c.quick else DEFAULT_VIDEO_FRAMES
        if c.video_pti_steps is None:
            c.video_pti_steps = QUICK_VIDEO_PTI_STEPS if c.quick else DEFAULT_VIDEO_PTI_STEPS
        if c.video and (c.video_frames < 5 or c.video_pti_steps < 0):
            raise InputError(f"--video needs --video-frames >= 5 (the smoothing window) and --video-pti-steps >= 0 "
                             f"(got {c.video_frames} and {c.video_pti_steps})")
        if c.timing_images < c.warmup + 1:
            raise InputError(f"timing_images ({c.timing_images}) must exceed warmup ({c.warmup})")
        if c.images_dir is not None:
            if len(c.domains) != 1:
                raise InputError(f"--images compares a folder against one domain; got {len(c.domains)} domains")
            c.split, c.ood, c.edit_splits = "images", False, ["images"]
        return c

    def n_images(self) -> int | None:
        """The per-split image limit of a resolved config (None = the whole split)."""
        return self.limit or None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


BENCH_DEFAULT_KEYS = ("limit", "ood", "timing_images", "throughput_batch")


def domain_settings(user: BenchConfig, cfg: BenchConfig, domain: Any) -> dict[str, Any]:
    """The image limit, out-of-domain split, timing images and throughput batch `zoo bench` uses on `domain`: the
    run's, capped by the domain's `bench_defaults` ({"limit": N, "ood": bool, "timing_images": N,
    "throughput_batch": N}, all optional; a domain whose methods are slow declares it so that a default multi-domain
    run stays within its time budget) for every setting the user did not give explicitly (`user`: the config as
    given, `cfg`: resolved). {limit, ood, timing_images, throughput_batch, capped: [settings the domain lowered]}.
    InputError for a malformed `bench_defaults`."""
    wanted = getattr(domain, "bench_defaults", None) or {}
    name = getattr(domain, "name", "?")
    if not isinstance(wanted, dict) or set(wanted) - set(BENCH_DEFAULT_KEYS):
        raise InputError(f"domain '{name}': bench_defaults must be a dict with keys among "
                         f"{', '.join(BENCH_DEFAULT_KEYS)}, got {wanted!r}")
    out: dict[str, Any] = {"limit": cfg.limit, "ood": cfg.ood, "timing_images": cfg.timing_images,
                           "throughput_batch": cfg.throughput_batch, "capped": []}
    limit = wanted.get("limit")
    if limit is not None and user.limit is None and cfg.images_dir is None and (cfg.limit == 0 or limit < cfg.limit):
        out["limit"] = max(int(limit), 1)
        out["capped"].append("limit")
    if wanted.get("ood") is False and user.ood and cfg.ood:
        out["ood"] = False
        out["capped"].append("ood")
    timing = wanted.get("timing_images")
    if timing is not None and user.timing_images is None and int(timing) < int(cfg.timing_images or 0):
        out["timing_images"] = max(int(timing), cfg.warmup + 1)
        out["capped"].append("timing_images")
    batch = wanted.get("throughput_batch")
    if batch is not None and user.throughput_batch is None and int(batch) < int(cfg.throughput_batch or 1):
        out["throughput_batch"] = max(int(batch), 1)
        out["capped"].append("throughput_batch")
    return out


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; checks that a requested CUDA device exists."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device '{device}' (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but CUDA is not available (use --device cpu)")
    return str(dev)


def default_out_dir(root: str | Path = DEFAULT_RUNS_DIR) -> str:
    """`zoo-runs/<UTC timestamp>` (relative to the working directory)."""
    return str(Path(root) / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))


def latest_run_dir(root: str | Path = DEFAULT_RUNS_DIR) -> Path | None:
    """The most recent run folder under `root` (by name, i.e. timestamp), for `zoo bench --resume`."""
    root = Path(root)
    runs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return runs[-1] if runs else None


MAX_STEPS = 201
STEPS_HELP = "LOW:HIGH[:INCREMENT] (also LOW..HIGH) or comma-separated values, e.g. -3:3, -3..3, -2:2:0.5, -2,0,2"


def parse_steps(text: str) -> list[float]:
    """The one step syntax of every command: '-3:3' or '-3..3' -> -3, -2, ..., 3; '-3:3:0.5' (or '-3..3..0.5')
    -> with increment 0.5; '-2,0,2' -> the listed values. InputError (naming the accepted forms) otherwise."""
    text = str(text).strip()
    try:
        if ":" in text or ".." in text:
            parts = [float(p) for p in text.replace("..", ":").split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                raise ValueError
            lo, hi, inc = parts[0], parts[1], parts[2] if len(parts) == 3 else 1.0
            n = int(round((hi - lo) / inc))
            if n < 0 or n + 1 > MAX_STEPS:
                raise ValueError
            return [round(lo + i * inc, 6) + 0.0 for i in range(n + 1)]
        values = [float(t) for t in text.split(",") if t.strip()]
        if not values:
            raise ValueError
        return values
    except ValueError:
        raise InputError(f"steps {text!r}: use {STEPS_HELP} (LOW <= HIGH, at most {MAX_STEPS} steps)") from None
