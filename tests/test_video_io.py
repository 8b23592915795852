"""Clip I/O (zoo.video.clip_io) and the embedded peeps clips (zoo_peeps.clips)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zoo import registry
from zoo.errors import InputError
from zoo.video.clip_io import encode_mp4, load_clip, read_frame_folder, read_video


@pytest.fixture(scope="module")
def clip():
    from zoo_peeps.clips import make_clip

    return make_clip("turn", 6)


def test_embedded_clip_has_ground_truth(clip):
    from zoo_peeps.clips import make_clip

    assert clip.frames.shape == (6, 3, 32, 32) and clip.truth is not None and torch.equal(clip.frames, clip.truth)
    rot = [p["rotation"] for p in clip.params]
    assert max(rot) > 5 and min(rot) < -5 and all(p["tx"] == 0 for p in clip.params)  # the 'turn' clip
    assert clip.transforms().shape == (6, 3, 3)
    assert torch.equal(clip.aligned[0], clip.aligned[-1]) and not torch.equal(clip.aligned[1], clip.frames[1])
    again = make_clip("turn", 6)
    assert torch.equal(again.frames, clip.frames)  # deterministic
    shaky = make_clip("turn", 6, jitter=(3.0, 0.02), seed=1)
    assert torch.equal(shaky.truth, clip.frames) and not torch.equal(shaky.frames, clip.frames)
    assert "truth_rotation" in shaky.params[0]


def test_mp4_roundtrip(tmp_path: Path, clip):
    path = tmp_path / "clip.mp4"
    encode_mp4(clip.frames, path, fps=10.0)
    back = read_video(path, 32)
    assert back.frames.shape == clip.frames.shape and back.fps == pytest.approx(10.0)
    assert float((back.frames - clip.frames).abs().mean()) < 0.05  # H.264 yuv420p is lossy, not wrong
    big = tmp_path / "big.mp4"
    encode_mp4(clip.frames, big, fps=10.0, scale=4)  # upscaled 128 px frames come back resized to 32
    assert read_video(big, 32).frames.shape == clip.frames.shape


def test_frame_folder_roundtrip_is_exact(tmp_path: Path, clip):
    from zoo.io import write_png

    for i, f in enumerate(clip.frames):
        write_png(f, tmp_path / f"f{i:03d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    back = read_frame_folder(tmp_path, 32)
    assert torch.equal(back.frames, clip.frames)  # rendered frames are exact uint8 values
    assert back.frame_names == [f"f{i:03d}.png" for i in range(6)]


def test_load_clip_errors(tmp_path: Path):
    dom = registry.get_domain("peeps")
    with pytest.raises(InputError, match="no such video file"):
        load_clip(str(tmp_path / "missing.mp4"), dom)
    with pytest.raises(InputError, match="unknown clip 'nope'.*mixed"):
        load_clip("embedded:nope", dom)
    with pytest.raises(InputError, match="FRAMES must be an integer"):
        load_clip("embedded:turn:x", dom)
    with pytest.raises(InputError, match="no readable frame images"):
        load_clip(str(tmp_path), dom)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="bad.mp4"):
        load_clip(str(tmp_path / "bad.mp4"), dom)
    assert len(load_clip("embedded:talk:5", dom)) == 5
    assert len(load_clip("embedded:talk:6", dom, max_frames=5)) == 5
