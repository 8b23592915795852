"""User-transform maths of zoo.stylegan3.transforms: make_transform / inverse against the official outputs, the
stylegan3-editing eye-landmark transform (landmarks_transform.pt, atol 1e-6), arccos clipping, and the on-screen sign
convention checked on the Fourier features (exact grid moves)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from conftest import reference_file
from zoo.stylegan3.layers import SynthesisInput
from zoo.stylegan3.transforms import (as_generator_transform, eye_centres, generator_transform, make_transform,
                                      pose_from_transform, rotate_points_like_pil, rotation_from_eyes,
                                      stylegan_transform)

F64 = torch.float64


@pytest.fixture(scope="module")
def landmarks():
    return torch.load(reference_file("sg3/landmarks_transform.pt"), weights_only=True)


def test_landmark_transforms_match_stylegan3_editing(landmarks):
    assert len(landmarks["cases"]) == 3
    for c in landmarks["cases"]:
        r, t, m, inv = stylegan_transform(c["landmarks_unaligned"], c["landmarks_aligned"],
                                          c["landmarks_rotated_aligned"], c["aligned_image_size"])
        assert abs(r - c["rotation_angle"]) <= 1e-6, c["tag"]
        assert np.allclose(t, c["translation"], atol=1e-6, rtol=0), c["tag"]
        torch.testing.assert_close(m, torch.tensor(c["transform_f64"], dtype=F64), atol=1e-6, rtol=0)
        torch.testing.assert_close(inv, torch.tensor(c["inverse_transform_f64"], dtype=F64), atol=1e-6, rtol=0)
        torch.testing.assert_close(inv.float(), c["inverse_transform"], atol=1e-6, rtol=0)
        eyes = c["eyes"]
        left, right = eye_centres(c["landmarks_unaligned"])
        assert np.allclose(left, eyes["unaligned_left"]) and np.allclose(right, eyes["unaligned_right"])


def test_pil_rotation_of_points_reproduces_the_rotated_landmarks(landmarks):
    for c in landmarks["cases"]:
        size = (c["aligned_image_size"],) * 2
        rot = rotate_points_like_pil(c["landmarks_aligned"].numpy(), c["rotation_angle"], size)
        assert np.array_equal(np.round(rot), c["landmarks_rotated_aligned"].numpy()), c["tag"]
        # without re-detection (geometric rotation): within rounding of the official translation
        _, t, _, _ = stylegan_transform(c["landmarks_unaligned"], c["landmarks_aligned"], None, size[0])
        assert np.allclose(t, c["translation"], atol=1.0 / size[0]), c["tag"]


def test_arccos_clipping_is_deliberate():
    """Parallel eye lines whose normalised dot product rounds above 1: the official returns NaN, we return 0."""
    found = None
    for a, b, k in itertools.product(range(1, 40), range(1, 40), range(2, 6)):
        u = np.array([a, b], float) / math.hypot(a, b)
        v = np.array([k * a, k * b], float) / math.hypot(k * a, k * b)
        if np.dot(u, v) > 1.0:
            found = (a, b, k)
            break
    assert found is not None
    a, b, k = found
    args = ((0, 0), (a, b), (10, 10), (10 + k * a, 10 + k * b))
    assert math.isnan(rotation_from_eyes(*args, clip=False))
    r = rotation_from_eyes(*args)
    assert r in (0.0, 360.0)
    # the right eye lower than the left (larger y) -> 360 - r
    assert rotation_from_eyes((0, 0), (10, 10), (0, 0), (10, 0)) == pytest.approx(315.0)
    assert rotation_from_eyes((0, 10), (10, 0), (0, 0), (10, 0)) == pytest.approx(45.0)


def test_make_transform_and_inverse_match_the_generator_fixture():
    fx = torch.load(reference_file("sg3/sg3_t_small.pt"), weights_only=True)
    for name in ("transform_translate", "transform_rotate", "transform_rotate_translate"):
        c = fx["cases"][name]
        m = make_transform(c["r_degrees"], c["tx"], c["ty"])
        torch.testing.assert_close(m, torch.tensor(c["make_transform_f64"], dtype=F64), atol=1e-12, rtol=0)
        inv = generator_transform(c["r_degrees"], c["tx"], c["ty"], dtype=F64)
        torch.testing.assert_close(inv, torch.tensor(c["transform_f64"], dtype=F64), atol=1e-12, rtol=0)
        assert torch.equal(generator_transform(c["r_degrees"], c["tx"], c["ty"]), c["transform"])


def test_pose_roundtrip_and_batching():
    r, tx, ty = torch.tensor([-170.0, 0.0, 35.5]), torch.tensor([0.1, -0.2, 0.0]), torch.tensor([0.0, 0.05, -0.3])
    m = make_transform(r, tx, ty)
    assert m.shape == (3, 3, 3)
    for got, want in zip(pose_from_transform(m), (r, tx, ty)):
        torch.testing.assert_close(got.float(), want, atol=1e-5, rtol=0)
    for got, want in zip(pose_from_transform(generator_transform(r, tx, ty), inverse=True), (r, tx, ty)):
        torch.testing.assert_close(got.float(), want, atol=1e-5, rtol=0)
    assert as_generator_transform((r, tx, ty)).shape == (3, 3, 3)
    assert as_generator_transform(None) is None
    with pytest.raises(ValueError, match="transform"):
        as_generator_transform(torch.eye(4))


def test_on_screen_convention_on_fourier_features():
    """Positive tx moves the content right, positive ty down, positive r turns it counter-clockwise on screen
    (checked where the motion maps the sample grid onto itself, so the comparison is exact up to float)."""
    torch.manual_seed(0)
    layer = SynthesisInput(w_dim=8, channels=6, size=36, sampling_rate=16, bandwidth=2).eval()
    w = torch.randn(1, 8)
    with torch.no_grad():
        base = layer(w)
        right = layer(w, transform=generator_transform(0.0, 2 / 16, 0.0))  # 2 samples to the right
        down = layer(w, transform=generator_transform(0.0, 0.0, 3 / 16))   # 3 samples down
        ccw = layer(w, transform=generator_transform(90.0, 0.0, 0.0))
    torch.testing.assert_close(right[..., :, 2:], base[..., :, :-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(down[..., 3:, :], base[..., :-3, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(ccw, torch.rot90(base, 1, dims=(2, 3)), atol=1e-5, rtol=0)
    assert not torch.allclose(ccw, torch.rot90(base, -1, dims=(2, 3)), atol=1e-3)


@pytest.mark.parametrize("r, tx, ty", [(30.0, 0.0, 0.0), (-20.0, 0.1, -0.05), (8.0, -0.06, 0.06)])
def test_pil_pose_equals_make_transform(r, tx, ty):
    """A pose rendered as the peeps renderer does (PIL `rotate(r, translate=(tx, ty) * side)`: counter-clockwise, then
    right/down) moves content exactly like make_transform(r, tx, ty) in centred image-width units (y down)."""
    from PIL import Image

    side = 129
    img = Image.new("L", (side, side), 0)
    x0, y0 = 90, 50  # a bright 3x3 dot off centre
    img.paste(255, (x0 - 1, y0 - 1, x0 + 2, y0 + 2))
    moved = np.asarray(img.rotate(r, resample=Image.Resampling.BICUBIC, translate=(tx * side, ty * side)), float)
    ys, xs = np.nonzero(moved > 0.5 * moved.max())
    w = moved[ys, xs]
    found = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
    p = torch.tensor([(x0 + 0.5) / side - 0.5, (y0 + 0.5) / side - 0.5, 1.0], dtype=F64)
    q = make_transform(r, tx, ty) @ p
    expected = np.array([(float(q[0]) + 0.5) * side - 0.5, (float(q[1]) + 0.5) * side - 0.5])
    assert np.abs(found - expected).max() < 0.6, (found, expected)
    # and the (float32) matrix the generator receives gives the pose back
    got = pose_from_transform(generator_transform(r, tx, ty), inverse=True)
    assert np.allclose([float(v) for v in got], [r, tx, ty], atol=1e-4, rtol=0)
