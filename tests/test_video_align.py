"""Real clips for `zoo video --unaligned` (zoo.video.align_frames): every frame of a frame folder / mp4 aligned with
dlib as `zoo align` does. A tiny clip = a real photo's FFHQ crop moved by known amounts per frame (PIL rotate +
translate = make_transform(r, tx, ty), as tests/test_stylegan3_align.py pins); the recovered per-frame transforms
must follow those motions, a frame without a face fails in one line naming it (or reuses the previous alignment), and
the CLI runs end to end on a tiny StyleGAN3 domain file. Needs the [align] extra (skipped else)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from zoo.align import ffhq
from zoo.errors import InputError, ZooError

pytest.importorskip("dlib", reason="dlib is not installed: pip install 'inversion-zoo[align]'", exc_type=ImportError)
pytest.importorskip("zoo.stylegan3")
try:
    ffhq.landmark_model_path()
except ZooError as exc:
    pytest.skip(str(exc), allow_module_level=True)

from zoo.video.align_frames import align_clip  # noqa: E402

SIZE = 256
MOTION = [(0.0, 0.0, 0.0), (4.0, 0.02, -0.01), (8.0, 0.04, -0.02), (12.0, 0.06, -0.03)]  # (r deg, tx, ty) per frame


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory) -> Path:
    aligned = ffhq.align_ffhq(skdata.astronaut(), output_size=SIZE)
    assert aligned is not None
    folder = tmp_path_factory.mktemp("clip") / "frames"
    folder.mkdir()
    for i, (r, tx, ty) in enumerate(MOTION):
        aligned.rotate(r, resample=Image.Resampling.BICUBIC, translate=(tx * SIZE, ty * SIZE)).save(
            folder / f"{i:03d}.png")
    return folder


@pytest.mark.parametrize("frame", ["first", "image"])
def test_recovered_transforms_follow_the_known_motion(frames_dir, frame):
    clip = align_clip(frames_dir, 16, frame=frame)
    assert clip.frames.shape == clip.aligned.shape == (4, 3, 16, 16) and clip.frame_names[0] == "000.png"
    got = [(p["rotation"], p["tx"], p["ty"]) for p in clip.params]
    print(frame, [tuple(round(v, 4) for v in g) for g in got])
    for (r, tx, ty), (gr, gtx, gty) in zip(MOTION, got):  # relative to frame 0 (the unmoved crop)
        assert abs((gr - got[0][0]) - r) < 1.0
        assert abs((gtx - got[0][1]) - tx) < 0.01 and abs((gty - got[0][2]) - ty) < 0.01
    if frame == "first":  # frame 0's own crop is the fixed frame: identity transform
        assert abs(got[0][0]) < 1e-6 and abs(got[0][1]) < 1e-6 and abs(got[0][2]) < 1e-6
    t = clip.transforms()  # inverse transforms: rotation by -r
    assert t.shape == (4, 3, 3) and float(t[3, 0, 1]) < -0.15


def test_frame_without_a_face(frames_dir, tmp_path):
    folder = tmp_path / "gap"
    folder.mkdir()
    Image.open(frames_dir / "001.png").save(folder / "a.png")
    Image.new("RGB", (SIZE, SIZE), (90, 90, 90)).save(folder / "b.png")
    with pytest.raises(InputError, match=r"no face found in frame 1 \(b.png\).*--no-face previous"):
        align_clip(folder, 16)
    clip = align_clip(folder, 16, missing="previous")
    assert [p["landmarks_from"] for p in clip.params] == ["frame", "previous frame"]
    assert clip.params[1]["rotation"] == pytest.approx(clip.params[0]["rotation"], abs=1e-9)
    with pytest.raises(InputError, match="first frame needs a face"):
        align_clip(_reversed(folder, tmp_path), 16, missing="previous")


def _reversed(folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "rev"
    out.mkdir()
    Image.open(folder / "b.png").save(out / "0.png")
    Image.open(folder / "a.png").save(out / "1.png")
    return out


def test_mp4_clip_is_aligned(frames_dir, tmp_path):
    from zoo.video.clip_io import encode_mp4

    x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
                     for f in sorted(frames_dir.glob("*.png"))]).float().div(127.5).sub(1)
    encode_mp4(x, tmp_path / "clip.mp4", 12.0)
    clip = align_clip(tmp_path / "clip.mp4", 16, max_frames=3)
    assert len(clip) == 3 and clip.name == "clip" and clip.frame_names[2] == "frame_0002"
    assert abs(clip.params[2]["rotation"] - 8.0) < 1.5


def test_cli_unaligned_on_a_frame_folder(frames_dir, tmp_path):
    from official_files import write_sg3_domain

    from zoo.cli import main

    domain = write_sg3_domain(tmp_path / "dom")
    out = tmp_path / "run"
    args = ["video", "invert", str(frames_dir), "--method", "optim", "-o", "steps=2", "-o", "w_avg_samples=100", "--domain", str(domain),
            "--unaligned", "--edges", "replicate", "--no-metrics", "--scale", "1", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames_out"] == 4 and len(metrics["transforms"]["smoothed"]) == 4
    run = json.loads((out / "video_run.json").read_text())
    assert "--unaligned" in run["resume_command"] and len(list((out / "frames").iterdir())) == 4
    refused = CliRunner().invoke(main, ["video", "invert", "embedded:turn:6", "--method", "psp", "--no-face",
                                        "previous", "--out", str(tmp_path / "y")])
    assert refused.exit_code != 0 and "--no-face apply to --unaligned" in refused.output
