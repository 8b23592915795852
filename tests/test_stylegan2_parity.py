"""Parity of zoo.stylegan2 with the official rosinality / HyperStyle / NVlabs outputs in ../shared/reference."""

from __future__ import annotations

import pytest
import torch

from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import build_generator, infer_config

IMG = dict(rtol=1e-5, atol=1e-4)
LAT = dict(rtol=1e-5, atol=1e-5)


def _generator(fixture: dict) -> Generator:
    c = fixture["meta"]["constructor"]
    g = Generator(c["size"], c["style_dim"], c["n_mlp"], c["channel_multiplier"], c["blur_kernel"], c["lr_mlp"],
                  channels=fixture["meta"]["channels"])
    g.load_state_dict(fixture["state_dict"], strict=True)
    return g.eval()


@pytest.fixture(scope="module")
def sg2_small():
    from conftest import reference_file

    return torch.load(reference_file("sg2_small.pt"), weights_only=True)


def test_mean_latent(sg2_small):
    g = _generator(sg2_small)
    case = sg2_small["cases"]["mean_latent"]
    torch.manual_seed(4321)
    torch.testing.assert_close(g.mean_latent(512), case["mean_latent"], **LAT)
    torch.testing.assert_close(g.style(case["z"]).mean(0, keepdim=True), case["mean_latent"], **LAT)


@pytest.mark.parametrize("batched", [True, False], ids=["fast-batched", "grouped-per-sample"])
@pytest.mark.parametrize("name", ["z_input", "wplus_input", "w_input_broadcast", "truncation", "style_mixing",
                                  "explicit_noise", "wplus_truncation"])
def test_sg2_small_cases(sg2_small, name, batched):
    g = _generator(sg2_small)
    c = sg2_small["cases"][name]
    deltas = None if batched else [torch.zeros(1)] * (len(g.convs) + len(g.to_rgbs) + 2)  # zero delta -> grouped path
    kw = dict(randomize_noise=False, return_latents=True, weights_deltas=deltas)
    with torch.no_grad():
        if name == "z_input":
            img, lat = g([c["z"]], **kw)
            torch.testing.assert_close(g.style(c["z"]), c["w"], **LAT)
        elif name == "wplus_input":
            img, lat = g([c["wplus"]], input_is_latent=True, **kw)
        elif name == "w_input_broadcast":
            img, lat = g([c["w"]], input_is_latent=True, **kw)
        elif name == "truncation":
            img, lat = g([c["z"]], truncation=c["truncation"], truncation_latent=c["truncation_latent"], **kw)
        elif name == "style_mixing":
            img, lat = g([c["z1"], c["z2"]], inject_index=c["inject_index"], **kw)
        elif name == "explicit_noise":
            img, lat = g([c["wplus"]], input_is_latent=True, noise=c["noise"], return_latents=True, weights_deltas=deltas)
        else:
            img, lat = g([c["wplus"]], input_is_latent=True, truncation=c["truncation"],
                         truncation_latent=c["truncation_latent"], **kw)
    torch.testing.assert_close(img, c["image"], **IMG)
    if "latent" in c:
        torch.testing.assert_close(lat, c["latent"], **LAT)


def test_sg2_cm2_64_upsampling_path(load_reference):
    f = load_reference("sg2_small_cm2_64.pt")
    g = _generator(f)
    c = f["cases"]["wplus_input"]
    with torch.no_grad():
        img, lat = g([c["wplus"]], input_is_latent=True, randomize_noise=False, return_latents=True)
    torch.testing.assert_close(img, c["image"], **IMG)
    assert infer_config(f["state_dict"]).channel_table()[64] == 32


def test_infer_config_rebuilds_small_generator(sg2_small):
    cfg = infer_config(sg2_small["state_dict"])
    assert (cfg.size, cfg.style_dim, cfg.n_mlp) == (32, 64, 2)
    g = build_generator(sg2_small["state_dict"])
    c = sg2_small["cases"]["wplus_input"]
    with torch.no_grad():
        img, _ = g([c["wplus"]], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(img, c["image"], **IMG)


@pytest.mark.parametrize("compact", [False, True], ids=["as-given", "compact-channelwise"])
def test_hyperstyle_weight_deltas(load_reference, compact):
    f = load_reference("hyperstyle_deltas_small.pt")
    g = _generator(f)
    deltas = list(f["weights_deltas"])
    if compact:  # channel-wise layers given as [B, out, in, 1, 1] must broadcast to the same image
        deltas = [d[..., :1, :1] if (i in f["per_channel_layers"] and d is not None) else d for i, d in enumerate(deltas)]
    with torch.no_grad():
        img, lat = g([f["wplus"]], input_is_latent=True, randomize_noise=False, weights_deltas=deltas, return_latents=True)
        img0, _ = g([f["wplus"]], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(img, f["image"], **IMG)
    torch.testing.assert_close(img0, f["image_no_deltas"], **IMG)
    assert [s.name for s in g.layer_slots()] == [
        info["module"].removesuffix(".conv") for info in f["meta"]["layer_info"]
    ]


def test_nvlabs_conversion_matches_official(load_reference):
    from zoo.stylegan2.nvlabs import nvlabs_to_rosinality

    f = load_reference("nvlabs_to_rosinality_small.pt")
    sd, latent_avg = nvlabs_to_rosinality(f["nvlabs_state_dict"])
    ref = f["rosinality_state_dict"]
    assert set(sd) == set(ref)
    for k in ref:
        torch.testing.assert_close(sd[k], ref[k], rtol=0, atol=0, msg=k)
    torch.testing.assert_close(latent_avg, f["latent_avg"])
    g = build_generator(sd)
    assert g.channels[32] == 32
    with torch.no_grad():
        img, _ = g([f["wplus"]], input_is_latent=True, randomize_noise=False)
        torch.testing.assert_close(img, f["image_nvlabs"], **IMG)
        torch.testing.assert_close(g.style(f["z"]), f["w_rosinality_style"], **LAT)
        t = f["truncation"]
        img_t, _ = g([f["z"]], truncation=0.7, truncation_latent=latent_avg[None], randomize_noise=False)
        ref_t = t["image_nvlabs"] if isinstance(t, dict) and "image_nvlabs" in t else None
    if ref_t is not None:
        torch.testing.assert_close(img_t, ref_t, **IMG)
