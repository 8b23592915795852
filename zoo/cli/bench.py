"""`zoo bench`, `zoo report RUN` and `zoo compare RUN_A RUN_B` (added to the `zoo` group in zoo/cli/__init__.py)."""

from __future__ import annotations

import json
from typing import Any

import click

from .. import log as zlog
from ..bench.config import DEFAULT_LIMIT, QUICK_LIMIT, STEPS_HELP
from ..errors import InputError, ZooError
from .errors import error_line


def _names(value: str | None) -> list[str] | None:
    """'a,b' -> ['a', 'b']; 'none' -> []; None -> None (= every registered one)."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def _method_options(pairs: tuple[str, ...], methods: list[str] | None = None) -> dict[str, dict[str, str]]:
    """('mean_latent.batch_size=4',) -> {'mean_latent': {'batch_size': '4'}}; with one method in `methods`,
    'batch_size=4' (the form of zoo invert / edit) means that method."""
    out: dict[str, dict[str, str]] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if sep and "." not in key and methods is not None and len(methods) == 1:
            key = f"{methods[0]}.{key}"
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise InputError(f"--option '{p}' must look like METHOD.KEY=VALUE (e.g. mean_latent.batch_size=4; "
                             "KEY=VALUE when --methods names one method)")
        out.setdefault(method.strip(), {})[name.strip().replace("-", "_")] = value.strip()
    return out


@click.command("bench")
@click.option("--methods", metavar="A,B", help="Inverters to benchmark (default: every registered inverter).")
@click.option("--domains", "--domain", default="peeps", show_default=True, metavar="A,B",
              help="Domains to benchmark on: registered names or domain files (path/to/domain.toml).")
@click.option("--metrics", metavar="A,B", help="Metrics (default: every registered metric).")
@click.option("--editors", metavar="A,B", help="Editors of the editing sweep (default: all; 'none' skips it).")
@click.option("--steps", metavar="STEPS", help=f"Editing step sizes: {STEPS_HELP} (default -3:3; quick -2,0,2).")
@click.option("--limit", type=int, help=f"Images per split (default {DEFAULT_LIMIT}, quick {QUICK_LIMIT}; 0 = whole split).")
@click.option("--quick", is_flag=True, help="Few images and steps, and the methods' quick options.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (CUDA if any).")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default zoo-runs/<timestamp>); "
              "an existing run folder is resumed.")
@click.option("--resume", is_flag=True, help="Resume the latest run under zoo-runs/ (or --out).")
@click.option("--images", "images_dir", type=click.Path(file_okay=False),
              help="Benchmark the images of this folder against the domain instead of its splits.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per invert call for batchable methods.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-ood", is_flag=True, help="Skip the domain's out-of-domain split.")
@click.option("--option", "-o", "option_pairs", multiple=True, metavar="METHOD.KEY=VALUE",
              help="A method option, e.g. -o mean_latent.batch_size=4, or KEY=VALUE with one --methods "
                   "(repeatable).")
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads (default: torch's choice).")
@click.option("--no-report", is_flag=True, help="Write results.json and rows only (render later: zoo report).")
@click.option("--progress/--no-progress", default=None, help="tqdm bars (default: when stderr is a terminal).")
@click.option("--executor", type=click.Choice(["inprocess", "ray"]), default="inprocess", show_default=True,
              help="Where the work units run: this process, or Ray workers (needs `pip install 'inversion-zoo[ray]'`).")
@click.option("--address", metavar="auto|HOST:PORT", help="Ray: the cluster to join (`ray start --head` prints it; "
              "auto = the one on this machine); default: start a local cluster.")
@click.option("--workers", type=click.IntRange(min=1), help="Ray: worker actors (default: as many as the cluster's "
              "CPUs / GPUs allow).")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Ray: CPUs per worker (its torch threads unless --threads is given).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Ray: GPUs per worker (> 0: workers run on CUDA).")
@click.option("--video", is_flag=True, help="Add the video section: each method on the domain's embedded bench "
              "clip, with and without smoothing and video PTI (flicker, temporal error; docs/video.md).")
@click.option("--video-clips", metavar="A,B", help="--video: embedded clips (default: the domain's bench clip, "
              "peeps: mixed).")
@click.option("--video-frames", type=click.IntRange(min=5), help="--video: frames per clip (default 24, quick 12).")
@click.option("--video-pti-steps", type=click.IntRange(min=0), help="--video: video PTI steps (default 350, quick 20; "
              "0 = no video-PTI rows).")
def bench_command(methods: str | None, domains: str, metrics: str | None, editors: str | None, steps: str | None,
                  limit: int | None, quick: bool, device: str, out: str | None, resume: bool,
                  images_dir: str | None, batch_size: int, seed: int, no_ood: bool, option_pairs: tuple[str, ...],
                  threads: int | None, no_report: bool, progress: bool | None, executor: str, address: str | None,
                  workers: int | None, cpus_per_worker: float, gpus_per_worker: float, video: bool,
                  video_clips: str | None, video_frames: int | None, video_pti_steps: int | None) -> None:
    """Benchmark inverters: reconstruction metrics, time and an editing sweep; resumable (same --out)."""
    from ..bench import BenchConfig, run_bench
    from ..bench.config import latest_run_dir
    from ..bench.report import leaderboard_markdown
    from .edit_cmd import parse_steps

    if resume and out is None:
        latest = latest_run_dir()
        if latest is None:
            raise InputError("--resume: no earlier run under zoo-runs/ (give the run folder with --out)")
        out = str(latest)
        zlog.note(f"resuming {out}")
    config = BenchConfig(
        methods=_names(methods), domains=_names(domains) or [], metrics=_names(metrics), editors=_names(editors),
        steps=parse_steps(steps) if steps else None, limit=limit, quick=quick, device=device, out=out,
        batch_size=batch_size, seed=seed, ood=not no_ood, images_dir=images_dir,
        options=_method_options(option_pairs, _names(methods)), threads=threads, report=not no_report,
        progress=progress, executor=executor, address=address, workers=workers, cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker, video=video, video_clips=_names(video_clips), video_frames=video_frames,
        video_pti_steps=video_pti_steps)
    video_only = [f for f, v in (("--video-clips", video_clips), ("--video-frames", video_frames),
                                 ("--video-pti-steps", video_pti_steps)) if v is not None]
    if video_only and not video:
        raise InputError(f"{' and '.join(video_only)} only apply with --video")
    ray_only = [f for f, v in (("--address", address), ("--workers", workers)) if v is not None]
    if executor != "ray" and ray_only:
        raise InputError(f"{' and '.join(ray_only)} apply only with --executor ray")
    if not config.domains:
        raise InputError("--domains needs at least one domain")
    editors_skipped = editors is not None and editors.strip().lower() == "none"
    if editors is not None and not editors_skipped and not config.editors:
        raise InputError("--editors needs editor names (A,B) or 'none' to skip the editing sweep")
    outcome = run_bench(config)
    click.echo(leaderboard_markdown(outcome.results))
    for name, path in outcome.outputs.items():
        click.echo(f"{name}: {path}")
    if outcome.failures:
        names = ", ".join(f"{f['method']} on {f['domain']}" for f in outcome.failures)
        done = "the others were written" if len(outcome.failures) < len(outcome.results.get("methods", {})) * \
            max(1, len(outcome.results.get("domains", {}))) else "nothing else was run"
        raise ZooError(f"{len(outcome.failures)} method run(s) failed ({names}); {done}; fix the cause above "
                       f"and rerun with --out {outcome.run_dir} to retry")


@click.command("report")
@click.argument("run", type=click.Path(exists=True))
def report_command(run: str) -> None:
    """Re-render the leaderboards and HTML report of a run (RUN = its folder or results JSON)."""
    from ..bench import load_run, render_run
    from ..bench.report import leaderboard_markdown

    results, run_dir = load_run(run)
    paths = render_run(results, run_dir)
    click.echo(leaderboard_markdown(results))
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


def _percent(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        pct = float(value.strip().rstrip("%"))
    except ValueError:
        raise click.BadParameter(f"expected a percentage like 5 or 5%, got '{value}'") from None
    if pct < 0:
        raise click.BadParameter("must be >= 0")
    return pct


@click.command("compare")
@click.argument("run_a", type=click.Path(exists=True))
@click.argument("run_b", type=click.Path(exists=True))
@click.option("--fail-if-worse", "fail_if_worse", metavar="PCT", help="Exit with code 3 when a metric of B is "
              "worse than A by more than PCT percent (e.g. 5 or 5%).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: comparable, differences and rows.")
@click.pass_context
def compare_command(ctx: click.Context, run_a: str, run_b: str, fail_if_worse: str | None, as_json: bool) -> None:
    """Per-metric differences of RUN_B relative to RUN_A (folders or results JSON files). Runs made with other
    settings (images, limit, --quick, options, weights, evaluation) are flagged NOT COMPARABLE, and
    --fail-if-worse then refuses to gate (exit 2)."""
    from ..bench import REGRESSION_EXIT_CODE, compare_runs, load_run, regressions
    from ..bench.compare import difference_line, differences, format_comparison

    pct = _percent(fail_if_worse)
    a, b = load_run(run_a)[0], load_run(run_b)[0]
    rows, diffs = compare_runs(a, b), differences(a, b)
    blocking = [d for d in diffs if d.get("blocking", True)]
    if as_json:
        click.echo(json.dumps({"comparable": not blocking, "differences": diffs, "rows": rows}, indent=2,
                              default=_json_default))
    else:
        click.echo(format_comparison(rows, diffs))
    for d in blocking:
        zlog.warn(f"runs differ: {difference_line(d)}")
    if pct is not None and blocking:
        raise click.UsageError(f"--fail-if-worse refused: the runs are not comparable ({len(blocking)} setting(s) "
                               f"differ, first: {difference_line(blocking[0])}); compare runs made with the same "
                               "settings")
    if pct is not None:
        bad = regressions(rows, pct)
        if bad:
            worst = ", ".join(f"{r['method']} {r['domain']}/{r['split']} {r['metric']} {r['pct']:+.1f}%" for r in bad)
            error_line(f"{len(bad)} metric(s) worse by more than {pct:g}%: {worst}")
            ctx.exit(REGRESSION_EXIT_CODE)


def _json_default(value: Any) -> Any:
    return str(value)


commands = (bench_command, report_command, compare_command)
