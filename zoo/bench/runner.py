"""`run_bench`: methods × domains (+ their out-of-domain split) × metrics, the editing sweep, timing and outputs.

Stages: resolve every name first (unknown names fail before any work), then per domain and method: invert the
work units (cached per image, resumable), time the method (cached), and finally aggregate, write `results.json`,
`rows.jsonl` and the reports. A method that raises is recorded in `failures` and the others still run.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save as st_save

from .. import __version__
from .. import log as zlog
from .. import progress as zprogress
from ..errors import CheckpointError, InputError, ZooError
from ..plugins import one_line
from . import results as res
from .cache import ResultCache, atomic_write_bytes
from .config import BOARD_MIN_LIMIT, BenchConfig, domain_settings
from .evaluate import ALIGNED_PREFIX, Evaluator
from .executors import Executor, MethodJob, make_executor
from .inputs import load_folder
from .units import WorkUnit, canonical_json, is_batchable, make_units, resolved_options

if TYPE_CHECKING:
    from ..domain import Domain
    from ..editor import Editor
    from ..inverter import Inverter
    from ..metric import Metric

Log = Callable[[str], None]
PAPER_ORDER = ("id", "ms_ssim", "lpips", "l2")  # HyperStyle Table 1 column order; other metrics follow by name


@dataclass
class Plan:
    """Everything a run needs, resolved from names (errors with 'did you mean' surface here)."""

    config: BenchConfig
    methods: dict[str, type[Inverter]]
    options: dict[str, dict[str, Any]]
    domains: dict[str, Domain]
    metrics: dict[str, Metric]
    editors: dict[str, Editor]
    domain_options: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # domain -> method -> options
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # domain -> limit, ood, timing_images

    def options_for(self, method: str, domain: str) -> dict[str, Any]:
        """The options `method` runs with on `domain` (the domain file's own, else the run's)."""
        return self.domain_options.get(domain, {}).get(method, self.options[method])


@dataclass
class BenchOutcome:
    """What `run_bench` produced: the results dict (as written), the run folder and the output files."""

    results: dict[str, Any]
    run_dir: Path
    outputs: dict[str, Path]
    failures: list[dict[str, Any]] = field(default_factory=list)


def resolve(config: BenchConfig) -> Plan:
    """Resolve names to classes / objects and validate every method's options; nothing heavy runs here."""
    from .. import registry

    names = list(config.methods) if config.methods is not None else registry.list_inverters()
    if not names:
        raise ZooError("no inverters are registered (see `zoo plugins`)")
    methods = {n: registry.get_inverter_class(n) for n in names}
    for n in config.options:
        if n not in methods:
            raise InputError(f"options given for '{n}', which is not among the benchmarked methods "
                             f"({', '.join(methods)})")
    domains: dict[str, Domain] = {}
    for n in config.domains:  # a registered name or a domain file (keyed by the name it declares)
        d = registry.get_domain(n)
        domains[d.name] = d
    embedded = all(getattr(d, "embedded", False) for d in domains.values())
    options: dict[str, dict[str, Any]] = {}
    domain_options: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in domains}
    for n, cls in methods.items():  # fail now on a bad option, not after an hour
        options[n] = cls.configure(config.options.get(n, {}), embedded=embedded, quick=config.quick)
        for dname, domain in domains.items():  # a domain file's [methods.NAME] (e.g. official weights) < -o
            own = domain_method_options(domain, n)
            if own:
                domain_options[dname][n] = cls.configure({**own, **config.options.get(n, {})},
                                                         embedded=embedded, quick=config.quick)
            check = getattr(cls, "check_domain", None)  # `refiner@embedder`: weights that fit the domain
            if callable(check):
                cls(domain_options[dname].get(n, options[n])).check_domain(domain)
    metric_names = list(config.metrics) if config.metrics is not None else sorted(
        registry.list_metrics(), key=lambda n: (PAPER_ORDER.index(n) if n in PAPER_ORDER else len(PAPER_ORDER), n))
    metrics = {n: registry.create_metric(n, device=config.device) for n in metric_names}
    editor_names = list(config.editors) if config.editors is not None else registry.list_editors()
    editors = {n: registry.create_editor(n) for n in editor_names}
    return Plan(config, methods, options, domains, metrics, editors, domain_options)


def domain_method_options(domain: Domain, method: str) -> dict[str, Any]:
    """The options a domain gives a method (a domain file's `[methods.NAME]`; for `refiner@embedder` each part's),
    {} for registered domains."""
    from .. import registry

    return registry.domain_method_options(domain, method)


def domain_metrics(domain: Domain, metrics: dict[str, Metric]) -> dict[str, Metric]:
    """The metrics as `domain` evaluates them: a domain file's `[metrics] size` replaces each metric's `size`."""
    fn = getattr(domain, "metric_size", None)
    size = fn() if callable(fn) else None
    if size is None:
        return metrics
    out = {}
    for name, metric in metrics.items():
        if getattr(metric, "size", None) not in (None, size):
            metric = copy.copy(metric)
            metric.size = size  # type: ignore[attr-defined]
        out[name] = metric
    return out


def run_bench(config: BenchConfig, *, log: Log | None = None) -> BenchOutcome:
    """Run (or resume) a benchmark into `config.out`; returns the results and the paths of the outputs."""
    log = log or _stderr
    cfg = config.resolved()
    plan = resolve(cfg)
    if cfg.video:
        from .video import check_video

        check_video(cfg, plan)  # unknown clips fail before any work
    zlog.debug(f"bench: resolved configuration {cfg.to_dict()}")
    for name, opts in plan.options.items():
        zlog.debug(f"bench: {name} runs with options {opts}"
                   + "".join(f"; on {d}: {o[name]}" for d, o in plan.domain_options.items() if name in o))
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    plan.settings = {d: domain_settings(config, cfg, domain) for d, domain in plan.domains.items()}
    for d, st in plan.settings.items():
        if st["capped"]:
            what = {"limit": f"{st['limit']} images per split", "ood": "no out-of-domain split",
                    "timing_images": f"{st['timing_images']} timing images",
                    "throughput_batch": f"throughput batch {st['throughput_batch']}"}
            log(f"note: {d} uses its own bench defaults (Domain.bench_defaults): "
                f"{', '.join(what[k] for k in st['capped'])} (an explicit --limit overrides the limit)")
    executor: Executor | None = None
    try:
        executor = make_executor(cfg, list(plan.metrics), list(plan.editors), log)
        return _run(cfg, plan, log, executor)
    finally:
        if executor is not None:
            executor.close()
        zprogress.stop()
        torch.set_num_threads(threads)


def _run(cfg: BenchConfig, plan: Plan, log: Log, executor: Executor) -> BenchOutcome:
    from .. import registry
    from .report import output_paths, render_run

    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    cache = ResultCache(run_dir / "cache")
    created_at = _now()
    inverters: dict[str, Inverter] = {}
    records: list[dict[str, Any]] = []
    groups: list[tuple[str, str, str, int]] = []
    timing: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    unavailable_methods: list[dict[str, Any]] = []  # default method list only: weights not trained/installed yet
    methods_info: dict[str, Any] = {
        n: {**cls.describe(), "plugin": _origin(registry, n), "weights_sha256": {}} for n, cls in plan.methods.items()}
    domains_info: dict[str, Any] = {}
    unavailable: dict[str, dict[str, str]] = {}
    grids: dict[str, Any] = {}
    inputs_info: dict[str, Any] | None = None
    targets: dict[str, torch.Tensor] = {}  # domain -> images its main split is scored against
    tracker = zprogress.start(len(plan.domains) * len(plan.methods), log, cfg.progress)
    if (load := res.machine_load())["busy"]:
        log(f"warning: the machine is busy (load {load['load_avg'][0]:g} on {load['cores']} cores): timings "
            "measured under load are marked not leaderboard-eligible")

    for dname, domain in plan.domains.items():
        settings = plan.settings.get(dname) or domain_settings(cfg, cfg, domain)
        data, folder = _load_data(cfg, domain, settings)
        for split in data:  # a domain file's skipped inputs (unreadable, no face found, ...)
            for note in getattr(domain, "notes", {}).get(split, []):
                log(f"note: {dname}/{split}: {note}")
        if folder is not None:
            for m in folder.messages:
                log(m.line())
            inputs_info = {"folder": folder.folder, "n_files": folder.n_files, "n_used": len(folder.files),
                           "files": folder.files, "messages": [m.line() for m in folder.messages]}
        evaluator = Evaluator(domain, domain_metrics(domain, plan.metrics), plan.editors, cfg.steps, cfg.edit_splits,
                              cfg.device, editors_skipped=cfg.editors == [])
        unavailable[dname] = dict(evaluator.unavailable)
        for metric, reason in evaluator.unavailable.items():
            log(f"warning: metric '{metric}' is unavailable on '{dname}': {reason}")
        domains_info[dname] = _domain_info(domain, data, cfg.device)
        frames = {split: evaluator.frame_keys(split, len(images)) for split, (images, _) in data.items()}
        if cfg.split in data:  # what the main split's primary scores compare against (paired domain comparisons)
            main = evaluator.frame(cfg.split, len(data[cfg.split][0]))
            if main is not None or isinstance(data[cfg.split][0], torch.Tensor):
                targets[dname] = main.images if main is not None else data[cfg.split][0]
        for split, (images, _) in data.items():
            frame = evaluator.frame(split, min(len(images), cfg.grid_images))
            shown = images[: cfg.grid_images] if frame is None else frame.images[: cfg.grid_images]
            grids[f"{dname}/{split}"] = _save_grid_inputs(run_dir, dname, split, shown)  # what recon is scored against
            if frame is not None:
                grids[f"{dname}/{split}"]["frame"] = "unaligned"
        for mname, cls in plan.methods.items():
            units_all: list[WorkUnit] = []
            tracker.method(mname, dname)
            try:
                opts = plan.options_for(mname, dname)
                ikey = f"{mname}|{canonical_json(opts)}"
                inverter = inverters.get(ikey) or registry.create_inverter(mname, opts, device=cfg.device)
                inverters[ikey] = inverter
                try:
                    inverter.check_generator(domain)  # a generator family it cannot drive: unavailable, even by name
                except CheckpointError as exc:
                    unavailable_methods.append({"method": mname, "domain": dname, "reason": one_line(exc)})
                    log(f"note: {mname} is unavailable on {dname}: {one_line(exc)}")
                    continue
                try:
                    inverter.prepare(domain)  # weights are loaded here, never inside a timed region
                except CheckpointError as exc:
                    if cfg.methods is not None:  # asked for by name: its missing weights are a failure
                        raise
                    unavailable_methods.append({"method": mname, "domain": dname, "reason": one_line(exc)})
                    log(f"note: {mname} is unavailable on {dname}: {one_line(exc)}")
                    continue
                weights = inverter.weights_sha256(domain)
                methods_info[mname].update(options=resolved_options(inverter), batchable=is_batchable(inverter))
                methods_info[mname]["weights_sha256"][dname] = weights
                planned = {split: make_units(inverter, domain, split, images, weights, sources, frames[split])
                           for split, (images, sources) in data.items()}
                for split, units in planned.items():
                    units_all += units
                    groups.append((mname, dname, split, len(units)))
                    grids[f"{dname}/{split}"]["methods"][mname] = [u.key for u in units[: cfg.grid_images]]
                tracker.plan(len(units_all))
                job = MethodJob(mname, opts, inverter, domain, evaluator, planned,
                                {split: images for split, (images, _) in data.items()}, weights, cache,
                                throughput_batch=settings.get("throughput_batch"))
                records += executor.run(job)  # in this process, or on Ray workers (zoo.bench.executors)
                timed = data[cfg.split][0]
                n_timed = int(settings["timing_images"])
                idx = [i % len(timed) for i in range(n_timed)]
                tracker.phase(f"timing {n_timed} images at batch size 1")
                t = executor.time(job, timed[idx])
                timing.append({**t, "units": res.unit_seconds(records, mname, dname)})
                for busy in res.timing_busy([t]):
                    log(f"warning: timed {busy}: the machine was busy, this time is not leaderboard-eligible")
            except Exception as exc:
                if cfg.fail_fast:
                    raise
                failures.append({"method": mname, "domain": dname, "error": one_line(exc)})
                log(f"error: {mname} on {dname} failed: {one_line(exc)} (rerun with the same --out to retry)")
                done = {r["key"] for r in records if "key" in r}
                records += [r for u in units_all if u.key not in done and (r := cache.load(u.key)) is not None]
        domains_info[dname]["evaluation"] = evaluator.describe()
        for note in domains_info[dname]["evaluation"]["notes"]:
            log(f"note: {note}")

    tracker.finish()
    video = None
    if cfg.video:  # zoo.bench.video: embedded clips, with/without smoothing and video PTI, per method
        from .video import run_video_section

        video = run_video_section(cfg, plan, run_dir, cache, log, inverters=inverters,
                                  skip={(u["method"], u["domain"]) for u in unavailable_methods})
        failures += [dict(f, error=f"video {f['clip']}: {f['error']}") for f in video["failures"]]
    machines = res.timing_machines(timing)
    if len(machines) > 1:
        log(f"warning: the times were measured on {len(machines)} different machines ({res.machines_line(machines)});"
            " they are not comparable with each other")
    metrics_info = {n: {"higher_is_better": bool(m.higher_is_better), "version": str(m.version),
                        "title": m.card.title} for n, m in plan.metrics.items()}
    posed = {d for d, info in domains_info.items() if "unaligned" in (info.get("evaluation") or {}).get("frame",
                                                                                                        {}).values()}
    aligned_info = {ALIGNED_PREFIX + n: {**i, "title": f"{i['title']} (aligned frame: reconstruction of the aligned "
                                         "crop vs the crop)", "frame": "aligned", "of": n}
                    for n, i in metrics_info.items()} if posed else {}
    results: dict[str, Any] = {
        "schema_version": res.SCHEMA_VERSION, "zoo_version": __version__, "run_id": run_dir.name,
        "created_at": created_at, "finished_at": _now(), "git": res.git_info(), "env": res.environment(cfg.device),
        "config": {**cfg.to_dict(), "options": plan.options, "domain_options": plan.domain_options,
                   "domain_settings": plan.settings},
        "leaderboard_eligible": (not cfg.quick and (cfg.limit == 0 or cfg.limit >= BOARD_MIN_LIMIT)
                                 and cfg.images_dir is None and not failures),
        "timing_eligible": not res.timing_busy(timing), "timing_busy": res.timing_busy(timing),
        "timing_machines": machines, "executor": executor.describe(),
        "methods": methods_info, "domains": domains_info, "metrics": {**metrics_info, **aligned_info},
        "editors": {n: e.describe() for n, e in plan.editors.items()},
        "aggregates": res.aggregate_scores(records, groups, {n: i["higher_is_better"] for n, i in
                                                             metrics_info.items()}, unavailable)
        + res.aggregate_scores(records, [g for g in groups if g[1] in posed and _posed_split(domains_info, g)],
                               {n: i["higher_is_better"] for n, i in aligned_info.items()},
                               {d: {ALIGNED_PREFIX + m: r for m, r in u.items()} for d, u in unavailable.items()}),
        "timing": timing, "edit_aggregates": res.aggregate_edits(records), "failures": failures,
        "unavailable_methods": unavailable_methods, "inputs": inputs_info, "grids": grids, "rows_path": res.ROWS_FILE,
        "outputs": {k: str(p.relative_to(run_dir)) for k, p in output_paths(run_dir).items()} if cfg.report else {},
    }
    if video is not None:
        results["video"] = video
    from .paired import domain_pairs

    pairs = domain_pairs(records, domains_info, metrics_info, cfg.split, targets) if cfg.images_dir is None else []
    if pairs:
        results["paired_domains"] = pairs
    res.write_rows(run_dir / res.ROWS_FILE, res.unit_rows(records))
    res.write_results(run_dir, results)
    outputs = render_run(results, run_dir) if cfg.report else {}
    return BenchOutcome(results, run_dir, {"results": run_dir / res.RESULTS_FILE, **outputs}, failures)


# ---------------------------------------------------------------------------------------------------- helpers
def _posed_split(domains_info: dict[str, Any], group: tuple[str, str, str, int]) -> bool:
    """Whether the (method, domain, split, n) group's split was evaluated in the unaligned frame."""
    return ((domains_info.get(group[1]) or {}).get("evaluation") or {}).get("frame", {}).get(group[2]) == "unaligned"


def _load_data(cfg: BenchConfig, domain: Domain, settings: dict[str, Any] | None = None
               ) -> tuple[dict[str, tuple[torch.Tensor, list[str] | None]], Any]:
    """split -> (images [N, 3, R, R], source files or None); the folder object for --images runs. `settings`: the
    domain's limit and out-of-domain choice (`config.domain_settings`; default: the run's)."""
    if cfg.images_dir is not None:
        folder = load_folder(cfg.images_dir, domain.resolution, domain.resample, domain.prepare_input)
        sources = [str(Path(folder.folder) / f) for f in folder.files]
        return {"images": (folder.images, sources)}, folder
    splits = domain.splits()
    if cfg.split not in splits:
        raise InputError(f"domain '{domain.name}' has no split '{cfg.split}' (splits: {', '.join(splits)})")
    ood = cfg.ood if settings is None else settings["ood"]
    limit = cfg.n_images() if settings is None else (settings["limit"] or None)
    wanted = [cfg.split] + (["ood"] if ood and "ood" in splits and cfg.split != "ood" else [])
    data: dict[str, tuple[Any, list[str] | None]] = {}
    lazy = getattr(domain, "image_set", None)  # a domain file streams its images from disk, block by block
    for split in wanted:
        images = lazy(split, limit=limit) if callable(lazy) else domain.images(split, limit=limit)
        if len(images) == 0:
            notes = "; ".join(getattr(domain, "notes", {}).get(split, []))
            raise InputError(f"split '{split}' of domain '{domain.name}' has no images" + (f" ({notes})" if notes
                                                                                          else ""))
        data[split] = (images, None) if callable(lazy) else (images.float(), None)
    return data, None


def generator_family(domain: Domain, device: str = "cpu") -> str | None:
    """'stylegan3' (a Fourier-feature input), 'stylegan2', or None when the domain's generator cannot be loaded."""
    try:
        g = domain.generator(device).generator
    except Exception:  # noqa: BLE001 - provenance must not break the run
        return None
    return "stylegan3" if hasattr(getattr(g, "synthesis", None), "input") else "stylegan2"


def _domain_info(domain: Domain, data: dict[str, tuple[torch.Tensor, Any]], device: str = "cpu") -> dict[str, Any]:
    from .units import image_sha256

    splits = {}
    for split, (images, _) in data.items():
        h = hashlib.sha256("".join(image_sha256(x) for x in images).encode()).hexdigest()
        splits[split] = {"n": len(images), "data_sha256": h}
    try:
        info = domain.describe()
    except Exception as exc:  # noqa: BLE001 - provenance must not break the run
        info = {"name": domain.name, "describe_error": one_line(exc)}
    return {**info, "used_splits": splits, "generator_family": generator_family(domain, device)}


def _save_grid_inputs(run_dir: Path, domain: str, split: str, images: torch.Tensor) -> dict[str, Any]:
    """Store the first images of a split (fp16) for the report's reconstruction grids."""
    rel = Path("inputs") / f"{domain}__{split}.safetensors"
    atomic_write_bytes(run_dir / rel, st_save({"images": images.to(torch.float16).contiguous()}))
    return {"inputs": str(rel), "methods": {}}


def _origin(registry: Any, name: str) -> dict[str, Any] | None:
    try:
        return registry.get_registration("inverter", name).origin()
    except Exception:  # noqa: BLE001
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _stderr(line: str) -> None:
    zlog.line(line)  # `warning:` / `note:` / progress lines at their logging level (zoo -q / -v)
