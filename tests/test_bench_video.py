"""`zoo bench --video` on a tiny embedded peeps clip with a fast encoder: the section, smoothing rows, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.bench import BenchConfig, run_bench
from zoo.bench.report import fmt
from zoo.cli.bench import bench_command
from zoo.errors import InputError


def config(out: Path, **kw) -> BenchConfig:
    return BenchConfig(methods=["psp"], domains=["peeps"], metrics=["l2"], editors=[], limit=2, ood=False,
                       quick=True, device="cpu", out=str(out), timing_images=2, threads=1, video=True,
                       video_clips=["mixed"], video_frames=7, video_pti_steps=2, **kw)


def test_bench_video_section_and_resume(tmp_path: Path):
    out = tmp_path / "run"
    first = run_bench(config(out))
    video = first.results["video"]
    assert not video["failures"] and not first.failures
    rows = {(r["smoothing"], r["video_pti_steps"]): r for r in video["rows"]}
    assert set(rows) == {("none", 0), ("official", 0), ("none", 2), ("official", 2)}
    for r in rows.values():  # 7 frames, smoothing without padding keeps 3; both rows of a run score the same frames
        assert r["frames"] == 3 and r["frames_in"] == 7 and r["method"] == "psp" and r["clip"] == "mixed"
        assert r["flicker"] > 0 and r["input_flicker"] > 0 and r["gt_l1_mean"] > 0 and r["wall_s"] > 0
        assert not r["reused"]
    for pti in (0, 2):  # smoothing changes the reconstruction: every measure of the output differs
        smooth, raw = rows[("official", pti)], rows[("none", pti)]
        assert smooth["input_flicker"] == raw["input_flicker"]
        for k in ("flicker", "temporal_error", "gt_l1_mean", "l2"):
            assert abs(smooth[k] - raw[k]) > 1e-6, k
    assert rows[("none", 2)]["video_pti_steps_run"] == 2
    assert abs(rows[("none", 2)]["l2"] - rows[("none", 0)]["l2"]) > 1e-6  # the tuned generator renders other frames
    assert json.loads((out / "video.json").read_text())["rows"] == json.loads(json.dumps(video["rows"]))
    board = (out / "leaderboard.md").read_text()
    assert "## Video (embedded clips)" in board and "flicker out / in" in board and "2/2 steps" in board
    page = (out / "report.html").read_text()  # report.html shows the same table (one row per video row) + a toc entry
    section = page[page.index('<h2 id="video">'):page.index('id="configuration"')]
    assert 'href="#video"' in page and "flicker out / in" in section and "2/2 steps" in section
    assert section.count("<tr") == 1 + len(video["rows"]) and fmt(rows[("official", 2)]["l2"]) in section
    assert len(list(out.glob("video/peeps/mixed-7/psp-*/frames/*.inversion.safetensors"))) == 7

    records = {r["pti_steps"]: (p, r) for p in out.glob("cache/*/*.json")
               if "summaries" in (r := json.loads(p.read_text()))}
    assert any("7 frame inversion(s) reused" in n for n in records[2][1]["notes"])  # video PTI tunes the saved frames

    # a rerun resumes: every pipeline run comes from the cache with the same numbers
    again = run_bench(config(out))
    rows2 = {(r["smoothing"], r["video_pti_steps"]): r for r in again.results["video"]["rows"]}
    assert all(r["reused"] for r in rows2.values())
    for k, r in rows.items():
        assert rows2[k]["flicker"] == r["flicker"] and rows2[k]["wall_s"] == r["wall_s"]
    # a lost record is recomputed from the saved frame inversions (none inverted again), with the same numbers
    records[0][0].unlink()
    third = run_bench(config(out))
    rows3 = {(r["smoothing"], r["video_pti_steps"]): r for r in third.results["video"]["rows"]}
    assert not rows3[("official", 0)]["reused"] and rows3[("official", 2)]["reused"]
    assert abs(rows3[("official", 0)]["flicker"] - rows[("official", 0)]["flicker"]) < 1e-6
    redone = next(json.loads(p.read_text()) for p in out.glob("cache/*/*.json") if p.name == records[0][0].name)
    assert any("7 frame inversion(s) reused" in n for n in redone["notes"])


def test_bench_video_errors(tmp_path: Path):
    with pytest.raises(InputError, match="not an embedded clip of domain 'peeps'"):
        run_bench(BenchConfig(**{**config(tmp_path / "a").__dict__, "video_clips": ["nope"]}))
    assert not (tmp_path / "a").exists()
    with pytest.raises(InputError, match="video-frames >= 5"):
        run_bench(BenchConfig(**{**config(tmp_path / "b").__dict__, "video_frames": 3}))
    res = CliRunner().invoke(bench_command, ["--video-frames", "6", "--out", str(tmp_path / "c")])
    assert res.exit_code != 0 and "only apply with --video" in str(res.exception)  # one line via zoo's CLI group
