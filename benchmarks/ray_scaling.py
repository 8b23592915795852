"""The same `zoo bench` with the in-process executor and with Ray at 1, 2, ... workers (issue 15): wall time,
units per second and the overhead per unit; writes `benchmarks/ray_scaling.json` and `benchmarks/ray_scaling.md`.

Each configuration runs `zoo bench` as a fresh process in a fresh run folder (nothing resumed), with
`ZOO_PROGRESS_INTERVAL=0`, and timestamps its progress lines as they arrive:

* wall: the whole process (imports, plan, for Ray: starting the local cluster and the actors, units, timing, files);
* start-up: process start -> the first method's plan line (for Ray this includes `ray.init` and the actors);
* units phase: sum over methods of (plan line -> timing line), i.e. the driver's wall time for the units, with the
  actors' first-use model loading inside it (the in-process run loads weights before its plan line);
* units/s = units / units phase; speed-up = in-process (1 thread) units phase / this units phase;
* overhead per unit = (cores x units phase - in-process 1-thread units phase) / units, cores = Ray workers (1 thread
  each) or in-process threads: the extra core-seconds each unit costs (0 = perfect scaling; for 1 Ray worker:
  shipping, the scratch cache, model loading in the actor).

Every Ray run's aggregates are checked against the in-process run's (they must be equal exactly).

Usage::

    python benchmarks/ray_scaling.py                           # this machine: in-process, Ray 1 and 2 workers
    python benchmarks/ray_scaling.py --workers 1,2,4,8 --address auto    # a running cluster (`ray start --head`)
    python benchmarks/ray_scaling.py -- --methods e4e --limit 32         # args after -- replace the workload
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKLOAD = ["--quick", "--methods", "optim_wplus,pti", "--limit", "6", "--batch-size", "2", "--editors", "none",
            "--no-report", "--no-progress"]
PLAN = re.compile(r"^bench: method (\d+)/\d+ (.+?), unit \d+/(\d+), elapsed")
TIMING = re.compile(r"^bench: method (\d+)/\d+ .+?, timing ")


def zoo_command() -> list[str]:
    script = Path(sys.executable).with_name("zoo")
    if script.exists():
        return [str(script)]
    found = shutil.which("zoo")
    return [found] if found else [sys.executable, "-c", "from zoo.cli import main; main()"]


def source_digest() -> str:
    """sha256 over the zoo sources (zoo/ and plugins/ *.py): a change between runs makes their numbers differ."""
    h = hashlib.sha256()
    for p in sorted([*HERE.parent.glob("zoo/**/*.py"), *HERE.parent.glob("plugins/**/*.py")]):
        h.update(p.relative_to(HERE.parent).as_posix().encode() + p.read_bytes())
    return h.hexdigest()[:16]


def scores(rows_file: Path) -> dict[str, Any]:
    """Per-image metric values of rows.jsonl keyed by (method, split, index, metric)."""
    out = {}
    for line in rows_file.read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "reconstruction":
            for k, v in r.items():
                if k not in ("kind", "method", "domain", "split", "index", "file", "image_sha256", "key", "seconds",
                             "batch_size"):
                    out[f"{r['method']}|{r['split']}|{r['index']}|{k}"] = v
    return out


def run_one(name: str, args: list[str], workload: list[str], cores: int) -> dict[str, Any]:
    """Run `zoo bench` once; wall, start-up and units-phase seconds from the timestamps of its progress lines."""
    work = Path(tempfile.mkdtemp(prefix=f"zoo-ray-scaling-{name}-"))
    out = work / "run"
    cmd = [*zoo_command(), "bench", *workload, *args, "--out", str(out)]
    env = dict(os.environ, ZOO_PROGRESS_INTERVAL="0")
    print(f"[{name}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    digest = source_digest()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    plans: dict[str, float] = {}
    timings: dict[str, float] = {}
    lines: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        now = time.perf_counter() - start
        line = line.rstrip("\n")
        lines.append(line)
        if (m := PLAN.match(line)) and m.group(1) not in plans:
            plans[m.group(1)] = now
        elif (m := TIMING.match(line)) and m.group(1) not in timings:
            timings[m.group(1)] = now
        if line.startswith(("ray:", "error:", "Error:")):
            print(f"  {line}", file=sys.stderr, flush=True)
    proc.wait()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"[{name}] zoo bench failed ({proc.returncode}): {lines[-3:]}")
    results = json.loads((out / "results.json").read_text())
    per_image = scores(out / "rows.jsonl")
    shutil.rmtree(work, ignore_errors=True)
    units = sum({(a["method"], a["split"]): a["n_expected"] for a in results["aggregates"]}.values())
    units_s = sum(timings[k] - plans[k] for k in plans)
    ex = results.get("executor") or {}
    return {"name": name, "command": ["zoo", "bench", *workload, *args, "--out", "<tmp>"],
            "wall_s": round(wall, 2), "startup_s": round(min(plans.values()), 2), "units_phase_s": round(units_s, 2),
            "units": units, "units_per_s": round(units / units_s, 4), "workers": len(ex.get("workers", [])) or 1,
            "cores": cores,
            "executor": ex, "aggregates": results["aggregates"], "scores": per_image, "source": digest,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def summarise(runs: list[dict[str, Any]]) -> None:
    """Speed-up and overhead per unit relative to the first run (in-process, 1 thread); equality of aggregates."""
    base = runs[0]
    for r in runs:
        r["speedup"] = round(base["units_phase_s"] / r["units_phase_s"], 3)
        r["overhead_per_unit_s"] = round((r["cores"] * r["units_phase_s"] - base["units_phase_s"]) / r["units"], 3)
        r["aggregates_equal_inprocess"] = r["aggregates"] == base["aggregates"]
        diffs = [abs(v - base["scores"][k]) for k, v in r["scores"].items()
                 if isinstance(v, float) and isinstance(base["scores"].get(k), float) and v != base["scores"][k]]
        r["scores_differing"] = len(diffs)
        r["scores_max_abs_diff"] = max(diffs, default=0.0)
        r["same_source_as_inprocess"] = r["source"] == base["source"]
    for r in runs:
        r.pop("aggregates")
        r.pop("scores")


def equality(r: dict[str, Any]) -> str:
    if r["aggregates_equal_inprocess"]:
        return "yes (exact)"
    why = "" if r["same_source_as_inprocess"] else "; zoo sources changed between the runs"
    return f"no: {r['scores_differing']} per-image values differ, max {r['scores_max_abs_diff']:.2g}{why}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# Ray scaling of `zoo bench` ({report['created_at'][:10]})", "",
             f"Machine: {m['processor']}, {m['cpu_count']} cores, torch {m['torch']}, ray {m['ray']}; "
             f"load average at start {m['load_average'][0]:g}. Workload: `zoo bench {' '.join(report['workload'])}`.",
             "", "| run | cores | wall (s) | start-up (s) | units phase (s) | units | units/s | speed-up | "
             "overhead / unit (s) | aggregates = in-process 1 thread | load before → after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['name']} | {r['cores']} | {r['wall_s']:.1f} | {r['startup_s']:.1f} | "
                     f"{r['units_phase_s']:.1f} | {r['units']} | {r['units_per_s']:.3f} | {r['speedup']:.2f}× | "
                     f"{r['overhead_per_unit_s']:+.2f} | {equality(r)} | "
                     f"{r['load_before'][0]:g} → {r['load_after'][0]:g} |")
    lines += ["", "Definitions: benchmarks/ray_scaling.py (units phase = the driver's wall time from each method's "
              "plan to its timing; overhead / unit = (cores × units phase − in-process 1-thread units phase) / units).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,2", help="Ray worker counts to run (comma-separated)")
    ap.add_argument("--address", help="a running Ray cluster (auto / HOST:PORT); default: a local one per run")
    ap.add_argument("--threads2", action="store_true", help="also run in-process with 2 torch threads")
    ap.add_argument("--out", default=str(HERE / "ray_scaling"), help="output path without suffix (.json, .md)")
    ap.add_argument("workload", nargs="*", help="zoo bench arguments replacing the default workload (after --)")
    ns = ap.parse_args()
    workload = ns.workload or WORKLOAD
    import ray
    import torch

    from zoo.bench.results import cpu_name

    load_start = [round(x, 2) for x in os.getloadavg()]
    runs = [run_one("in-process, 1 thread", ["--threads", "1"], workload, 1)]
    if ns.threads2:
        runs.append(run_one("in-process, 2 threads", ["--threads", "2"], workload, 2))
    for n in (int(x) for x in ns.workers.split(",")):
        extra = ["--executor", "ray", "--workers", str(n), "--threads", "1"]
        runs.append(run_one(f"ray, {n} worker{'s' if n > 1 else ''}", extra + (["--address", ns.address]
                                                                             if ns.address else []), workload, n))
    summarise(runs)
    report = {"created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"processor": cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__,
                          "load_average": load_start},
              "workload": workload, "runs": runs}
    Path(f"{ns.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    Path(f"{ns.out}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
