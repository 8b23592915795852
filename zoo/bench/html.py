"""The self-contained HTML report of a run: leaderboards, reconstruction grids and plots as base64 PNGs."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from . import plots
from .cache import ResultCache
from .paired import SECTION_TITLE, paired_tables
from .report import edit_frames, frame_notes, leaderboard_frame, table_keys, unavailable_notes
from .video import video_table

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;
margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child{text-align:left}.grid td{vertical-align:top;text-align:center;padding:2px}.note{color:#555}
img.plot{max-width:100%}.err{color:#a00}pre{background:#f7f7f7;padding:1em;overflow:auto}
details{margin:.3em 0}summary{cursor:pointer}nav ul{columns:2}"""


def to_png(images: torch.Tensor, tile: int = 96) -> bytes:
    """images [N, 3, H, W] in [-1, 1] -> a vertical strip PNG, each image upscaled (nearest) to about `tile` px."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    arr = np.concatenate(list(x.permute(0, 2, 3, 1).numpy()), axis=0) if len(x) else np.zeros((1, 1, 3), np.uint8)
    scale = max(1, tile // max(1, images.shape[-1]))
    img = Image.fromarray(arr).resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def img_tag(png: bytes | None, alt: str, cls: str = "") -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def grid_html(results: Mapping[str, Any], run_dir: Path, domain: str, split: str) -> str:
    """A table input | each method of the first images of a split, from the run's inputs and cache."""
    grid = results.get("grids", {}).get(f"{domain}/{split}")
    if not grid:
        return ""
    try:
        inputs = load_file(str(run_dir / grid["inputs"]))["images"]
    except Exception:  # noqa: BLE001 - the report still renders without the grid
        return '<p class="note">reconstruction grid unavailable (inputs file missing)</p>'
    cache = ResultCache(run_dir / "cache")
    heads, cells = ["input"], [img_tag(to_png(inputs), "inputs")]
    for method, keys in grid.get("methods", {}).items():
        tiles = []
        for i, key in enumerate(keys):
            t = cache.load_tensors(key)
            tiles.append(t["reconstruction"].float() if t is not None else torch.zeros_like(inputs[i]).float())
        heads.append(method)
        cells.append(img_tag(to_png(torch.stack(tiles)) if tiles else None, method))
    return ('<table class="grid"><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr><tr>"
            + "".join(f"<td>{c}</td>" for c in cells) + "</tr></table>")


def _anchor(*parts: str) -> str:
    return "-".join("".join(c if c.isalnum() else "_" for c in p) for p in parts)


def render_html(results: Mapping[str, Any], run_dir: Path, figures: dict[str, bytes] | None = None) -> str:
    """The full report as one HTML string (plain HTML, images embedded): a table of contents, per domain/split the
    leaderboard, quality-vs-time plot, reconstruction grid and editing curves, then the editing tables (each one
    collapsible). `figures`, when given, receives every plot as {file name: PNG bytes}."""
    esc = html.escape
    figures = figures if figures is not None else {}

    def plot(png: bytes | None, name: str, alt: str) -> str:
        if png is not None:
            figures[name] = png
        return img_tag(png, alt, "plot")

    env, git = results.get("env", {}), results.get("git") or {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>zoo bench {esc(results.get('run_id', ''))}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>zoo bench — {esc(str(results.get('run_id', '')))}</h1>",
             f"<p>zoo {esc(str(results.get('zoo_version')))} · git {esc(str(git.get('commit') or 'n/a')[:12])}"
             f"{' (dirty)' if git.get('dirty') else ''} · {esc(str(env.get('device')))} "
             f"({esc(str(env.get('device_name')))}), {env.get('threads')} threads · torch {esc(str(env.get('torch')))}"
             f" · python {esc(str(env.get('python')))} · {esc(str(results.get('created_at')))}</p>"]
    if not results.get("leaderboard_eligible"):
        parts.append('<p class="note">Not leaderboard-eligible: a limit, --quick, an image folder or a failure.</p>')
    if results.get("timing_busy"):
        parts.append(f'<p class="err">Timing not leaderboard-eligible, measured on a busy machine: '
                     f'{esc("; ".join(results["timing_busy"]))}.</p>')
    for f in results.get("failures", []):
        parts.append(f'<p class="err">failed: {esc(f["method"])} on {esc(f["domain"])}: {esc(f["error"])}</p>')
    unavailable = results.get("unavailable_methods") or []
    if unavailable:  # weights not trained yet, or a generator family the method cannot drive (StyleGAN3)
        parts.append("<details><summary>Not benchmarked (weights not available, or a generator the method cannot "
                     f"drive): {len(unavailable)}</summary><ul>" + "".join(
                         f"<li>{esc(u['method'])} on {esc(u['domain'])}: {esc(u['reason'])}</li>" for u in unavailable)
                     + "</ul></details>")
    messages = (results.get("inputs") or {}).get("messages", [])
    if messages:
        parts.append("<h2>Input files</h2><ul>" + "".join(f"<li>{esc(m)}</li>" for m in messages) + "</ul>")
    keys = table_keys(results)
    frames = edit_frames(results)
    toc = [f'<li><a href="#{_anchor(d, s_)}">{esc(d)} / {esc(s_)}</a></li>' for d, s_ in keys]
    paired = paired_tables(results)
    if paired:
        toc.append(f'<li><a href="#paired-domains">{esc(SECTION_TITLE)}</a></li>')
    if frames:
        toc.append(f'<li><a href="#editing-tables">Editing tables</a> ({len(frames)}, collapsed)</li>')
    video = video_table(results)
    if video is not None:
        toc.append('<li><a href="#video">Video (embedded clips)</a></li>')
    toc.append('<li><a href="#configuration">Configuration and environment</a></li>')
    parts.append('<nav><h2>Contents</h2><ul>' + "".join(toc) + "</ul></nav>")
    for domain, split in keys:
        tag = f"{domain}_{split}"
        parts.append(f'<h2 id="{_anchor(domain, split)}">{esc(domain)} / {esc(split)}</h2>')
        parts.append(leaderboard_frame(results, domain, split, False).to_html(index=False, escape=True, border=0))
        parts += [f'<p class="note">{esc(n)}</p>' for n in frame_notes(results, domain, split)
                  + unavailable_notes(results, domain)]
        parts.append('<p class="note">time: per-image latency at batch size 1, median after warm-up (IQR).</p>')
        parts.append(plot(plots.quality_vs_time(results, domain, split), f"quality_vs_time_{tag}.png",
                          "quality vs time"))
        parts.append("<h3>Reconstructions</h3>" + grid_html(results, run_dir, domain, split))
        curves = [(plots.edit_curves(results, domain, split, m), f"edits_{m}_{tag}.png", alt) for m, alt in
                  (("id", "ID kept vs step"), ("attribute", "attribute change vs step"),
                   ("change", "image change vs step"), ("change_region", "edited-region change vs step"))]
        if any(png for png, _, _ in curves):
            parts.append("<h3>Editing sweep</h3>")
            parts += [plot(png, name, alt) for png, name, alt in curves]
    if paired:
        parts.append(f'<h2 id="paired-domains">{esc(SECTION_TITLE)}</h2>')
        for caption, table in paired:
            parts += [f'<p class="note">{esc(caption)}</p>', table.to_html(index=False, escape=True, border=0)]
    if frames:
        parts.append(f'<h2 id="editing-tables">Editing tables</h2><p class="note">{len(frames)} tables, one per '
                     "domain/split, editor, direction and measure; click a title to open it (all of them: "
                     "edits.csv).</p>")
        for title, table in frames:
            parts.append(f"<details><summary>{esc(title)}</summary>"
                         + table.to_html(index=False, escape=True, border=0) + "</details>")
    if video is not None:  # the bench's video section (zoo bench --video), the leaderboard's table
        vframe, vnote, vnotes = video
        parts.append('<h2 id="video">Video (embedded clips)</h2>')
        if vframe is not None:
            parts.append(vframe.to_html(index=False, escape=True, border=0, classes="video"))
        parts.append(f'<p class="note">{esc(vnote)}</p>')
        parts += [f'<p class="note">{esc(n)}</p>' for n in vnotes]
    cfg = json.dumps(results.get("config", {}), indent=1, default=str)
    parts.append(f'<details id="configuration"><summary>configuration and environment</summary><pre>{esc(cfg)}\n\n'
                 f"{esc(json.dumps(env, indent=1, default=str))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
