"""Paired comparisons of the same method on two domains that are scored against the same images: a StyleGAN2 domain
and a StyleGAN3 domain whose unaligned frames are its renders (peeps and peeps3: peeps test image i is peeps3's
unaligned test image i). Per method and metric: the per-image difference B − A (B the StyleGAN3 domain) with its
mean, standard error, 95 % confidence interval (Student t, n − 1 degrees of freedom) and the two-sided paired t-test
p-value -- the image-to-image spread cancels, as in `benchmarks/paired_differences.py`.

The stylegan3-editing paper (Alaluf et al. 2022, §5 / Table 1) finds StyleGAN3 reconstructs worse than StyleGAN2 in
W+; the board section built from these rows lets a reader check that on the embedded domains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from scipy import stats

from .results import mean_stderr

MATCH_TOLERANCE = 1 / 127.5  # one 8-bit level on [-1, 1]: two domains' targets are "the same image" within it


def paired_stats(diffs: Sequence[float]) -> dict[str, Any]:
    """{n, mean, stderr, ci_low, ci_high, t, p} of per-image differences (finite values only): the 95 % CI is
    mean ± t_{0.975, n-1} · stderr and p the two-sided one-sample t-test of mean 0 (= the paired t-test). With
    fewer than 2 values (or zero spread) the CI, t and p are None (or t = ±inf, p = 0 for a constant non-zero
    difference)."""
    mean, se, n = mean_stderr(diffs)
    out: dict[str, Any] = {"n": n, "mean": mean, "stderr": se, "ci_low": None, "ci_high": None, "t": None, "p": None}
    if mean is None or se is None or n < 2:
        return out
    if se == 0:
        out.update(ci_low=mean, ci_high=mean, t=None if mean == 0 else math.copysign(math.inf, mean),
                   p=1.0 if mean == 0 else 0.0)
        return out
    q = float(stats.t.ppf(0.975, n - 1))
    t = mean / se
    out.update(ci_low=mean - q * se, ci_high=mean + q * se, t=t, p=float(2 * stats.t.sf(abs(t), n - 1)))
    return out


def verdict(row: Mapping[str, Any], higher_is_better: bool) -> str:
    """'B worse' / 'B better' when the 95 % CI of B − A excludes 0 (in the metric's direction), else 'no significant
    difference' ('n/a' without a CI)."""
    lo, hi = row.get("ci_low"), row.get("ci_high")
    if lo is None or hi is None:
        return "n/a"
    if lo <= 0 <= hi:
        return "no significant difference"
    return "B better" if (lo > 0) == higher_is_better else "B worse"


def matched_indices(a: torch.Tensor, b: torch.Tensor, tol: float = MATCH_TOLERANCE) -> tuple[list[int], float]:
    """Indices i < min(len) where images a[i] and b[i] ([N, 3, H, W], same size) agree within `tol` everywhere, and
    the largest |a − b| over the matched ones (0 when none)."""
    n = min(len(a), len(b))
    if n == 0 or a.shape[1:] != b.shape[1:]:
        return [], 0.0
    d = (a[:n].float() - b[:n].float()).abs().flatten(1).amax(1)
    idx = [i for i in range(n) if float(d[i]) <= tol]
    return idx, float(d[idx].max()) if idx else 0.0


def domain_pairs(records: Sequence[Mapping[str, Any]], domains_info: Mapping[str, Any],
                 metrics: Mapping[str, Mapping[str, Any]], split: str,
                 targets: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Rows of the "StyleGAN2 vs StyleGAN3 (same renders)" comparison.

    records: the run's unit records; domains_info: results.json `domains` (their `generator_family`); metrics:
    name -> {higher_is_better} (the primary, unaligned-frame metrics); targets: domain -> the images [N, 3, H, W] its
    `split` records were scored against (for a posed domain its unaligned images). For every (StyleGAN2 domain A,
    StyleGAN3 domain B) whose targets agree image by image (`matched_indices`), every method with records on both
    and every metric: {method, metric, a, b, split, n, mean_a, mean_b, mean (B − A), stderr, ci_low, ci_high, t, p,
    verdict, n_matched, max_target_difference}. [] when no such pair of domains exists."""
    family = {d: (info or {}).get("generator_family") for d, info in domains_info.items()}
    values: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    for rec in records:
        u = rec["unit"]
        if u["split"] == split:
            values.setdefault((u["method"], u["domain"]), {})[int(u["index"])] = rec.get("scores", {})
    rows: list[dict[str, Any]] = []
    for a in (d for d, f in family.items() if f == "stylegan2" and d in targets):
        for b in (d for d, f in family.items() if f == "stylegan3" and d in targets):
            matched, worst = matched_indices(targets[a], targets[b])
            if not matched:
                continue
            methods = [m for (m, d) in values if d == a and (m, b) in values]
            for method in methods:
                va, vb = values[(method, a)], values[(method, b)]
                for metric, info in metrics.items():
                    pa = {i: _value(va.get(i), metric) for i in matched}
                    pb = {i: _value(vb.get(i), metric) for i in matched}
                    both = [i for i in matched if pa[i] is not None and pb[i] is not None]
                    if not both:
                        continue
                    row = paired_stats([pb[i] - pa[i] for i in both])  # type: ignore[operator]
                    row.update(method=method, metric=metric, a=a, b=b, split=split,
                               higher_is_better=bool(info.get("higher_is_better")),
                               mean_a=mean_stderr(pa[i] for i in both)[0], mean_b=mean_stderr(pb[i] for i in both)[0],
                               n_matched=len(matched), max_target_difference=worst)
                    row["verdict"] = verdict(row, row["higher_is_better"])
                    rows.append(row)
    return rows


def _value(scores: Mapping[str, Any] | None, metric: str) -> float | None:
    v = ((scores or {}).get(metric) or {}).get("value")
    return float(v) if v is not None and math.isfinite(float(v)) else None


SECTION_TITLE = "StyleGAN2 vs StyleGAN3 (same renders)"


def paired_tables(results: Mapping[str, Any]) -> list[tuple[str, pd.DataFrame]]:
    """(caption, table) per (StyleGAN2 domain, StyleGAN3 domain, split) of results.json `paired_domains`: a row per
    method and metric with both means, Δ = B − A, its 95 % CI, p, n and the verdict for B."""
    from .report import fmt

    rows = results.get("paired_domains") or []
    out = []
    for (a, b, split) in dict.fromkeys((r["a"], r["b"], r["split"]) for r in rows):
        mine = [r for r in rows if (r["a"], r["b"], r["split"]) == (a, b, split)]
        caption = (f"Each method on `{a}` (StyleGAN2) and `{b}` (StyleGAN3), {split} split, paired image by image: "
                   f"`{b}`'s unaligned-frame reconstructions and `{a}`'s reconstructions are scored against the same "
                   f"images ({mine[0]['n_matched']} matched, largest pixel difference "
                   f"{mine[0]['max_target_difference']:.2g}). Δ = {b} − {a}: mean and 95 % CI (paired t), p of the "
                   "paired t-test; the verdict is in the metric's direction (the stylegan3-editing paper finds "
                   "StyleGAN3 reconstructs worse than StyleGAN2 in W+).")
        table = pd.DataFrame([{
            "method": r["method"], "metric": f"{r['metric']} {'↑' if r['higher_is_better'] else '↓'}",
            a: fmt(r["mean_a"]), b: fmt(r["mean_b"]), f"Δ = {b} − {a}": f"{r['mean']:+.4g}",
            "95 % CI": "—" if r["ci_low"] is None else f"[{r['ci_low']:+.4g}, {r['ci_high']:+.4g}]",
            "p": "—" if r["p"] is None else f"{r['p']:.2g}", "n": r["n"],
            f"{b} is": {"B worse": "worse", "B better": "better"}.get(r["verdict"], r["verdict"])} for r in mine])
        out.append((caption, table))
    return out


def paired_markdown(results: Mapping[str, Any]) -> list[str]:
    """Markdown lines of the section "StyleGAN2 vs StyleGAN3 (same renders)" ([] without such rows)."""
    tables = paired_tables(results)
    if not tables:
        return []
    lines = [f"## {SECTION_TITLE}", ""]
    for caption, table in tables:
        lines += [caption, "", table.to_markdown(index=False, disable_numparse=True), ""]
    return lines
