"""Where `zoo bench` runs its work units: in this process (the default) or on a Ray cluster (`--executor ray`).

`run_bench` plans each (method, domain) in the driver — inverter created and prepared, one `WorkUnit` per image
and split — and hands the plan to an executor as a `MethodJob`: `run(job)` returns one record per unit (in unit
order, every finished one in the run's `ResultCache`), `time(job, images)` measures latency and throughput.
Both executors compute the same fixed batch blocks (`units.block_groups`) with the same seeds, so their records
agree; `describe()` is stored in results.json (`executor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from .units import WorkUnit, run_units

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..domain import Domain
    from ..inverter import Inverter
    from .cache import ResultCache
    from .config import BenchConfig
    from .evaluate import Evaluator

EXECUTORS = ("inprocess", "ray")


@dataclass
class MethodJob:
    """One method on one domain, planned by the driver.

    units: split -> the units of that split (index = position in `images[split]`); images: split -> [N, 3, R, R]
    in [-1, 1] (a tensor or a domain file's lazy image set); weights: the method's weights sha256s on the domain;
    throughput_batch: the domain's own throughput batch size (`config.domain_settings`), None = the run's.
    """

    method: str
    options: dict[str, Any]
    inverter: Inverter
    domain: Domain
    evaluator: Evaluator
    units: dict[str, list[WorkUnit]]
    images: dict[str, Any]
    weights: dict[str, str]
    cache: ResultCache
    throughput_batch: int | None = None


class Executor(Protocol):
    name: str

    def run(self, job: MethodJob) -> list[dict[str, Any]]:
        """Records of every unit of `job` (all splits, in order); raises ZooError when some units failed
        (the others are committed to the cache first)."""

    def time(self, job: MethodJob, images: torch.Tensor) -> dict[str, Any]:
        """`timing.time_method` of the job's method on `images` [N, 3, R, R] (cached in `job.cache`)."""

    def describe(self) -> dict[str, Any]:
        """What ran the units (stored as results.json `executor`)."""

    def close(self) -> None:
        """Release workers (idempotent)."""


class InProcessExecutor:
    """Every unit in this process, split by split, through `run_units` (its own tqdm bar per method and split)."""

    name = "inprocess"

    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg

    def run(self, job: MethodJob) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for split, units in job.units.items():
            records += run_units(units, job.inverter, job.evaluator, images=job.images[split], cache=job.cache,
                                 batch_size=self.cfg.batch_size, seed=self.cfg.seed, progress=self.cfg.progress,
                                 desc=f"{job.method} {job.domain.name}/{split}")
        return records

    def time(self, job: MethodJob, images: torch.Tensor) -> dict[str, Any]:
        from .timing import time_method

        return time_method(job.inverter, job.domain, images, warmup=self.cfg.warmup,
                           throughput_batch=job.throughput_batch or self.cfg.throughput_batch or 1,
                           weights=job.weights, cache=job.cache,
                           progress=self.cfg.progress)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "threads": torch.get_num_threads()}

    def close(self) -> None:
        return None


def make_executor(cfg: BenchConfig, metrics: list[str], editors: list[str],
                  log: Callable[[str], None]) -> Executor:
    """The executor `cfg.executor` names ('inprocess' or 'ray'; Ray is imported only for 'ray').

    metrics / editors: the names the run evaluates with (workers build their own instances from them)."""
    if cfg.executor == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(cfg, metrics, editors, log)
    return InProcessExecutor(cfg)
