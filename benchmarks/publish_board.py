"""Regenerate the published leaderboard of the embedded domain: `python benchmarks/publish_board.py`.

Runs `zoo bench` with the board protocol (every built-in inverter on `peeps` plus its out-of-domain split,
`--limit 32` images per split, the default editing sweep, 2 threads) into `zoo-runs/board-peeps` (a rerun resumes
from the per-image cache), then copies the outputs that are small and stable into `benchmarks/board/peeps/`:

* `leaderboard.md`, `leaderboard.csv`, `edits.csv` — the tables;
* `results.json` — the run's result file (configuration, environment, cards, weights sha256, aggregates with
  standard errors and n, timing); per-image rows stay in the run folder;
* `quality_vs_time.png` (the HyperStyle paper's figure) and the editing curves `edits_id.png`,
  `edits_attribute.png`;

and rewrites the README section between `<!-- board:start -->` and `<!-- board:end -->`.

Usage::

    python benchmarks/publish_board.py                  # full protocol
    python benchmarks/publish_board.py --limit 64 -- --methods psp,e4e   # extra args after -- go to zoo bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BOARD = HERE / "board" / "peeps"
README = ROOT / "README.md"
START, END = "<!-- board:start -->", "<!-- board:end -->"
COPY = ("leaderboard.md", "leaderboard.csv", "edits.csv", "results.json")


def zoo_command() -> list[str]:
    script = Path(sys.executable).with_name("zoo")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from zoo.cli import main; main()"]


def readme_section(results: dict, board_md: str) -> str:
    env, cfg = results.get("env", {}), results.get("config", {})
    git = results.get("git", {}) or {}
    head = (f"Embedded domain `peeps` (32×32), {cfg.get('limit')} test images + {cfg.get('limit')} out-of-domain "
            f"images per method, metrics at 256×256, editing steps {cfg.get('steps')}; "
            f"{env.get('device_name', env.get('device'))}, {env.get('threads')} threads, torch {env.get('torch')}, "
            f"commit `{str(git.get('commit', ''))[:10]}`. Regenerate: `python benchmarks/publish_board.py`; "
            f"files in `benchmarks/board/peeps/`.")
    if "\nTime:" in board_md:  # the reconstruction tables and the timing note; the editing tables stay in the file
        cut = board_md.index("\nTime:")
        board_md = board_md[: board_md.index("\n", cut + 1)] + (
            "\n\nEditing sweep (attribute change and ID kept per editor, direction and step): "
            "`benchmarks/board/peeps/leaderboard.md`, `edits.csv`.")
    plot = "\n\n![quality vs time](benchmarks/board/peeps/quality_vs_time.png)" if (
        BOARD / "quality_vs_time.png").is_file() else ""
    return f"{START}\n{head}\n\n{board_md.strip()}{plot}\n{END}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=32, help="images per split (>= 32 for a leaderboard-eligible run)")
    ap.add_argument("--out", default="zoo-runs/board-peeps", help="run folder, relative to the repository (reruns "
                                                                  "resume)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-readme", action="store_true", help="do not touch README.md")
    ap.add_argument("extra", nargs="*", help="arguments passed to zoo bench (after --)")
    args = ap.parse_args(argv)
    out = ROOT / args.out
    cmd = [*zoo_command(), "bench", "--domains", "peeps", "--limit", str(args.limit), "--out", args.out,
           "--threads", str(args.threads), *args.extra]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    env = dict(os.environ)  # the board lists the built-in methods: the example third-party plugin is left out
    env["ZOO_DISABLE_PLUGINS"] = ",".join(filter(None, [env.get("ZOO_DISABLE_PLUGINS", ""), "example"]))
    proc = subprocess.run(cmd, check=False, env=env, cwd=ROOT)
    results_path = out / "results.json"
    if proc.returncode != 0 or not results_path.is_file():
        print(f"zoo bench failed (exit {proc.returncode}); nothing published", file=sys.stderr)
        return proc.returncode or 1
    results = json.loads(results_path.read_text())
    BOARD.mkdir(parents=True, exist_ok=True)
    for name in COPY:  # copied without this machine's paths
        if (out / name).is_file():
            text = (out / name).read_text().replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
            (BOARD / name).write_text(text)
    from zoo.bench.plots import edit_curves, quality_vs_time

    split = results.get("config", {}).get("split", "test")
    for name, png in (("quality_vs_time.png", quality_vs_time(results, "peeps", split)),
                      ("edits_id.png", edit_curves(results, "peeps", split, "id")),
                      ("edits_attribute.png", edit_curves(results, "peeps", split, "attribute"))):
        if png:
            (BOARD / name).write_bytes(png)
    if not args.no_readme and README.is_file():
        text = README.read_text()
        section = readme_section(results, (out / "leaderboard.md").read_text())
        if START in text and END in text:
            text = text[: text.index(START)] + section + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n## Leaderboard\n\n" + section + "\n"
        README.write_text(text)
    eligible = results.get("leaderboard_eligible")
    print(f"published {BOARD.relative_to(ROOT)} (leaderboard_eligible={eligible})", file=sys.stderr)
    return 0 if eligible else 2


if __name__ == "__main__":
    sys.exit(main())
