"""The run's result file (`results.json`), its per-image rows (`rows.jsonl`) and the aggregates.

Schema (version 1; TypedDicts below): `schema_version`, `zoo_version`, `run_id`, `created_at`, `finished_at`,
`git` {commit, branch, dirty} or null, `env` {python, torch, cuda, device, device_name, threads, platform, ...},
`config` (the resolved BenchConfig), `leaderboard_eligible`, `methods` {name: card, options, weights sha256 per
domain}, `domains` {name: card, splits {split: n, data_sha256}, evaluation}, `metrics` {name: higher_is_better,
version}, `editors` {name: card}, `aggregates` [tidy rows per (method, domain, split, metric)], `timing` [per
(method, domain)], `edit_aggregates` [per (method, domain, split, editor, direction, step, measure)],
`failures`, `inputs` (folder messages), `grids`, `rows_path` (relative to the run folder), `outputs`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import torch

from ..errors import InputError
from .cache import atomic_write_bytes, atomic_write_json, read_json

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
ROWS_FILE = "rows.jsonl"


class Aggregate(TypedDict):
    """Mean ± standard error of a metric over the images of (method, domain, split)."""

    method: str
    domain: str
    split: str
    metric: str
    higher_is_better: bool
    status: str  # "ok" | "unavailable" | "missing"
    mean: float | None
    stderr: float | None
    n: int
    n_expected: int
    reason: str | None


class EditAggregate(TypedDict):
    """Mean ± standard error of an edit measure ("id" kept, or "attribute" change of `scorer`) at one step."""

    method: str
    domain: str
    split: str
    editor: str
    direction: str
    step: float
    measure: str
    scorer: str | None
    mean: float | None
    stderr: float | None
    n: int


class ResultsFile(TypedDict, total=False):
    schema_version: int
    zoo_version: str
    run_id: str
    created_at: str
    finished_at: str
    git: dict[str, Any] | None
    env: dict[str, Any]
    config: dict[str, Any]
    leaderboard_eligible: bool
    methods: dict[str, Any]
    domains: dict[str, Any]
    metrics: dict[str, Any]
    editors: dict[str, Any]
    aggregates: list[Aggregate]
    timing: list[dict[str, Any]]
    edit_aggregates: list[EditAggregate]
    failures: list[dict[str, Any]]
    inputs: dict[str, Any] | None
    grids: dict[str, Any]
    rows_path: str
    outputs: dict[str, str]


# ---------------------------------------------------------------------------------------------------- statistics
def mean_stderr(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, standard error = sample std / sqrt(n), n) over the finite values; NaN/None are dropped."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return None, None, 0
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None
    return statistics.fmean(xs), se, len(xs)


# ---------------------------------------------------------------------------------------------------- rows
def unit_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat per-image rows: one 'reconstruction' row per unit (metric columns; on a posed split `frame` is
    'unaligned', the metrics compare against the image `target_sha256` and `aligned_<metric>` columns hold the
    aligned-frame scores) and one 'edit' row per edit."""
    rows: list[dict[str, Any]] = []
    for rec in records:
        u = rec["unit"]
        base = {"method": u["method"], "domain": u["domain"], "split": u["split"], "index": u["index"],
                "file": Path(u["source"]).name if u.get("source") else None, "image_sha256": u["image_sha256"],
                "frame": rec.get("frame"), "target_sha256": rec.get("target_sha256", u["image_sha256"]),
                "key": rec.get("key")}
        scores = {m: s.get("value") for m, s in rec.get("scores", {}).items()}
        rows.append({"kind": "reconstruction", **base, "seconds": rec.get("seconds"),
                     "batch_size": rec.get("batch_size"), **scores})
        for e in rec.get("edits", {}).values():
            attrs = {f"attr.{s}": a.get("delta") for s, a in e.get("attributes", {}).items()}
            rows.append({"kind": "edit", **base, "editor": e["editor"], "direction": e["direction"],
                         "step": e["step"], "id": e.get("id"), "change": e.get("change"),
                         "change_region": e.get("change_region"), **attrs})
    return rows


def write_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """JSON Lines, written atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
    atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------------- aggregates
def aggregate_scores(records: Sequence[Mapping[str, Any]], groups: Iterable[tuple[str, str, str, int]],
                     metrics: Mapping[str, bool], unavailable: Mapping[str, Mapping[str, str]]) -> list[Aggregate]:
    """One Aggregate per (method, domain, split) in `groups` (with the expected image count) and metric.

    metrics: name -> higher_is_better; unavailable: domain -> {metric: reason}.
    """
    by_group: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for rec in records:
        u = rec["unit"]
        by_group.setdefault((u["method"], u["domain"], u["split"]), []).append(rec)
    out: list[Aggregate] = []
    for method, domain, split, n_expected in groups:
        recs = by_group.get((method, domain, split), [])
        for metric, hib in metrics.items():
            reason = unavailable.get(domain, {}).get(metric)
            if reason is not None:
                out.append(Aggregate(method=method, domain=domain, split=split, metric=metric, higher_is_better=hib,
                                     status="unavailable", mean=None, stderr=None, n=0, n_expected=n_expected,
                                     reason=reason))
                continue
            mean, se, n = mean_stderr(r.get("scores", {}).get(metric, {}).get("value") for r in recs)
            status = "ok" if n else "missing"
            scored = sum(1 for r in recs if metric in r.get("scores", {}))
            why = "no finite per-image score" if not n else (None if n >= scored else
                                            f"{scored - n} of {scored} per-image scores undefined (NaN), dropped")
            out.append(Aggregate(method=method, domain=domain, split=split, metric=metric, higher_is_better=hib,
                                 status=status, mean=mean, stderr=se, n=n, n_expected=n_expected, reason=why))
    return out


def aggregate_edits(records: Sequence[Mapping[str, Any]]) -> list[EditAggregate]:
    """Mean ± stderr of ID kept, image change and each attribute change per (method, domain, split, editor,
    direction, step)."""
    groups: dict[tuple, list[float | None]] = {}
    for rec in records:
        u = rec["unit"]
        for e in rec.get("edits", {}).values():
            head = (u["method"], u["domain"], u["split"], e["editor"], e["direction"], float(e["step"]))
            groups.setdefault((*head, "id", None), []).append(e.get("id"))
            groups.setdefault((*head, "change", None), []).append(e.get("change"))
            if e.get("change_region") is not None:
                groups.setdefault((*head, "change_region", None), []).append(e.get("change_region"))
            for s, a in e.get("attributes", {}).items():
                groups.setdefault((*head, "attribute", s), []).append(a.get("delta"))
    out: list[EditAggregate] = []
    for (method, domain, split, editor, direction, step, measure, scorer), values in sorted(
            groups.items(), key=lambda kv: tuple("" if v is None else v for v in kv[0])):
        mean, se, n = mean_stderr(values)
        out.append(EditAggregate(method=method, domain=domain, split=split, editor=editor, direction=direction,
                                 step=step, measure=measure, scorer=scorer, mean=mean, stderr=se, n=n))
    return out


def unit_seconds(records: Sequence[Mapping[str, Any]], method: str, domain: str) -> dict[str, Any]:
    """Mean ± stderr of the per-image seconds the units reported (batched methods: batch time / batch size), and
    the hosts that computed them (several with a distributed executor: then they mix machines)."""
    mine = [r for r in records if r["unit"]["method"] == method and r["unit"]["domain"] == domain]
    mean, se, n = mean_stderr(r.get("seconds") for r in mine)
    return {"mean_s": mean, "stderr_s": se, "n": n, "hosts": sorted({str(r["host"]) for r in mine if r.get("host")})}


MACHINE_FIELDS = ("host", "processor", "device", "device_name", "threads")


def timing_machines(timing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The distinct machines (host, CPU model, device, device name, threads) the latency / throughput records were
    measured on, each with the methods timed there; more than one means a board's times are not like with like.
    A record without a host (older runs) joins the one host that has the same other fields, if there is one."""
    def others(t: Mapping[str, Any]) -> str:
        return json.dumps([t.get(k) for k in MACHINE_FIELDS[1:]], default=str)

    hosts: dict[str, set[str]] = {}
    for t in timing:
        if t.get("host"):
            hosts.setdefault(others(t), set()).add(str(t["host"]))
    out: dict[str, dict[str, Any]] = {}
    for t in timing:
        same = hosts.get(others(t), set())
        machine = {k: t.get(k) for k in MACHINE_FIELDS}
        if not machine["host"] and len(same) == 1:  # an older record without a host: the one host with its hardware
            machine["host"] = next(iter(same))
        entry = out.setdefault(json.dumps(machine, sort_keys=True, default=str), {**machine, "methods": []})
        entry["methods"].append(f"{t.get('method')} on {t.get('domain')}")
    return list(out.values())


def machines_line(machines: Sequence[Mapping[str, Any]]) -> str:
    """'host-a (Xeon …, cpu, 1 threads): psp on peeps; host-b (…): e4e on peeps'."""
    return "; ".join(f"{m.get('host') or '?'} ({m.get('device_name') or m.get('processor')}, {m.get('device')}, "
                     f"{m.get('threads')} threads): {', '.join(m.get('methods', []))}" for m in machines)


# ---------------------------------------------------------------------------------------------------- provenance
def environment(device: str) -> dict[str, Any]:
    """Python, torch, CUDA, device, threads and platform of this process, plus the loaded plugins."""
    from .. import plugins

    dev = torch.device(device)
    env: dict[str, Any] = {
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(), "platform": platform.platform(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(), "load": machine_load(),
        "cpu_freq": cpu_frequency(),
    }
    try:
        env["plugins"] = [{k: p[k] for k in ("name", "distribution", "version", "status")}
                          for p in plugins.plugin_info()]
    except Exception:  # noqa: BLE001 - provenance must never break a run
        env["plugins"] = []
    return env


def usable_cores() -> int:
    """CPU cores this process may run on (sched_getaffinity where available, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_load() -> dict[str, Any]:
    """{load_avg: [1, 5, 15 min] or None, cores, busy}: busy when the 1-minute load average exceeds the usable
    cores (other processes compete for them: timings are then not leaderboard-eligible). The load counts this
    process's own running threads too."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # not available on this platform
        load = None
    cores = usable_cores()
    return {"load_avg": load, "cores": cores, "busy": bool(load is not None and load[0] > cores)}


def cpu_frequency() -> dict[str, Any] | None:
    """{current_mhz (mean over cores), min_mhz, max_mhz, governor, source} from cpufreq in /sys, else the 'cpu MHz'
    lines of /proc/cpuinfo (current only); None where neither exists."""
    base = Path("/sys/devices/system/cpu")
    cur, lo, hi = [], [], []
    for cpu in sorted(base.glob("cpu[0-9]*/cpufreq")):
        def khz(name: str, folder: Path = cpu) -> float | None:
            try:
                return int((folder / name).read_text().strip()) / 1000
            except (OSError, ValueError):
                return None
        for lst, name in ((cur, "scaling_cur_freq"), (lo, "cpuinfo_min_freq"), (hi, "cpuinfo_max_freq")):
            v = khz(name)
            if v is not None:
                lst.append(v)
    if cur:
        try:
            governor = (base / "cpu0" / "cpufreq" / "scaling_governor").read_text().strip()
        except OSError:
            governor = None
        return {"current_mhz": round(statistics.fmean(cur), 1), "min_mhz": min(lo) if lo else None,
                "max_mhz": max(hi) if hi else None, "governor": governor, "source": "cpufreq"}
    try:
        mhz = [float(line.split(":", 1)[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.lower().startswith("cpu mhz")]
    except (OSError, ValueError):
        mhz = []
    if mhz:
        return {"current_mhz": round(statistics.fmean(mhz), 1), "min_mhz": None, "max_mhz": None, "governor": None,
                "source": "/proc/cpuinfo"}
    return None


def timing_busy(timing: Sequence[Mapping[str, Any]]) -> list[str]:
    """Methods whose timing ran on a busy machine (load before or after above the cores), e.g. ['psp (load 3.1 on 2
    cores)']; records without a load (older runs) are not counted."""
    out = []
    for t in timing:
        loads = [t.get(k) or {} for k in ("load_before", "load_after")]
        busy = [x for x in loads if x.get("busy")]
        if busy:
            worst = max(x["load_avg"][0] for x in busy)
            out.append(f"{t.get('method')} on {t.get('domain')} (load {worst:g} on {busy[0].get('cores')} cores)")
    return out


def cpu_name() -> str:
    """The CPU model ('model name' in /proc/cpuinfo on Linux), else platform.processor() or the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_info(path: str | Path | None = None) -> dict[str, Any] | None:
    """{commit, branch, dirty} of the git work tree holding `path` (default: the zoo package), else None."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=20,
                               check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    if git("rev-parse", "--show-toplevel") is None:
        return None
    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(status) if status is not None else None}


# ---------------------------------------------------------------------------------------------------- files
def write_results(run_dir: Path, results: Mapping[str, Any]) -> Path:
    path = run_dir / RESULTS_FILE
    atomic_write_json(path, results)
    return path


def load_run(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(results, run folder) from a run folder or its results JSON; InputError with the fix otherwise."""
    p = Path(path)
    file = p / RESULTS_FILE if p.is_dir() else p
    if not file.exists():
        hint = " (the run may not have finished: rerun `zoo bench --out` on it to resume)" if p.is_dir() else ""
        raise InputError(f"no results file at {file}{hint}")
    data = read_json(file)
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputError(f"{file} is not a zoo bench results file")
    if data["schema_version"] > SCHEMA_VERSION:
        raise InputError(f"{file} has schema version {data['schema_version']}; this zoo reads up to "
                         f"{SCHEMA_VERSION} (upgrade inversion-zoo)")
    return data, file.parent
