"""Video smoothing (zoo.video.smoothing): parity with stylegan3-editing's `smooth_ws` pipeline
(../shared/reference/sg3/smoothing.pt), edge replication, and that smoothing lowers flicker on a jittered clip."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import InputError
from zoo.video.metrics import flicker, temporal_error
from zoo.video.smoothing import (average_fine_codes, default_fine_from, kept_frames, smooth_latents, smooth_sequence,
                                 smooth_transforms, smooth_ws)
from zoo.video.transforms import inverse_transforms


def test_parity_with_official_smoothing(load_reference):
    ref = load_reference("sg3/smoothing.pt")
    lat = ref["latents"]
    torch.testing.assert_close(smooth_ws(lat), ref["smoothed_latents"], atol=1e-6, rtol=0)
    torch.testing.assert_close(average_fine_codes(lat, 9), ref["latents_fine_layers_averaged"], atol=1e-6, rtol=0)
    torch.testing.assert_close(smooth_latents(lat, default_fine_from(16)), ref["smoothed_latents_pipeline"],
                               atol=1e-6, rtol=0)
    # transforms: the official video path smooths float64 matrices; the float32 variant is stored too
    t64 = ref["transforms"].double()
    want = torch.tensor(ref["smoothed_transforms_f64"], dtype=torch.float64)
    torch.testing.assert_close(smooth_transforms(t64), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(smooth_transforms(ref["transforms"]), ref["smoothed_transforms_from_float32"],
                               atol=1e-6, rtol=0)
    # the per-frame inverse transforms of (r, tx, ty) follow the official make_transform convention
    params = [{"rotation": p["r_degrees"], "tx": p["tx"], "ty": p["ty"]} for p in ref["transform_params"]]
    torch.testing.assert_close(inverse_transforms(params).float(), ref["transforms"], atol=1e-6, rtol=0)


def test_kernel_is_the_official_window():
    impulse = torch.zeros(9)
    impulse[4] = 1.0
    out = smooth_ws(impulse.double())
    torch.testing.assert_close(out, torch.tensor([0.25, 0.75, 1.0, 0.75, 0.25], dtype=torch.float64) / 3)
    assert smooth_ws(torch.ones(7, 2)).shape == (3, 2)  # no padding: T - 4
    with pytest.raises(InputError):
        smooth_ws(torch.zeros(4, 3))


def test_edge_replication_keeps_every_frame():
    x = torch.randn(11, 8, 4, generator=torch.Generator().manual_seed(1))
    out = smooth_sequence(x, "replicate")
    assert out.shape == x.shape
    torch.testing.assert_close(out[2:-2], smooth_ws(x))  # interior frames are the official ones
    first = (0.25 * x[0] + 0.75 * x[0] + x[0] + 0.75 * x[1] + 0.25 * x[2]) / 3
    torch.testing.assert_close(out[0], first)
    assert smooth_sequence(x[:3], "replicate").shape[0] == 3  # even clips shorter than the window
    assert kept_frames(11, True, "none") == list(range(2, 9)) and kept_frames(11, True, "replicate") == list(range(11))


def test_fine_codes_are_constant_over_time():
    x = torch.randn(6, 8, 4, generator=torch.Generator().manual_seed(2))
    out = average_fine_codes(x, 6)
    assert torch.equal(out[:, :6], x[:, :6])
    assert torch.allclose(out[:, 6:], x[:, 6:].mean(0, keepdim=True).expand(6, 2, 4))
    assert torch.equal(average_fine_codes(x, None), x)
    assert default_fine_from(16) == 9 and default_fine_from(8) == 6


def test_smoothing_lowers_flicker_on_a_jittered_clip():
    """A smooth W+ trajectory of the peeps generator with per-frame jitter: the smoothed render flickers less and is
    closer to the clean render's motion."""
    from zoo import registry

    g = registry.get_domain("peeps").generator("cpu").generator
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        w = g.style(torch.randn(2, g.style_dim, generator=gen))
        t = torch.linspace(0, 1, 16).reshape(-1, 1)
        clean = (w[:1] * (1 - t) + w[1:] * t).unsqueeze(1).repeat(1, g.n_latent, 1)  # [16, L, D]
        shaky = clean + 0.35 * torch.randn(clean.shape, generator=gen) * clean.std()
        render = lambda lat: g([lat], input_is_latent=True, randomize_noise=False)[0]  # noqa: E731
        truth, raw = render(clean), render(shaky)
        smoothed = render(smooth_latents(shaky, None))  # kept frames 2..13
    kept = kept_frames(16, True)
    assert flicker(smoothed) < 0.8 * flicker(raw[kept])
    assert temporal_error(smoothed, truth[kept]) < temporal_error(raw[kept], truth[kept])
