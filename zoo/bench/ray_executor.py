"""`zoo bench --executor ray`: the bench's work units on a Ray cluster (Ray Core actors + `ray.util.ActorPool`).

The driver (this process) plans the units and skips those already complete in its `ResultCache`; the rest go out
as shipping groups — whole fixed batch blocks (`units.block_groups`; for a `refiner@embedder` composition merged
with the embedder's blocks), so every batch is the batch an in-process run computes — to one actor per worker
(`num_cpus` / `num_gpus` as asked, explicit torch threads, inverters loaded once per actor: `ray_worker`).
Workers send back records and tensor files; only the driver writes the cache and the result files.

Faults: an actor whose process dies is restarted by Ray and its unfinished task retried (`max_restarts`,
`max_task_retries`); a group whose worker is gone for good goes to the remaining workers. A unit that raises is
reported once (application errors are not retried). Killing the driver loses only uncommitted groups: rerunning
with the same `--out` resumes from the cache. Latency / throughput are measured on one worker (the first) and
recorded with its host, CPU model and threads. Ray docs: https://docs.ray.io/en/latest/ray-core/actors.html
(fault tolerance: actors/fault-tolerance), `ray.util.ActorPool`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from .. import progress as zprogress
from ..errors import InputError, ZooError
from ..plugins import one_line
from .cache import atomic_write_bytes
from .executors import MethodJob
from .ray_worker import UnitWorker, WorkerSettings
from .units import WorkUnit, block_groups, is_batchable

if TYPE_CHECKING:
    from .cache import ResultCache
    from .config import BenchConfig

INSTALL = "pip install 'inversion-zoo[ray]'"
MAX_RESTARTS = 3  # actor restarts after its process died (Ray `max_restarts`)
MAX_TASK_RETRIES = 3  # retries of a task whose actor died while running it (Ray `max_task_retries`)
START_TIMEOUT_S = 600.0  # workers that are not up by then: not enough resources on the cluster


def import_ray() -> Any:
    """The `ray` module, or ZooError with the install command (Ray is an optional extra)."""
    try:
        import ray
    except ImportError:
        raise ZooError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def shipping_groups(units: Sequence[WorkUnit], sizes: Sequence[int]) -> list[list[int]]:
    """Positions of `units` grouped so that each group is a union of whole fixed blocks for every block size in
    `sizes` (connected components of `block_groups(units, s)` over all s), in first-seen order."""
    parent = list(range(len(units)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for size in sizes:
        for block in block_groups(units, size):
            for i in block[1:]:
                parent[find(i)] = find(block[0])
    groups: dict[int, list[int]] = {}
    for i in range(len(units)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def commit_files(cache: ResultCache, files: dict[str, bytes]) -> None:
    """Write a worker's cache files atomically into the driver's cache: tensors first, the JSON records last (a
    record names its tensors' sha256, so a crash in between leaves a record that is treated as missing)."""
    for rel in sorted(files, key=lambda r: r.endswith(".json")):
        atomic_write_bytes(cache.root / rel, files[rel])


def seed_files(cache: ResultCache, keys: Sequence[str], embedding_keys: Sequence[str] = ()) -> dict[str, bytes]:
    """The driver's cache files of `keys` (record JSON + tensors) and of shared embeddings (`embeddings/`), as
    cache-relative path -> bytes, so a worker's scratch cache starts where the driver's is."""
    from ..inversion import INVERSION_SUFFIX

    paths: list[Path] = []
    for key in keys:
        paths += [cache.json_path(key), cache.tensor_path(key)]
    paths += [cache.root / "embeddings" / k[:2] / f"{k}{INVERSION_SUFFIX}" for k in embedding_keys]
    return {p.relative_to(cache.root).as_posix(): p.read_bytes() for p in paths if p.is_file()}


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """ZooError (one line) when the cluster at `address` does not answer on its GCS port within `timeout_s`: Ray
    itself keeps retrying an unreachable address. 'auto' resolves as Ray does (RAY_ADDRESS, then the address file
    `ray start` leaves in Ray's temporary folder, `$RAY_TMPDIR` or the system's); 'ray://' addresses are left to Ray."""
    import os
    import socket
    import tempfile

    if address is None or address.startswith("ray://"):
        return
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS", "")
        if not target:
            current = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray" / "ray_current_cluster"
            target = current.read_text().strip() if current.is_file() else ""
        if not target or target == "auto" or target.startswith("ray://"):
            return  # nothing to probe: Ray reports "no running cluster" itself
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address}: expected auto or HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ZooError(f"--address {address}: no Ray cluster answers at {target} ({exc.strerror or exc}); start one "
                       "with `ray start --head` or omit --address for a local cluster") from None


class RayExecutor:
    """Runs each MethodJob's pending shipping groups on an ActorPool of `UnitWorker` actors; see the module doc.

    Connects to `cfg.address` ('auto', 'HOST:PORT', 'ray://…'), or starts a local cluster when it is None; a Ray
    session that is already initialised (tests, notebooks) is used as it is and left running."""

    name = "ray"

    def __init__(self, cfg: BenchConfig, metrics: list[str], editors: list[str],
                 log: Callable[[str], None]) -> None:
        ray = import_ray()
        from ray.util import ActorPool

        self.ray, self.cfg, self.log = ray, cfg, log
        self.started = not ray.is_initialized()
        if self.started:
            check_reachable(cfg.address)
            ray.init(address=cfg.address, include_dashboard=False, logging_level=logging.WARNING)
        cpus, gpus = float(cfg.cpus_per_worker), float(cfg.gpus_per_worker)
        if str(cfg.device).startswith("cuda") and gpus == 0:
            log("note: Ray workers run on CPU unless --gpus-per-worker is given (e.g. --gpus-per-worker 1)")
        n = cfg.workers or self._fit(cpus, gpus)
        self._check_resources(n, cpus, gpus)
        threads = cfg.threads or max(1, int(cpus))
        self.settings = WorkerSettings(tuple(metrics), tuple(editors), tuple(cfg.steps or ()),
                                       tuple(cfg.edit_splits or ()), cfg.editors == [],
                                       "cuda" if gpus > 0 else "cpu", threads, cfg.batch_size, cfg.seed)
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=MAX_RESTARTS,
                           max_task_retries=MAX_TASK_RETRIES)(UnitWorker)
        self.actors = [actor.remote(i, self.settings) for i in range(n)]
        infos = [a.info.remote() for a in self.actors]
        ready, _ = ray.wait(infos, num_returns=n, timeout=START_TIMEOUT_S)
        if len(ready) < n:
            self.close()
            raise ZooError(f"only {len(ready)} of {n} Ray workers started within {START_TIMEOUT_S:g} s: the "
                           "cluster lacks the CPUs/GPUs asked for (lower --workers / --gpus-per-worker)")
        self.workers: dict[int, dict[str, Any]] = {
            i: {**info, "units": 0, "tasks": 0, "busy_s": 0.0, "restarts": 0} for i, info in enumerate(ray.get(infos))}
        self.pool = ActorPool(self.actors)
        self.groups = 0
        self.bar: Any = None
        self.timing_worker: dict[str, Any] | None = None
        for w in self.workers.values():
            log(f"ray: worker {w['index']} on {w['host']} (pid {w['pid']}, {w['processor']}, {w['threads']} "
                f"thread(s), {w['device']})")

    # ------------------------------------------------------------------ set-up
    def _fit(self, cpus: float, gpus: float) -> int:
        res = self.ray.cluster_resources()
        n = int(res.get("CPU", 1) // cpus) if cpus > 0 else 1
        if gpus > 0:
            n = min(n, int(res.get("GPU", 0) // gpus))
        return max(1, n)

    def _check_resources(self, n: int, cpus: float, gpus: float) -> None:
        res = self.ray.cluster_resources()
        for what, per, flag in (("CPU", cpus, "--workers"), ("GPU", gpus, "--gpus-per-worker")):
            have = float(res.get(what, 0))
            if per > 0 and n * per > have:
                self.close()
                raise InputError(f"{n} Ray worker(s) × {per:g} {what} need {n * per:g} {what}s but the cluster has "
                                 f"{have:g} (lower {flag}, or add nodes: `ray start --address HEAD:6379`)")

    # ------------------------------------------------------------------ units
    def _sizes(self, job: MethodJob) -> list[int]:
        sizes = [self.cfg.batch_size if is_batchable(job.inverter) else 1]
        embedder = getattr(job.inverter, "embedder", None)
        if embedder is not None and callable(getattr(job.inverter, "refine", None)):
            sizes.append(self.cfg.batch_size if is_batchable(embedder) else 1)
        return sizes

    def _embedding_keys(self, job: MethodJob, units: list[WorkUnit]) -> list[str]:
        from ..composition import ComposedInverter
        from .embeddings import embedder_units

        if not isinstance(job.inverter, ComposedInverter):
            return []
        return [u.key for u in embedder_units(job.inverter, job.domain, units)]

    def _task(self, job: MethodJob, split: str, units: list[WorkUnit], positions: list[int]) -> dict[str, Any]:
        self.groups += 1
        images = job.images[split][positions]
        return {"group": self.groups, "split": split, "method": job.method, "options": job.options,
                "domain": self._domain_spec(job), "version": str(job.inverter.version), "weights": job.weights,
                "units": [u.to_dict() for u in units], "keys": [u.key for u in units],
                "images": torch.as_tensor(images).float(),
                "files": seed_files(job.cache, [u.key for u in units], self._embedding_keys(job, units))}

    def _domain_spec(self, job: MethodJob) -> str:
        """What a worker passes to `registry.get_domain`: the registered name, or a domain file's absolute path
        (the file and what it names must exist at that path on every worker)."""
        file = getattr(getattr(job.domain, "spec", None), "file", None)
        return str(Path(file).resolve()) if file is not None else job.domain.name

    def run(self, job: MethodJob) -> list[dict[str, Any]]:
        """Records of every unit of `job` (see Executor.run); groups already complete in the cache are not sent."""
        start = time.perf_counter()
        records: dict[str, dict[str, Any]] = {}
        tasks: dict[int, dict[str, Any]] = {}
        total = 0
        for split, units in job.units.items():
            total += len(units)
            for group in shipping_groups(units, self._sizes(job)):
                recs = [job.cache.load(units[i].key) for i in group]
                if all(r is not None and not any(job.evaluator.missing(r, split)) for r in recs):
                    records.update((units[i].key, r) for i, r in zip(group, recs))  # type: ignore[misc]
                    continue
                task = self._task(job, split, [units[i] for i in group], group)
                tasks[task["group"]] = task
        todo = sum(len(t["units"]) for t in tasks.values())
        tracker = zprogress.active()
        if tracker is not None:
            tracker.advance(total - todo, computed=False)
        bar = self._bar(todo, f"{job.method} {job.domain.name}")
        before = {i: (w["units"], w["busy_s"]) for i, w in self.workers.items()}
        errors = self._dispatch(tasks, job, records, bar, tracker)
        self._log_throughput(job, todo, time.perf_counter() - start, before)
        if errors:
            raise ZooError(f"{len(errors)} of {len(tasks)} unit group(s) failed on the Ray workers (not retried; "
                           f"the other units are saved): {errors[0]}")
        return [records[u.key] for units in job.units.values() for u in units]

    def _dispatch(self, tasks: dict[int, dict[str, Any]], job: MethodJob, records: dict[str, dict[str, Any]],
                  bar: Any, tracker: zprogress.BenchProgress | None) -> list[str]:
        """Submit `tasks` to the pool and commit what comes back; one error line per failed group. Groups whose
        worker died for good (past Ray's restarts) are submitted again to the workers left, once per round."""
        errors: list[str] = []
        pending = dict(tasks)
        lost: list[str] = []
        for _ in range(1 + len(self.actors)):
            if not pending or (lost and not self.pool.has_free()):
                break
            for task in pending.values():
                self.pool.submit(lambda actor, t: actor.run.remote(t), task)
            lost = []
            while self.pool.has_next():
                try:
                    res = self.pool.get_next_unordered()
                except self.ray.exceptions.RayError as exc:  # a worker gone past its restarts
                    lost.append(one_line(exc))
                    continue
                task = pending.pop(res["group"])
                n = len(task["units"])
                self._account(res, n)
                where = f"{job.method} on {job.domain.name}/{task['split']} images " \
                        f"{[u['index'] for u in task['units']]}"
                if res["error"] is not None:
                    errors.append(f"{where}: {res['error']}")
                    self.log(f"error: {where} failed on worker {res['worker']['index']} "
                             f"({res['worker']['host']}): {res['error']}")
                else:
                    commit_files(job.cache, res["files"])
                    records.update(zip(task["keys"], res["records"]))
                bar.update(n)
                if tracker is not None:
                    tracker.advance(n)
            if lost:
                self.log(f"warning: {len(lost)} Ray worker(s) died for good ({lost[0]}); their units go to the "
                         "workers left")
        errors += [f"{job.method} on {job.domain.name}/{t['split']} images {[u['index'] for u in t['units']]}: "
                   f"no worker left to run them ({lost[0] if lost else 'every worker died'})" for t in pending.values()]
        return errors

    def _account(self, res: dict[str, Any], n: int) -> None:
        info = res["worker"]
        w = self.workers.setdefault(info["index"], {**info, "units": 0, "tasks": 0, "busy_s": 0.0, "restarts": 0})
        if info["pid"] != w["pid"]:
            w["restarts"] += 1
            self.log(f"ray: worker {info['index']} was restarted (pid {w['pid']} -> {info['pid']} on {info['host']}); "
                     "its unfinished units were run again")
            w.update(pid=info["pid"], host=info["host"], processor=info["processor"])
        w["units"] += n
        w["tasks"] += 1
        w["busy_s"] += float(res["seconds"])

    def _bar(self, todo: int, desc: str) -> Any:
        """The one driver bar over every unit the run computes (its total grows with each method planned)."""
        if self.bar is None:
            self.bar = tqdm(total=0, desc="ray units", unit="img", leave=False,
                            disable=not zprogress.bars_enabled(self.cfg.progress))
        self.bar.total += todo
        self.bar.set_description(f"ray {desc}")
        self.bar.refresh()
        return self.bar

    def _log_throughput(self, job: MethodJob, todo: int, wall: float,
                        before: dict[int, tuple[int, float]]) -> None:
        if not todo:
            return
        parts = []
        for i, w in sorted(self.workers.items()):
            units, busy = w["units"] - before.get(i, (0, 0.0))[0], w["busy_s"] - before.get(i, (0, 0.0))[1]
            if units:
                parts.append(f"worker {i} ({w['host']}): {units} units, {units / busy:.3g} units/s" if busy > 0
                             else f"worker {i}: {units} units")
        self.log(f"ray: {job.method} on {job.domain.name}: {todo} units in {wall:.1f} s ({todo / wall:.3g} units/s); "
                 + "; ".join(parts))

    # ------------------------------------------------------------------ timing
    def time(self, job: MethodJob, images: torch.Tensor) -> dict[str, Any]:
        """Latency / throughput measured on the first live worker (the same one for the whole run, so a board's
        times come from one machine) and stored in the driver's cache with that worker's host and hardware."""
        task = {"method": job.method, "options": job.options, "domain": self._domain_spec(job),
                "version": str(job.inverter.version), "weights": job.weights}
        known = sorted(p.stem for p in (job.cache.root / "timing").glob("*.json"))
        last: Exception | None = None
        for actor in self.actors:
            try:
                rec = self.ray.get(actor.time.remote(task, torch.as_tensor(images).float(), self.cfg.warmup,
                                                     job.throughput_batch or self.cfg.throughput_batch or 1,
                                                     known))
            except self.ray.exceptions.RayActorError as exc:
                last = exc
                continue
            if rec.get("cached") and (hit := job.cache.load_timing(rec["key"])) is not None:
                return hit
            key = rec.pop("key")
            self.timing_worker = rec["worker"]
            job.cache.save_timing(key, rec)
            return {**rec, "key": key}
        raise ZooError(f"no Ray worker left to time {job.method}: {one_line(last) if last else 'none started'}")

    # ------------------------------------------------------------------ end
    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "ray": self.ray.__version__, "address": self.cfg.address,
                "cpus_per_worker": self.cfg.cpus_per_worker, "gpus_per_worker": self.cfg.gpus_per_worker,
                "threads": self.settings.threads, "device": self.settings.device, "max_restarts": MAX_RESTARTS,
                "max_task_retries": MAX_TASK_RETRIES,
                "workers": [dict(w, units_per_s=w["units"] / w["busy_s"] if w["busy_s"] > 0 else None)
                            for _, w in sorted(getattr(self, "workers", {}).items())],
                "timing_worker": self.timing_worker}

    def close(self) -> None:
        if getattr(self, "bar", None) is not None:
            self.bar.close()
            self.bar = None
        for actor in getattr(self, "actors", []):
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(actor)
        self.actors = []
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False
