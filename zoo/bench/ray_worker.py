"""The worker side of `zoo bench --executor ray`: one `UnitWorker` per Ray actor (wrapped with `ray.remote` by
`ray_executor`; this module does not import Ray).

A worker builds each inverter, domain, metric and editor from names once (like `units.execute_units`) and keeps
them for the actor's life. A task is one shipping group of whole fixed blocks of units with their images and the
driver's cache files for them; the worker runs the existing unit runner (`run_units`) against a private scratch
`ResultCache` seeded with those files and sends back the files the runner wrote (records, tensors, shared
embeddings). It never touches the driver's cache: the driver alone commits them (no shared filesystem needed).
A unit that raises is returned as an error (Ray does not retry application errors); only a dead worker process
makes Ray retry the task (actor `max_restarts` / `max_task_retries`).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ZooError
from ..plugins import one_line
from .cache import ResultCache
from .results import cpu_name
from .units import WorkUnit, canonical_json, run_units

if TYPE_CHECKING:
    from ..domain import Domain
    from ..inverter import Inverter
    from .evaluate import Evaluator


@dataclass(frozen=True)
class WorkerSettings:
    """What every task of a run shares: evaluation (metric / editor names, steps, splits), device, torch threads,
    batch size and seed."""

    metrics: tuple[str, ...]
    editors: tuple[str, ...]
    steps: tuple[float, ...]
    edit_splits: tuple[str, ...]
    editors_skipped: bool
    device: str
    threads: int
    batch_size: int
    seed: int


@lru_cache(maxsize=1)
def _processor() -> str:
    return cpu_name()


def machine_info() -> dict[str, Any]:
    """Host name, process id, CPU model and torch threads of this process."""
    return {"host": platform.node(), "pid": os.getpid(), "processor": _processor(),
            "threads": torch.get_num_threads()}


def read_files(root: Path) -> dict[str, bytes]:
    """Every finished file under `root` (relative POSIX path -> bytes); temporary `.*` files are skipped."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def write_files(root: Path, files: dict[str, bytes]) -> None:
    """Plain writes into a private scratch folder (the driver's commit is the atomic one)."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class UnitWorker:
    """One Ray actor: `num_cpus` / `num_gpus` from the executor, `torch.set_num_threads(settings.threads)` set
    explicitly (Ray's OMP default of 1 thread per CPU is not relied on)."""

    def __init__(self, index: int, settings: WorkerSettings) -> None:
        torch.set_num_threads(settings.threads)
        self.index = index
        self.settings = settings
        self.jobs: dict[str, tuple[Inverter, Evaluator, Domain]] = {}

    def info(self) -> dict[str, Any]:
        """{index, host, pid, processor, threads, device} of this actor's process."""
        return {"index": self.index, **machine_info(), "device": self.settings.device}

    def _job(self, method: str, options: dict[str, Any], domain_spec: str, version: str,
             weights: dict[str, str]) -> tuple[Inverter, Evaluator, Domain]:
        """The prepared inverter and evaluator of (method, options, domain), built on first use and kept."""
        ident = canonical_json([method, options, domain_spec])
        if ident in self.jobs:
            return self.jobs[ident]
        from .. import registry
        from .evaluate import Evaluator
        from .runner import domain_metrics

        s = self.settings
        domain = registry.get_domain(domain_spec)
        inverter = registry.create_inverter(method, dict(options), device=s.device)
        if str(inverter.version) != version or inverter.weights_sha256(domain) != weights:
            raise ZooError(f"'{method}' on worker {platform.node()} (version {inverter.version}) is not the one the "
                           f"driver planned with (version {version} / other weights): install the same zoo and "
                           "weights on every worker")
        metrics = {m: registry.create_metric(m, device=s.device) for m in s.metrics}
        evaluator = Evaluator(domain, domain_metrics(domain, metrics), {e: registry.create_editor(e)
                                                                          for e in s.editors},
                              list(s.steps), list(s.edit_splits), s.device, editors_skipped=s.editors_skipped)
        inverter.prepare(domain)
        self.jobs[ident] = (inverter, evaluator, domain)
        return self.jobs[ident]

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        """Run one shipping group. task: {group, method, options, domain, version, weights, units (dicts),
        images [N, 3, R, R], files (cache-relative path -> bytes)}. Returns {group, records, files (new or
        changed), error, worker, seconds}; `error` is a one-line message and `records` None when the group
        raised."""
        start = time.perf_counter()
        out: dict[str, Any] = {"group": task["group"], "records": None, "files": {}, "error": None}
        try:
            inverter, evaluator, _ = self._job(task["method"], task["options"], task["domain"], task["version"],
                                               task["weights"])
            units = [WorkUnit.from_dict(d) for d in task["units"]]
            with tempfile.TemporaryDirectory(prefix="zoo-ray-") as tmp:
                root = Path(tmp)
                write_files(root, task["files"])
                records = run_units(units, inverter, evaluator, images=task["images"], cache=ResultCache(root),
                                    batch_size=self.settings.batch_size, seed=self.settings.seed, progress=False)
                seeded = task["files"]
                out["files"] = {k: v for k, v in read_files(root).items() if seeded.get(k) != v}
            out["records"] = records
        except Exception as exc:  # noqa: BLE001 - a deterministic failure goes back to the driver, once
            out["error"] = one_line(exc)
        out.update(worker=self.info(), seconds=time.perf_counter() - start)
        return out

    def time(self, task: dict[str, Any], images: torch.Tensor, warmup: int, throughput_batch: int,
             known: list[str]) -> dict[str, Any]:
        """`time_method` of the task's method on `images` here; {key, cached: True} when the driver already has
        the record of that timing key (`known`), else the record with key, host and worker."""
        from .timing import time_method, timing_key

        inverter, _, domain = self._job(task["method"], task["options"], task["domain"], task["version"],
                                        task["weights"])
        key = timing_key(inverter, domain, task["weights"], images, warmup, throughput_batch)
        if key in known:
            return {"key": key, "cached": True}
        record = time_method(inverter, domain, images, warmup=warmup, throughput_batch=throughput_batch,
                             weights=task["weights"], cache=None, progress=False)
        return {**record, "key": key, "worker": self.info()}
