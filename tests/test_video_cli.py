"""`zoo video invert|edit` end to end on a tiny 6-frame embedded clip with a fast encoder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from zoo.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_video_edit_end_to_end(tmp_path: Path):
    out = tmp_path / "out"
    args = ["video", "edit", "embedded:turn:6", "--method", "psp", "--direction", "smile", "--steps", "2",
            "--edges", "replicate", "--video-pti", "--pti-steps", "2", "--pti-option", "lpips_weight=0",
            "--pti-option", "lpips_threshold=0", "--device", "cpu", "--out", str(out)]
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert "6 frames of embedded:turn:6 edited with psp" in res.output
    for f in ("video.mp4", "strip.png", "metrics.json", "video_run.json", "video_pti.safetensors"):
        assert (out / f).is_file(), f
    assert len(list((out / "frames").glob("*.inversion.safetensors"))) == 6
    m = json.loads((out / "metrics.json").read_text())
    assert m["frames_out"] == 6 and m["columns"] == ["input", "unsmoothed", "reconstruction", "smile +2"]
    rec = m["reconstruction"]
    assert len(rec["per_frame"]["l2"]) == 6 and rec["flicker"] > 0 and len(rec["gt_l1"]) == 6
    assert m["video_pti"]["steps"] == 2
    from PIL import Image

    with Image.open(out / "strip.png") as im:  # a label column + 6 frames of 32 px, 4 rows, x3
        assert im.size == (96 + 6 * 32 * 3, 4 * 32 * 3)
    # an earlier run is never silently replaced; --resume reuses the saved frames
    again = run(*args)
    assert again.exit_code != 0 and "already holds a `zoo video` run" in again.output
    resumed = run(*args, "--resume", "--no-metrics")
    assert resumed.exit_code == 0, resumed.output
    assert "6 frame inversion(s) reused" in resumed.output


def test_video_sg3_only_options_fail_clearly(tmp_path: Path):
    res = run("video", "invert", "embedded:turn:6", "--method", "psp", "--fov", "8", "--out", str(tmp_path / "o"))
    assert res.exit_code != 0 and "needs an SG3 domain" in res.output
    assert not (tmp_path / "o").exists()
    res = run("video", "invert", "embedded:turn:3", "--method", "psp", "--out", str(tmp_path / "o"))
    assert res.exit_code != 0 and "at least 5 frames" in res.output
    assert not (tmp_path / "o").exists()
    frames = tmp_path / "frames"
    frames.mkdir()
    from zoo.io import write_png
    from zoo_peeps.clips import make_clip

    for i, f in enumerate(make_clip("turn", 5).frames):
        write_png(f, frames / f"{i}.png")
    before = sorted(p.name for p in frames.iterdir())
    res = run("video", "invert", str(frames), "--method", "psp", "--out", str(frames))
    assert res.exit_code != 0 and "is the input folder" in res.output
    assert sorted(p.name for p in frames.iterdir()) == before  # inputs untouched
