"""`zoo bench`: benchmark inverters × domains × metrics with an editing sweep, resumable per image.

Modules: `config` (BenchConfig), `units` (work units, `run_units`), `executors` (where units run: in this process
or on Ray workers, `ray_executor` / `ray_worker`), `evaluate` (metrics and edits), `cache`
(crash-safe per-unit files), `timing` (latency / throughput), `inputs` (user image folders), `runner`
(`run_bench`), `results` (results.json, rows, aggregates), `report` / `plots` / `html` (leaderboards, figures,
HTML report), `compare` (run-to-run differences).
"""

from __future__ import annotations

from .cache import ResultCache
from .compare import REGRESSION_EXIT_CODE, compare_runs, regressions
from .config import BenchConfig
from .evaluate import EditTarget, Evaluator
from .report import render_run
from .results import SCHEMA_VERSION, load_run
from .runner import BenchOutcome, run_bench
from .units import WorkUnit, execute_units, make_units, run_units

__all__ = ["REGRESSION_EXIT_CODE", "SCHEMA_VERSION", "BenchConfig", "BenchOutcome", "EditTarget", "Evaluator",
           "ResultCache", "WorkUnit", "compare_runs", "execute_units", "load_run", "make_units", "regressions",
           "render_run", "run_bench", "run_units"]
