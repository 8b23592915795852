"""`zoo compare RUN_A RUN_B`: per-metric differences of two runs (B relative to A) and a regression gate.

Only like is compared with like: `differences` lists every setting that makes the numbers incomparable (image limit,
--quick, steps, images, evaluation fingerprint, metric / method versions, options, weights); the table then opens
with a NOT COMPARABLE banner and `zoo compare --fail-if-worse` refuses to gate (exit 2)."""

from __future__ import annotations

import json
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


# ---------------------------------------------------------------------------------------------------- like with like
def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return None
        d = d[p]
    return d


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        text = value[:12]  # a sha256
    return text if len(text) <= limit else text[: limit - 1] + "…"


def differences(run_a: Mapping[str, Any], run_b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What makes two runs' numbers not comparable, one entry {what, scope, a, b} per difference: image limit and
    --quick, editing steps, the images (count and data sha256 per split), the evaluation protocol / fingerprint and
    metric versions per domain, and for each method in both runs its version, resolved options and weights sha256s.
    Settings that one file does not record (older schema) are not reported."""
    out: list[dict[str, Any]] = []

    def check(what: str, scope: str, a: Any, b: Any) -> None:
        if a is not None and b is not None and a != b:
            out.append({"what": what, "scope": scope, "a": a, "b": b})

    ca, cb = run_a.get("config") or {}, run_b.get("config") or {}
    for key, what in (("limit", "image limit per split"), ("quick", "--quick"), ("steps", "editing steps"),
                      ("images_dir", "--images folder")):
        check(what, "run", ca.get(key), cb.get(key))
    ta, tb = _get(run_a.get("env") or {}, "threads"), _get(run_b.get("env") or {}, "threads")
    if ta is not None and tb is not None and ta != tb:  # float summation order only (last bits), and the timings
        out.append({"what": "torch threads (scores may differ in the last bits; times are not comparable)",
                    "scope": "run", "a": ta, "b": tb, "blocking": False})
    da, db = run_a.get("domains") or {}, run_b.get("domains") or {}
    for dom in [d for d in da if d in db]:
        check("evaluation fingerprint (protocol, domain models)", dom, _get(da[dom], "evaluation", "eval_fingerprint"),
              _get(db[dom], "evaluation", "eval_fingerprint"))
        sa, sb = _get(da[dom], "used_splits") or {}, _get(db[dom], "used_splits") or {}
        for split in [s for s in sa if s in sb]:
            check("number of images", f"{dom}/{split}", _get(sa[split], "n"), _get(sb[split], "n"))
            if _get(sa[split], "n") == _get(sb[split], "n"):
                check("images (data sha256)", f"{dom}/{split}", _get(sa[split], "data_sha256"),
                      _get(sb[split], "data_sha256"))
    ma, mb = run_a.get("metrics") or {}, run_b.get("metrics") or {}
    for name in [m for m in ma if m in mb]:
        check("metric version", name, _get(ma[name], "version"), _get(mb[name], "version"))
    pa, pb = run_a.get("methods") or {}, run_b.get("methods") or {}
    oa, ob = ca.get("options") or {}, cb.get("options") or {}
    for method in [m for m in pa if m in pb]:  # a new version of a method is what a regression gate compares
        va, vb = _get(pa[method], "version"), _get(pb[method], "version")
        if va is not None and vb is not None and va != vb:
            out.append({"what": "method version", "scope": method, "a": va, "b": vb, "blocking": False})
        check("options", method, _get(pa[method], "options") or oa.get(method), _get(pb[method], "options")
              or ob.get(method))
        wa, wb = _get(pa[method], "weights_sha256") or {}, _get(pb[method], "weights_sha256") or {}
        for dom in [d for d in wa if d in wb]:
            check("weights sha256", f"{method} on {dom}", wa[dom], wb[dom])
    return out


def difference_line(d: Mapping[str, Any]) -> str:
    """'image limit per split (run): A 32, B 8'."""
    a, b = d["a"], d["b"]
    if isinstance(a, Mapping) and isinstance(b, Mapping):  # options / weights: only the keys that differ
        keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
        a, b = ({k: x.get(k) for k in keys} for x in (a, b))
    return f"{d['what']} ({d['scope']}): A {_short(a)}, B {_short(b)}"


def regressions(rows: Sequence[Mapping[str, Any]], max_pct: float) -> list[Mapping[str, Any]]:
    """Rows of metrics (not timings) that got worse by more than `max_pct` percent."""
    return [r for r in rows if r["worse"] and not r["timing"] and r["pct"] is not None and abs(r["pct"]) > max_pct]


def format_comparison(rows: Sequence[Mapping[str, Any]], diffs: Sequence[Mapping[str, Any]] = ()) -> str:
    """A plain-text table; worse rows are marked '+', better '-' (asv compare style). With `diffs` (see
    `differences`) a banner first says that the runs are not like with like and what differs."""
    head = ""
    if diffs:
        blocking = [d for d in diffs if d.get("blocking", True)]
        head = ("NOT COMPARABLE: the runs differ in settings, so the changes below mix those with the methods' "
                "own differences:\n" if blocking else "Differences that do not block the comparison:\n") + "".join(
            f"  - {difference_line(d)}\n" for d in diffs) + "\n"
    body = []
    for r in rows:
        mark = "" if r["diff"] is None or r["diff"] == 0 else ("+" if r["worse"] else "-")
        pct = "" if r["pct"] is None else f"{r['pct']:+.2f}%"
        body.append([mark, r["method"], f"{r['domain']}/{r['split']}",
                     f"{r['metric']} {ARROW[r['higher_is_better']]}", fmt(r["a"]), fmt(r["b"]),
                     "" if r["diff"] is None else f"{r['diff']:+.4g}", pct, "" if r["status"] == "ok" else r["status"]])
    legend = ("\n'+' = B worse than A, '-' = B better (by each metric's direction); times are shown, never gated "
              "by --fail-if-worse (they depend on the machine's load)")
    return head + tabulate(body, headers=["", "method", "domain/split", "metric", "A", "B", "B - A", "change",
                                          "note"], tablefmt="simple", disable_numparse=True) + legend
