"""`zoo compare RUN_A RUN_B`: per-metric differences of two runs (B relative to A) and a regression gate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from .report import ARROW, fmt

REGRESSION_EXIT_CODE = 3  # distinct from 1 (errors) and 2 (usage), as asv / pytest-benchmark gates


def _index(results: Mapping[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    out = {}
    for a in results.get("aggregates", []):
        out[(a["method"], a["domain"], a["split"], a["metric"])] = dict(a)
    for t in results.get("timing", []):
        med = t.get("latency", {}).get("median_s")
        if med is not None:
            out[(t["method"], t["domain"], "-", "time_s")] = {"mean": med, "stderr": None, "status": "ok",
                                                              "higher_is_better": False, "timing": True}
    return out


def compare_runs(run_a: Mapping[str, Any], run_b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (method, domain, split, metric) of either run: a, b, diff = b - a, pct = 100·diff/|a|, worse.

    Latency (median, batch 1) is included as metric 'time_s' with `timing: True` (never gated: timings are noisy).
    """
    ia, ib = _index(run_a), _index(run_b)
    rows = []
    for key in list(dict.fromkeys([*ia, *ib])):
        a, b = ia.get(key), ib.get(key)
        method, domain, split, metric = key
        ref = a or b or {}
        row: dict[str, Any] = {"method": method, "domain": domain, "split": split, "metric": metric,
                               "higher_is_better": bool(ref.get("higher_is_better")), "timing": ref.get("timing", False),
                               "a": a and a.get("mean"), "b": b and b.get("mean"), "diff": None, "pct": None,
                               "worse": False, "status": "ok"}
        if a is None or b is None:
            row["status"] = "only in B" if a is None else "only in A"
        elif a.get("status") != "ok" or b.get("status") != "ok" or row["a"] is None or row["b"] is None:
            row["status"] = f"{a.get('status')} / {b.get('status')}"
        else:
            diff = row["b"] - row["a"]
            row["diff"] = diff
            row["pct"] = 100 * diff / abs(row["a"]) if row["a"] else (0.0 if diff == 0 else math.inf)
            row["worse"] = diff < 0 if row["higher_is_better"] else diff > 0
        rows.append(row)
    return rows


def regressions(rows: Sequence[Mapping[str, Any]], max_pct: float) -> list[Mapping[str, Any]]:
    """Rows of metrics (not timings) that got worse by more than `max_pct` percent."""
    return [r for r in rows if r["worse"] and not r["timing"] and r["pct"] is not None and abs(r["pct"]) > max_pct]


def format_comparison(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table; worse rows are marked '+', better '-' (asv compare style)."""
    body = []
    for r in rows:
        mark = "" if r["diff"] is None or r["diff"] == 0 else ("+" if r["worse"] else "-")
        pct = "" if r["pct"] is None else f"{r['pct']:+.2f}%"
        body.append([mark, r["method"], f"{r['domain']}/{r['split']}",
                     f"{r['metric']} {ARROW[r['higher_is_better']]}", fmt(r["a"]), fmt(r["b"]),
                     "" if r["diff"] is None else f"{r['diff']:+.4g}", pct, "" if r["status"] == "ok" else r["status"]])
    return tabulate(body, headers=["", "method", "domain/split", "metric", "A", "B", "B - A", "change", "note"],
                    tablefmt="simple", disable_numparse=True)
