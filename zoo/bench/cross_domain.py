"""Cross-domain summary of a `zoo bench` run over several domains: the rank of each method per domain.

Per domain (its `test` split, else its first split): each metric ranks the methods that have a finite mean (1 = best,
by the metric's `higher_is_better`; ties share the lower rank); a method's score is its mean rank over the metrics, and
the domain rank orders those scores. Methods missing on a domain (no weights, or a generator they cannot drive, e.g.
StyleGAN3) show "—". A StyleGAN3 domain with poses ranks on its unaligned-frame metrics (`aligned_*` are left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def _split_of(results: Mapping[str, Any], domain: str) -> str | None:
    splits = list(dict.fromkeys(a["split"] for a in results.get("aggregates", []) if a["domain"] == domain))
    return "test" if "test" in splits else (splits[0] if splits else None)


def domain_ranks(results: Mapping[str, Any], domain: str) -> dict[str, tuple[int, float]]:
    """{method: (rank, mean metric rank)} on `domain`."""
    split = _split_of(results, domain)
    metrics = results.get("metrics", {})
    aggs = [a for a in results.get("aggregates", []) if a["domain"] == domain and a["split"] == split
            and a.get("status") != "unavailable" and a.get("mean") is not None]
    per_method: dict[str, list[float]] = {}
    for name, info in metrics.items():
        if info.get("frame") == "aligned":  # a posed domain ranks on what a user sees (the unaligned frame)
            continue
        vals = {a["method"]: float(a["mean"]) for a in aggs if a["metric"] == name}
        vals = {m: v for m, v in vals.items() if v == v}  # drop NaN
        if not vals:
            continue
        ranks = pd.Series(vals).rank(ascending=not info.get("higher_is_better"), method="min")
        for m, r in ranks.items():
            per_method.setdefault(str(m), []).append(float(r))
    scores = {m: sum(r) / len(r) for m, r in per_method.items()}
    order = pd.Series(scores).rank(method="min") if scores else pd.Series(dtype=float)
    return {m: (int(order[m]), round(scores[m], 2)) for m in scores}


def cross_domain_frame(results: Mapping[str, Any]) -> pd.DataFrame | None:
    """Rows = methods, a column per domain with "rank (mean metric rank)"; None for a single-domain run."""
    domains = list(dict.fromkeys(a["domain"] for a in results.get("aggregates", [])))
    if len(domains) < 2:
        return None
    ranks = {d: domain_ranks(results, d) for d in domains}
    methods = list(dict.fromkeys(m for d in domains for m in ranks[d]))
    rows = [{"method": m, **{d: (f"{ranks[d][m][0]} ({ranks[d][m][1]:g})" if m in ranks[d] else "—")
                             for d in domains}} for m in methods]
    return pd.DataFrame(rows)


def cross_domain_markdown(results: Mapping[str, Any]) -> list[str]:
    """Markdown lines of the cross-domain summary ([] for a single-domain run)."""
    frame = cross_domain_frame(results)
    if frame is None or frame.empty:
        return []
    return ["## Cross-domain summary", "", "Rank of each method per domain (mean of its per-metric ranks on the "
            "domain's test split in brackets; 1 = best).", "", frame.to_markdown(index=False, disable_numparse=True),
            ""]
