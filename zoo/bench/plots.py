"""matplotlib figures of a run (PNG bytes; no pyplot state): quality vs time, ID / attribute change vs step."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from .report import ARROW, method_timing


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _grid(n: int, width: float = 4.0, height: float = 3.2) -> tuple[Figure, list[Any]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def quality_vs_time(results: Mapping[str, Any], domain: str, split: str) -> bytes | None:
    """One panel per available metric: mean ± stderr against latency (log axis), a point per method.

    As the HyperStyle paper's figure: the methods' quality/time trade-off at a glance."""
    metrics = results.get("metrics", {})
    aggs = [a for a in results.get("aggregates", [])
            if a["domain"] == domain and a["split"] == split and a["status"] == "ok"]
    names = [m for m in metrics if any(a["metric"] == m for a in aggs)
             and metrics[m].get("frame") != "aligned"]  # a posed domain: what a user sees (unaligned frame)
    points: dict[str, float] = {}
    for method in dict.fromkeys(a["method"] for a in aggs):
        med = method_timing(results, method, domain).get("latency", {}).get("median_s")
        if med:
            points[method] = med
    if not names or not points:
        return None
    fig, axes = _grid(len(names))
    for ax, name in zip(axes, names):
        for method, t in points.items():
            a = next((x for x in aggs if x["method"] == method and x["metric"] == name), None)
            if a is None or a["mean"] is None:
                continue
            ax.errorbar([t], [a["mean"]], yerr=[a["stderr"] or 0.0], fmt="o", capsize=3, label=method)
            ax.annotate(method, (t, a["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.1)
        ax.set_xlabel("time per image (s, batch 1, log)")
        ax.set_ylabel(f"{name} {ARROW[bool(metrics[name]['higher_is_better'])]}")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"quality vs time — {domain}/{split}")
    return _png(fig)


def _main_scorer_rows(rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Per (editor, direction): the rows of the scorer named like the direction, else of the scorer with the
    largest mean |change| over methods and steps."""
    keep: list[Mapping[str, Any]] = []
    for ed, direction in dict.fromkeys((e["editor"], e["direction"]) for e in rows):
        part = [e for e in rows if (e["editor"], e["direction"]) == (ed, direction)]
        scorers = list(dict.fromkeys(e["scorer"] for e in part))
        if direction in scorers:
            best = direction
        else:
            best = max(scorers, key=lambda s: sum(abs(e["mean"]) for e in part if e["scorer"] == s)
                       / max(1, sum(1 for e in part if e["scorer"] == s)))
        keep += [e for e in part if e["scorer"] == best]
    return keep


def edit_curves(results: Mapping[str, Any], domain: str, split: str, measure: str) -> bytes | None:
    """measure 'id' (ID kept vs step), 'change' (image change vs step) or 'attribute' (attribute change vs step):
    a panel per editor direction
    (and scorer), a line per method with ± stderr bands. Attribute panels show, for a direction without a
    scorer of its own name (GANSpace components), only the scorer it changes most; every pair stays in edits.csv."""
    rows = [e for e in results.get("edit_aggregates", [])
            if e["domain"] == domain and e["split"] == split and e["measure"] == measure and e["mean"] is not None]
    if measure == "attribute":
        rows = _main_scorer_rows(rows)
    panels = list(dict.fromkeys((e["editor"], e["direction"], e["scorer"]) for e in rows))
    if not panels:
        return None
    fig, axes = _grid(len(panels))
    for ax, (editor, direction, scorer) in zip(axes, panels):
        part = [e for e in rows if (e["editor"], e["direction"], e["scorer"]) == (editor, direction, scorer)]
        for method in dict.fromkeys(e["method"] for e in part):
            pts = sorted((e["step"], e["mean"], e["stderr"] or 0.0) for e in part if e["method"] == method)
            xs, ys, se = zip(*pts)
            ax.plot(xs, ys, marker="o", label=method)
            ax.fill_between(xs, [y - s for y, s in zip(ys, se)], [y + s for y, s in zip(ys, se)], alpha=0.15)
        ax.set_title(f"{editor}: {direction}" + (f" ({scorer})" if scorer and scorer != direction else ""),
                     fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel({"id": "ID kept ↑", "change": "image change (mean |Δ|)",
                       "change_region": "region change (mean |Δ|)"}.get(measure, f"Δ {scorer}"))
        ax.grid(True, alpha=0.3)
    labels: dict[str, Any] = {}
    for ax in axes:  # one legend for the figure, below the panels (never over the curves)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(label, handle)
    if labels:
        fig.legend(list(labels.values()), list(labels), loc="outside lower center", ncols=min(len(labels), 6),
                   fontsize=8)
    what = {"id": "ID kept", "change": "image change", "change_region": "edited-region change"}.get(
        measure, "attribute change")
    fig.suptitle(f"{what} vs step — {domain}/{split}")
    return _png(fig)
