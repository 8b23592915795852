"""Leaderboards (pandas + tabulate) as Markdown and CSV, and `render_run`, which writes every report of a run.

One table per (domain, split): a row per method, a column per metric with ↑/↓ from `higher_is_better`, then the
per-image latency at batch size 1 (median over images after warm-up) and n. Editing tables: ID kept and attribute
change per step, one per (domain, split, editor, direction).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .cache import atomic_write_bytes
from .results import machines_line

ARROW = {True: "↑", False: "↓"}
FILES = {"markdown": "leaderboard.md", "csv": "leaderboard.csv", "csv_schema": "leaderboard_schema.csv",
         "edits_csv": "edits.csv", "html": "report.html"}
FIGURES_DIR = "figures"  # the report's plots as PNG files (report.html embeds the same images)


def output_paths(run_dir: Path) -> dict[str, Path]:
    """Where `render_run` writes each output."""
    return {k: run_dir / v for k, v in FILES.items()}


def _rounded(value: float, digits: int) -> str:
    """`value` with `digits` decimals; '0' when it rounds to zero (never '-0.0000')."""
    text = f"{value:.{digits}f}"
    return "0" if float(text) == 0 else text


def fmt(value: float | None, stderr: float | None = None) -> str:
    """'0.0123 ± 0.0004' (4 decimals below 10, else 2; what rounds to zero is '0'); '—' for None."""
    if value is None or not math.isfinite(value):
        return "—"
    digits = 4 if abs(value) < 10 else 2
    text = _rounded(value, digits)
    return f"{text} ± {_rounded(stderr, digits)}" if stderr is not None and math.isfinite(stderr) else text


def fmt_time(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.3g}"


def metric_header(name: str, higher_is_better: bool) -> str:
    return f"{name} {ARROW[bool(higher_is_better)]}"


def table_keys(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(domain, split) pairs in run order."""
    seen: dict[tuple[str, str], None] = {}
    for a in results.get("aggregates", []):
        seen[(a["domain"], a["split"])] = None
    return list(seen)


def method_timing(results: Mapping[str, Any], method: str, domain: str) -> dict[str, Any]:
    for t in results.get("timing", []):
        if t.get("method") == method and t.get("domain") == domain:
            return t
    return {}


def leaderboard_frame(results: Mapping[str, Any], domain: str, split: str, numeric: bool) -> pd.DataFrame:
    """The leaderboard of one (domain, split): formatted strings, or numbers (+ stderr columns) when `numeric`.
    With composed methods (`refiner@embedder`) an `embedding` column is added and rows are grouped by it: each
    embedder next to the compositions built on it."""
    aggs = [a for a in results.get("aggregates", []) if a["domain"] == domain and a["split"] == split]
    present = {a["metric"] for a in aggs}  # `aligned_<metric>` only where the split was scored in the unaligned frame
    metrics = {n: i for n, i in results.get("metrics", {}).items() if n in present or i.get("frame") != "aligned"}
    methods = list(dict.fromkeys(a["method"] for a in aggs))
    info = results.get("methods", {})
    embedders = {m: (info.get(m) or {}).get("embedder") for m in methods}
    grouped = any(embedders.values())  # compositions present: group rows by their embedding
    if grouped:
        methods.sort(key=lambda m: (embedders[m] or m, embedders[m] is not None, m))
    rows = []
    for m in methods:
        row: dict[str, Any] = {"method": m}
        if grouped:
            row["embedding"] = embedders[m] or "(own)"
        n = 0
        mine = {name: next((x for x in aggs if x["method"] == m and x["metric"] == name), None) for name in metrics}
        most = max((a["n"] for a in mine.values() if a), default=0)
        for name, info in metrics.items():
            a = mine[name]
            head = metric_header(name, info["higher_is_better"])
            if numeric:  # CSV: plain column names; directions in leaderboard_schema.csv
                row[name] = a["mean"] if a else None
                row[f"{name}_stderr"] = a["stderr"] if a else None
                row[f"{name}_n"] = a["n"] if a else None
            else:
                cell = "n/a" if a and a["status"] == "unavailable" else fmt(a and a["mean"], a and a["stderr"])
                if a and a["status"] != "unavailable" and a["n"] < most:  # some images had no finite score
                    cell += f" (n={a['n']})"
                row[head] = cell
            if a:
                n = max(n, a["n"])
        t = method_timing(results, m, domain)
        lat = t.get("latency", {})
        if numeric:
            row["time_s"] = lat.get("median_s")
            row["time_iqr_s"] = lat.get("iqr_s")
            row["throughput_img_per_s"] = t.get("throughput", {}).get("images_per_s")
        else:
            row["time (s) ↓"] = fmt_time(lat.get("median_s")) + (
                f" (IQR {fmt_time(lat['iqr_s'])})" if lat.get("iqr_s") is not None else "")
        row["n"] = n
        rows.append(row)
    return pd.DataFrame(rows)


def unavailable_notes(results: Mapping[str, Any], domain: str) -> list[str]:
    """Per domain: the metrics that could not run (why), and the model each metric actually used there."""
    notes, missing, partial = {}, {}, []
    for a in results.get("aggregates", []):
        if a["domain"] == domain and a["status"] == "unavailable":
            notes[a["metric"]] = a["reason"]
        elif a["domain"] == domain and a["status"] == "missing":  # ran, but no image got a finite score
            missing.setdefault(a["metric"], []).append(f"{a['method']} ({a['split']})")
        elif a["domain"] == domain and a.get("reason"):  # some images without a finite score (e.g. MS-SSIM NaN)
            partial.append(f"`{a['metric']}` for {a['method']} ({a['split']}): {a['reason']}")
    models = ((results.get("domains") or {}).get(domain, {}).get("evaluation") or {}).get("metric_models") or {}
    return [f"`{m}` unavailable: {r}" for m, r in notes.items()] + [
        f"`{m}`: no finite score for {', '.join(runs)} (e.g. no face found by the ID model)" if m == "id" else
        f"`{m}`: no finite score for {', '.join(runs)}" for m, runs in missing.items()] + partial + (
        ["MS-SSIM is undefined (NaN) when a contrast-structure term is negative; such images are dropped, as the "
         "official evaluation drops NaN scores"] if any("`ms_ssim`" in p for p in partial) else []) + [
        f"`{m}` on {domain} uses {model}" for m, model in models.items()]


def frame_notes(results: Mapping[str, Any], domain: str, split: str) -> list[str]:
    """A note when (domain, split) was scored in the unaligned frame (StyleGAN3 domains with poses), else []."""
    frame = (((results.get("domains") or {}).get(domain) or {}).get("evaluation") or {}).get("frame") or {}
    if frame.get(split) != "unaligned":
        return []
    return [f"{domain}/{split} is scored in the unaligned frame, as stylegan3-editing's output: each method inverts "
            "the aligned crop, its inversion is rendered with the image's pose (r, tx, ty) and compared with the "
            "unaligned image; edits are rendered with the pose too (the edited-region change in the aligned frame, "
            "where the domain's region masks are defined). `aligned_*` columns: the aligned crop's reconstruction vs "
            "the crop. Times are the inversion's (the one extra rendering with the pose is not timed)."]


def edit_frames(results: Mapping[str, Any], matched_only: bool = False) -> list[tuple[str, pd.DataFrame]]:
    """(title, table) per (domain, split, editor, direction, measure): rows = methods, columns = steps.

    `matched_only` keeps, besides ID, only the attribute whose scorer is named like the direction (the Markdown
    leaderboard; every scorer of unnamed directions such as GANSpace's pc0 stays in edits.csv)."""
    df = pd.DataFrame(results.get("edit_aggregates", []))
    if df.empty:
        return []
    df["scorer"] = df["scorer"].fillna("")
    if matched_only:
        df = df[df["measure"].isin(["id", "change", "change_region"]) | (df["scorer"] == df["direction"])]
    out = []
    keys = ["domain", "split", "editor", "direction", "measure", "scorer"]
    df = df.assign(_id_first=df["measure"].map({"id": 0, "change": 1, "change_region": 1.5}).fillna(2))
    order = ["domain", "split", "editor", "direction", "_id_first", "scorer"]
    for key, part in df.sort_values(order, kind="stable").groupby(keys, sort=False):
        domain, split, editor, direction, measure, scorer = key
        cells = part.assign(cell=[fmt(m, s) for m, s in zip(part["mean"], part["stderr"])])
        table = cells.pivot(index="method", columns="step", values="cell")
        table = table.reindex(list(dict.fromkeys(part["method"])))
        table.columns = [f"{c:+g}" if c else "0" for c in table.columns]
        what = {"id": "ID kept ↑", "change": "image change (mean |Δ|)",
                "change_region": "edited-region change (mean |Δ|)"}.get(measure, f"Δ {scorer}")
        out.append((f"{domain}/{split} — {editor}: {direction} — {what}", table.reset_index()))
    return out


def leaderboard_markdown(results: Mapping[str, Any]) -> str:
    """Only the leaderboards (one per domain/split) with their notes, and the video section of a `--video` run:
    what `zoo bench` prints."""
    lines: list[str] = []
    for domain, split in table_keys(results):
        lines += [f"## {domain} / {split}", "", leaderboard_frame(results, domain, split, False).to_markdown(
            index=False, disable_numparse=True), ""]
        notes = frame_notes(results, domain, split) + unavailable_notes(results, domain)
        lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    from .cross_domain import cross_domain_markdown
    from .paired import paired_markdown

    lines += cross_domain_markdown(results)
    lines += paired_markdown(results)
    lines.append("Time: per-image latency at batch size 1, median over images after warm-up (IQR in brackets)."
                 + (" Not leaderboard-eligible: measured on a busy machine (load above the cores) for "
                    f"{'; '.join(results['timing_busy'])}." if results.get("timing_busy") else "")
                 + (f" Measured on {len(machines)} different machines, not comparable with each other: "
                    f"{machines_line(machines)}." if len(machines := results.get("timing_machines") or []) > 1 else ""))
    unavailable = results.get("unavailable_methods", [])
    if unavailable:
        lines += ["", "Not benchmarked (weights not available, or a generator the method cannot drive):", ""]
        lines += [f"- {u['method']} on {u['domain']}: {u['reason']}" for u in unavailable]
    if results.get("video"):  # zoo bench --video
        from .video import video_markdown

        lines += [""] + video_markdown(results)
    return "\n".join(lines) + "\n"


def run_scope(results: Mapping[str, Any]) -> str:
    """'limit 8 images per split' or, for an --images run, 'images: 5 of 7 files in photos/' (the real count)."""
    inputs = results.get("inputs") or {}
    if inputs:
        return f"images: {inputs.get('n_used')} of {inputs.get('n_files')} files in {inputs.get('folder')}"
    limit = (results.get("config") or {}).get("limit")
    return f"limit {limit or 'all'} images per split"


def markdown(results: Mapping[str, Any]) -> str:
    """The whole leaderboard document: run summary, one table per domain/split, editing tables, notes."""
    cfg = results.get("config", {})
    env = results.get("env", {})
    git = results.get("git") or {}
    lines = [f"# zoo bench — {results.get('run_id', '')}", "",
             f"zoo {results.get('zoo_version')} · git {str(git.get('commit') or 'n/a')[:12]}"
             f"{' (dirty)' if git.get('dirty') else ''} · {env.get('device')} ({env.get('device_name')}), "
             f"{env.get('threads')} threads · torch {env.get('torch')} · {results.get('created_at')}",
             "", f"{run_scope(results)} · quick {cfg.get('quick')} · "
             f"batch size {cfg.get('batch_size')} · seed {cfg.get('seed')}"
             + ("" if results.get("leaderboard_eligible") else " · not leaderboard-eligible (limit/quick/folder)"),
             ""]
    if results.get("timing_busy"):
        lines += [f"**Timing not leaderboard-eligible**: measured on a busy machine: "
                  f"{'; '.join(results['timing_busy'])}.", ""]
    lines += leaderboard_markdown(results).splitlines() + [""]
    frames = edit_frames(results, matched_only=True)
    if frames:
        lines += ["## Editing sweep", "", "Columns are step sizes; ID kept = cosine similarity of identity "
                  "embeddings of the edited and the unedited inversion; Δ = change of the attribute scorer named "
                  "like the direction (every scorer of every direction: edits.csv).", ""]
        for title, table in frames:
            lines += [f"### {title}", "", table.to_markdown(index=False, disable_numparse=True), ""]
    for f in results.get("failures", []):
        lines.append(f"- **failed**: {f['method']} on {f['domain']}: {f['error']}")
    if (results.get("inputs") or {}).get("messages"):
        lines += ["", "Input files:", ""] + [f"- {m}" for m in results["inputs"]["messages"]]
    return "\n".join(lines).rstrip() + "\n"


def leaderboard_csv(results: Mapping[str, Any]) -> pd.DataFrame:
    """All leaderboards in one numeric table with `domain` and `split` columns."""
    frames = [leaderboard_frame(results, d, s, True).assign(domain=d, split=s) for d, s in table_keys(results)]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    return df[["domain", "split", *[c for c in df.columns if c not in ("domain", "split")]]]


def csv_schema(results: Mapping[str, Any], columns: list[str]) -> pd.DataFrame:
    """One row per leaderboard.csv column: its name, whether higher is better (empty: not a score) and what it is."""
    metrics = results.get("metrics", {})
    rows = []
    for col in columns:
        base = col.removesuffix("_stderr").removesuffix("_n")
        if base in metrics:
            hib = bool(metrics[base]["higher_is_better"])
            what = (f"standard error of {base}" if col == f"{base}_stderr" else
                    f"images with a finite {base} score" if col == f"{base}_n" else
                    f"{base}: mean over the split's images (zoo show {base}; the model it used on each domain is "
                    "noted under the leaderboard)")
            rows.append({"column": col, "higher_is_better": hib if col == base else "", "description": what})
        else:
            hib, what = {"time_s": (False, "per-image latency at batch size 1, median after warm-up (s)"),
                         "time_iqr_s": ("", "interquartile range of the latency (s)"),
                         "throughput_img_per_s": (True, "images per second at the throughput batch size"),
                         "n": ("", "images with a score")}.get(col, ("", col))
            rows.append({"column": col, "higher_is_better": hib, "description": what})
    return pd.DataFrame(rows, columns=["column", "higher_is_better", "description"])


def render_run(results: Mapping[str, Any], run_dir: Path) -> dict[str, Path]:
    """Write leaderboard.md, leaderboard.csv (+ leaderboard_schema.csv: each column's direction), edits.csv,
    report.html and the report's plots as PNG files in figures/ into `run_dir`; returns their paths."""
    from .html import render_html

    paths = output_paths(run_dir)
    atomic_write_bytes(paths["markdown"], markdown(results).encode("utf-8"))
    board = leaderboard_csv(results)
    atomic_write_bytes(paths["csv"], board.to_csv(index=False).encode("utf-8"))
    schema = csv_schema(results, list(board.columns))
    atomic_write_bytes(paths["csv_schema"], schema.to_csv(index=False).encode("utf-8"))
    edits = pd.DataFrame(results.get("edit_aggregates", []))
    atomic_write_bytes(paths["edits_csv"], edits.to_csv(index=False).encode("utf-8"))
    figures: dict[str, bytes] = {}
    atomic_write_bytes(paths["html"], render_html(results, run_dir, figures).encode("utf-8"))
    for name, png in figures.items():
        atomic_write_bytes(run_dir / FIGURES_DIR / name, png)
    if figures:
        paths["figures"] = run_dir / FIGURES_DIR
    return paths
