"""Measure the wall time of `zoo bench --quick` and of the default `zoo bench` on this machine (issue 4 budget:
quick <= 3 min, default <= 15 min on the 2-core CPU machine) and write `benchmarks/bench_budget.json`. With
`--only peeps3` / `--only both`: the default bench of the StyleGAN3 domain alone (issue 16: at most 8 extra minutes)
and `zoo bench --domains peeps,peeps3` (the default budget + 8 minutes).

Each run uses a fresh temporary run folder, so nothing is resumed from an earlier run. By default the user cache
($ZOO_HOME: rendered datasets, prepared weights) is used as it is; `--cold-cache` points ZOO_HOME at an empty
temporary folder to measure a first run on a fresh clone.

Usage::

    python benchmarks/bench_budget.py                 # both runs
    python benchmarks/bench_budget.py --only quick    # just `zoo bench --quick`
    python benchmarks/bench_budget.py --only both --output budget_sg3.json   # peeps + peeps3 (issue 16)
    python benchmarks/bench_budget.py --check -- --threads 2   # exit 1 when over budget; args after -- go to zoo bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BUDGETS_S = {"quick": 180.0, "default": 900.0, "peeps3": 480.0, "both": 900.0 + 480.0}
ARGS = {"quick": ["--quick"], "default": [], "peeps3": ["--domains", "peeps3"], "both": ["--domains", "peeps,peeps3"]}


def zoo_command() -> list[str]:
    """The `zoo` console script of this interpreter's environment, else `python -c 'from zoo.cli import main'`."""
    script = Path(sys.executable).with_name("zoo")
    if script.exists():
        return [str(script)]
    found = shutil.which("zoo")
    return [found] if found else [sys.executable, "-c", "from zoo.cli import main; main()"]


def run_one(name: str, extra: list[str], cold_cache: bool, keep: bool) -> dict[str, Any]:
    """Run `zoo bench` once in a fresh run folder and return its wall time and a summary of the results."""
    work = Path(tempfile.mkdtemp(prefix=f"zoo-budget-{name}-"))
    out = work / "run"
    env = dict(os.environ)
    if cold_cache:
        env["ZOO_HOME"] = str(work / "zoo_home")
    cmd = [*zoo_command(), "bench", *ARGS[name], "--out", str(out), "--no-progress", *extra]
    print(f"[{name}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    load_before = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    load_after = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    shown = ["<tmp>/run" if a == str(out) else a for a in cmd[len(zoo_command()):]]  # no machine paths
    record: dict[str, Any] = {"command": shown, "seconds": round(seconds, 2),
                              "budget_s": BUDGETS_S[name], "within_budget": seconds <= BUDGETS_S[name],
                              "exit_code": proc.returncode, "cold_cache": cold_cache,
                              "load_average_before": load_before, "load_average_after": load_after,
                              "stderr_tail": proc.stderr.strip().splitlines()[-5:]}
    results_file = out / "results.json"
    if results_file.exists():
        results = json.loads(results_file.read_text())
        record.update(methods=sorted(results.get("methods", {})), config={k: results["config"].get(k) for k in
                      ("limit", "steps", "batch_size", "device", "timing_images", "threads")},
                      domains={d: info.get("used_splits") for d, info in results.get("domains", {}).items()},
                      failures=results.get("failures", []),
                      latency_median_s={f"{t['method']}/{t['domain']}": t["latency"].get("median_s")
                                        for t in results.get("timing", [])})
    if keep:
        record["run_dir"] = str(out)
    else:
        shutil.rmtree(work, ignore_errors=True)
    status = "ok" if record["within_budget"] and proc.returncode == 0 else "OVER BUDGET / FAILED"
    print(f"[{name}] {seconds:.1f} s (budget {BUDGETS_S[name]:.0f} s): {status}", file=sys.stderr, flush=True)
    return record


def machine() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(BUDGETS_S), help="run just one of them (default: quick, default)")
    parser.add_argument("--cold-cache", action="store_true", help="use an empty ZOO_HOME (fresh-clone timing)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders (their paths are recorded)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a run fails or is over budget")
    parser.add_argument("--output", type=Path, default=HERE / "bench_budget.json")
    args = parser.parse_args(argv)
    names = [args.only] if args.only else ["quick", "default"]
    runs = {n: run_one(n, extra, args.cold_cache, args.keep) for n in names}
    report = {"created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "budgets_s": BUDGETS_S, "runs": runs}
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    ok = all(r["within_budget"] and r["exit_code"] == 0 for r in runs.values())
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
