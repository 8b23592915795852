"""Unaligned inputs (zoo.align.unaligned, `zoo align`): the (r, tx, ty) that carries the FFHQ-aligned crop into the
unaligned frame, computed from dlib's eye landmarks as stylegan3-editing does. Sign convention pinned on a real
photo: the aligned crop moved by a known image motion (PIL rotate + translate = make_transform(r, tx, ty), see
test_stylegan3_transforms) is recovered within 1 degree / 1 % of the width. Needs the [align] extra (skipped else)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from zoo.align import ffhq
from zoo.align.unaligned import quad_to_crop, read_transforms_file, unaligned_inputs, upright_square
from zoo.errors import InputError, ZooError

pytest.importorskip("dlib", reason="dlib is not installed: pip install 'inversion-zoo[align]'", exc_type=ImportError)
try:
    ffhq.landmark_model_path()
except ZooError as exc:
    pytest.skip(str(exc), allow_module_level=True)

SIZE = 256


@pytest.fixture(scope="module")
def aligned() -> Image.Image:
    image = ffhq.align_ffhq(skdata.astronaut(), output_size=SIZE)
    assert image is not None
    return image


def test_crop_geometry_maps_the_quad_corners():
    quad = upright_square(np.array([50.0, 40.0]), 20.0)
    np.testing.assert_allclose(quad_to_crop(quad, quad, 10), [[0, 0], [0, 10], [10, 10], [10, 0]], atol=1e-12)
    rot = np.array([[10.0, 0.0], [0.0, 10.0], [10.0, 20.0], [20.0, 10.0]])  # a square turned by 45 degrees
    np.testing.assert_allclose(quad_to_crop(rot.mean(0, keepdims=True), rot, 8), [[4.0, 4.0]], atol=1e-12)


@pytest.mark.parametrize("pose", [(12.0, 0.05, -0.03), (-8.0, -0.04, 0.06), (0.0, 0.08, 0.0)])
def test_known_motion_is_recovered(aligned, pose):
    r, tx, ty = pose
    moved = aligned.rotate(r, resample=Image.Resampling.BICUBIC, translate=(tx * SIZE, ty * SIZE))
    res = unaligned_inputs(moved, SIZE, frame="image")
    assert res is not None
    crop, frame, got = res
    assert crop.size == frame.size == (SIZE, SIZE)
    print(f"known {pose} recovered ({got.signed_r:.3f}, {got.tx:.4f}, {got.ty:.4f})")
    assert abs(got.signed_r - r) < 1.0
    assert abs(got.tx - tx) < 0.01 and abs(got.ty - ty) < 0.01


def test_face_frame_gives_the_roll_and_no_translation(aligned):
    photo = Image.fromarray(skdata.astronaut()).rotate(15, resample=Image.Resampling.BICUBIC)
    plain = unaligned_inputs(skdata.astronaut(), SIZE)[2]
    rolled = unaligned_inputs(photo, SIZE)[2]
    assert abs((rolled.signed_r - plain.signed_r) - 15.0) < 1.0  # the photo turned 15 degrees CCW
    assert abs(rolled.tx) < 1e-9 and abs(rolled.ty) < 1e-9


def test_align_command_writes_crops_and_transforms(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skdata.astronaut()).save(photos / "astro.png")
    Image.new("RGB", (64, 64)).save(photos / "blank.png")
    res = CliRunner().invoke(__import__("zoo.cli", fromlist=["main"]).main,
                             ["align", str(photos), "--out", str(tmp_path / "al"), "--size", "32"])
    assert res.exit_code == 0, res.output
    for sub in ("aligned", "unaligned"):
        assert (tmp_path / "al" / sub / "astro.png").is_file()
    data = json.loads((tmp_path / "al" / "transforms.json").read_text())
    assert list(data["images"]) == ["astro.png"] and str(photos / "blank.png") in data["skipped"]
    r, tx, ty = read_transforms_file(tmp_path / "al" / "transforms.json")["astro.png"]
    assert 0 <= r < 360 and abs(tx) < 1e-9
    with pytest.raises(InputError, match="not a transforms file"):
        (tmp_path / "bad.json").write_text("{}")
        read_transforms_file(tmp_path / "bad.json")
