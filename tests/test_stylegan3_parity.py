"""Parity of zoo.stylegan3 with the official NVlabs StyleGAN3 generator (fixtures in ../shared/reference/sg3, made by
the official code on CPU; tolerances from its README §2: images rtol 1e-5 / atol 1e-4, ws and affine outputs 1e-5).
Skips cleanly without ../shared."""

from __future__ import annotations

import pytest
import torch

from zoo.stylegan3 import Generator, generator_transform
from zoo.stylegan3.ops import upfirdn2d

IMG = dict(rtol=1e-5, atol=1e-4)
LAT = dict(rtol=1e-5, atol=1e-5)


_CACHE: dict[tuple[int, str], Generator] = {}


def _build(fixture: dict, impl: str = "auto") -> Generator:
    """The fixture's generator (filters from the stored buffers), built once per module and resample path."""
    key = (id(fixture), impl)
    if key not in _CACHE:
        g = Generator(**fixture["meta"]["constructor_kwargs"], resample_impl=impl, design_filters=False).eval()
        g.load_state_dict(fixture["state_dict"], strict=True)
        _CACHE[key] = g
    g = _CACHE[key]
    g.synthesis.input.transform = torch.eye(3)
    return g


@pytest.fixture(scope="module")
def t_small():
    from conftest import reference_file

    return torch.load(reference_file("sg3/sg3_t_small.pt"), weights_only=True)


@pytest.fixture(scope="module")
def r_small():
    from conftest import reference_file

    return torch.load(reference_file("sg3/sg3_r_small.pt"), weights_only=True)


def _close(out: torch.Tensor, ref: torch.Tensor, tol: dict, what: str) -> None:
    assert out.shape == ref.shape, what
    diff = (out - ref).abs().max().item()
    assert torch.allclose(out, ref, **tol), f"{what}: max abs diff {diff:.3g}"


def test_state_dict_layout_equals_official(t_small, r_small):
    for fx in (t_small, r_small):
        g = Generator(**fx["meta"]["constructor_kwargs"])
        sd = g.state_dict()
        assert list(sd) == [e["key"] for e in fx["state_dict_layout"]]
        assert [list(v.shape) for v in sd.values()] == [e["shape"] for e in fx["state_dict_layout"]]
        assert sum(p.numel() for p in g.parameters()) == fx["meta"]["num_params"]
        assert sum(b.numel() for b in g.buffers()) == fx["meta"]["num_buffer_elements"]


def test_constructor_designs_the_official_filters(t_small, r_small):
    """Freshly designed filters (firwin / radial jinc) equal the stored official buffers."""
    for fx in (t_small, r_small):
        sd = Generator(**fx["meta"]["constructor_kwargs"]).state_dict()
        for k, v in fx["state_dict"].items():
            if k.endswith("_filter"):
                assert torch.allclose(sd[k], v, atol=1e-7, rtol=0), k


def test_layer_constants_match_meta(t_small, r_small):
    for fx in (t_small, r_small):
        g = Generator(**fx["meta"]["constructor_kwargs"], design_filters=False)
        for meta, name, layer in zip(fx["meta"]["layers"][1:], g.synthesis.layer_names, g.synthesis.layers):
            assert meta["name"] == name
            assert layer.padding == meta["padding"], name
            assert (layer.up_factor, layer.down_factor, layer.up_taps, layer.down_taps) == (
                meta["up_factor"], meta["down_factor"], meta["up_taps"], meta["down_taps"]), name
            assert layer.down_radial == meta["down_radial"]


def test_t_mapping_truncation_and_images(t_small):
    g = _build(t_small)
    cases = t_small["cases"]
    with torch.no_grad():
        c = cases["mapping"]
        _close(g.mapping(c["z"], None), c["ws"], LAT, "mapping ws")
        _close(g(c["z"], None, noise_mode="const"), c["image"], IMG, "mapping image")
        for name in ("truncation", "truncation_cutoff"):
            c = cases[name]
            kw = dict(truncation_psi=c["truncation_psi"], truncation_cutoff=c["truncation_cutoff"])
            _close(g.mapping.w_avg, c["w_avg"], LAT, "w_avg")
            _close(g.mapping(c["z"], None, **kw), c["ws"], LAT, f"{name} ws")
            _close(g(c["z"], None, **kw), c["image"], IMG, f"{name} image")


@pytest.mark.parametrize("impl", ["conv", "matmul"])
def test_t_wplus_and_debug_outputs(t_small, impl):
    g = _build(t_small, impl)
    c = t_small["cases"]["synthesis_wplus"]
    with torch.no_grad():
        _close(g.synthesis(c["ws"], noise_mode="const"), c["image"], IMG, "synthesis_wplus image")
        t_raw = g.synthesis.input.affine(c["ws"][:, 0])
        _close(t_raw, c["input_affine_t_raw"], LAT, "input affine raw")
        _close(g.input_code(c["ws"]), c["input_affine_t_normalized"], LAT, "input affine normalised")
        _close(g.synthesis.input(c["ws"][:, 0])[:, :8], c["input_features_first8"], IMG, "input features")
        # the StyleGAN2-interface call renders the same image
        img, lat = g([c["ws"]], input_is_latent=True, return_latents=True)
        _close(img, c["image"], IMG, "G([ws]) image")
        assert torch.equal(lat, c["ws"])


@pytest.mark.parametrize("name", ["transform_translate", "transform_rotate", "transform_rotate_translate"])
def test_t_user_transforms(t_small, name):
    g = _build(t_small)
    c = t_small["cases"][name]
    with torch.no_grad():
        # as NVlabs gen_images.py: the stored (inverse) matrix written into the buffer
        g.synthesis.input.transform.copy_(c["transform"])
        _close(g.synthesis(c["ws"]), c["image"], IMG, f"{name} (buffer)")
        g.synthesis.input.transform.copy_(torch.eye(3))
        # per call, from the pose (r, tx, ty): the inverse is computed here
        pose = (c["r_degrees"], c["tx"], c["ty"])
        _close(generator_transform(*pose), c["transform"], dict(rtol=0, atol=1e-7), f"{name} inverse matrix")
        _close(g.synthesis(c["ws"], transform=pose), c["image"], IMG, f"{name} (pose)")
        if "input_features_first8" in c:
            feats = g.synthesis.input(c["ws"][:, 0], transform=c["transform"])[:, :8]
            _close(feats, c["input_features_first8"], IMG, f"{name} input features")
    assert torch.equal(g.synthesis.input.transform, torch.eye(3))


def test_t_per_sample_transform(t_small):
    g = _build(t_small)
    c = t_small["cases"]["transform_per_sample_editing"]
    with torch.no_grad():
        _close(g.synthesis(c["ws"], transform=c["transform"]), c["image"], IMG, "per-sample [B,3,3]")
        pose = tuple(torch.tensor(c[k]) for k in ("r_degrees", "tx", "ty"))
        _close(g.synthesis(c["ws"], transform=pose), c["image"], IMG, "per-sample pose tensors")
        # stylegan3-editing style: a batched matrix assigned to the buffer itself
        g.synthesis.input.transform = c["transform"].clone()
        _close(g.synthesis(c["ws"]), c["image"], IMG, "per-sample buffer")


def test_r_cases(r_small):
    g = _build(r_small)
    cases = r_small["cases"]
    with torch.no_grad():
        _close(_build(r_small, "conv").synthesis(cases["synthesis_wplus"]["ws"]), cases["synthesis_wplus"]["image"],
               IMG, "R synthesis_wplus (conv resampling)")
        c = cases["mapping"]
        _close(g.mapping(c["z"], None), c["ws"], LAT, "R mapping ws")
        _close(g(c["z"], None), c["image"], IMG, "R mapping image")
        c = cases["synthesis_wplus"]
        _close(g.synthesis(c["ws"]), c["image"], IMG, "R synthesis_wplus")
        _close(g.synthesis.input(c["ws"][:, 0])[:, :8], c["input_features_first8"], IMG, "R input features")
        c = cases["transform_rotate_translate"]
        _close(g.synthesis(c["ws"], transform=c["transform"]), c["image"], IMG, "R transform (matrix)")
        pose = (c["r_degrees"], c["tx"], c["ty"])
        _close(g.synthesis(c["ws"], transform=pose), c["image"], IMG, "R transform (pose)")


def test_sensitivity_wrong_transform_direction_fails(t_small):
    """The forward matrix instead of its inverse must not pass (README §2 sensitivity)."""
    g = _build(t_small)
    c = t_small["cases"]["transform_rotate_translate"]
    with torch.no_grad():
        wrong = g.synthesis(c["ws"], transform=c["make_transform"])
    assert not torch.allclose(wrong, c["image"], **IMG)


def test_matmul_and_conv_resampling_agree_on_random_input():
    torch.manual_seed(0)
    from zoo.stylegan3.ops import FilteredLReLU, design_lowpass_filter

    fu = design_lowpass_filter(24, 5.04, 21.9, 64)
    fd = design_lowpass_filter(12, 8.0, 16.0, 64)
    x = torch.randn(2, 3, 20, 20)
    b = torch.randn(3)
    outs = [FilteredLReLU(4, 2, [-6, -9, -6, -9], 2 ** 0.5, 0.2, 256, impl)(x, fu, fd, b)
            for impl in ("conv", "matmul")]
    assert outs[0].shape == outs[1].shape
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert upfirdn2d(x, None).equal(x)
