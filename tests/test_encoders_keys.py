"""zoo.encoders: official key layouts (../shared/reference/keys, built on the meta device), official-checkpoint loading
(strict, meta tensors assigned), the shared hypernet vs the official fixture, and small-config smoke tests on a
32x32 generator (forward, backward, ReStyle / HyperStyle iterations)."""

from __future__ import annotations

import argparse
import functools
import json
import pathlib

import pytest
import torch

from conftest import reference_file
from zoo.encoders import (
    BackboneEncoder,
    BackboneEncoderUsingLastLayerIntoW,
    BackboneEncoderUsingLastLayerIntoWPlus,
    Encoder4Editing,
    GradualStyleEncoder,
    IRSEBackbone,
    IRSEConfig,
    ProgressiveBackboneEncoder,
    ResNetBackbone,
    ResNetBackboneEncoder,
    ResNetConfig,
    ResNetGradualStyleEncoder,
    ResNetProgressiveBackboneEncoder,
    SharedWeightsHypernet,
    SharedWeightsHyperNetResNet,
    WEncoder,
    expand_deltas,
    load_pretrained_irse,
    load_pretrained_resnet34,
    restyle_steps,
    run_hyperstyle,
    run_restyle,
)
from zoo.encoders.official import build_encoder, detect_method, load_official, load_w_encoder
from zoo.errors import CheckpointError
from zoo.stylegan2 import Generator

# spec file -> (encoder_type, input_nc, expected method)
SPECS = {
    "psp_gradualstyleencoder_irse50_18.json": ("GradualStyleEncoder", 3, "psp"),
    "e4e_encoder4editing_irse50_18.json": ("Encoder4Editing", 3, "e4e"),
    "restyle_psp_backbone_irse50_6ch_18.json": ("BackboneEncoder", 6, "restyle_psp"),
    "restyle_psp_resnet34_6ch_18.json": ("ResNetBackboneEncoder", 6, "restyle_psp"),
    "restyle_e4e_progressive_backbone_irse50_6ch_18.json": ("ProgressiveBackboneEncoder", 6, "restyle_e4e"),
    "restyle_e4e_progressive_resnet34_6ch_18.json": ("ResNetProgressiveBackboneEncoder", 6, "restyle_e4e"),
    "hyperstyle_sharedweightshypernetresnet_1024.json": ("SharedWeightsHyperNetResNet", 6, "hyperstyle"),
    "hyperstyle_wencoder_irse50.json": ("WEncoder", 3, "w_encoder"),
}
DTYPES = {"float32": torch.float32, "int64": torch.int64}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The CI box is shared with a training run: one intra-op thread is ~50x faster than two contended ones."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@functools.lru_cache(maxsize=None)
def _spec_cached(name: str) -> dict:
    return json.loads(reference_file(f"keys/{name}").read_text())


def _spec(name: str) -> dict:
    return _spec_cached(name)  # read-only use


def _entries(spec: dict) -> list[dict]:
    return spec.get("encoder_state_dict") or spec["hypernet_state_dict"]


def _meta_generator(size: int = 1024) -> Generator:
    with torch.device("meta"):
        return Generator(size)


@functools.lru_cache(maxsize=None)
def _meta_encoder(name: str) -> torch.nn.Module:
    etype, nc, _ = SPECS[name]
    with torch.device("meta"):
        return build_encoder(etype, n_styles=18, input_nc=nc, layer_slots=_meta_generator().layer_slots())


# ------------------------------------------------------------------------------------------------ key layouts
@pytest.mark.parametrize("name", list(SPECS))
def test_official_key_layout_and_param_count(name):
    spec = _spec(name)
    entries = _entries(spec)
    prefix = entries[0]["key"].split(".")[0] + "."
    model = _meta_encoder(name)
    sd = model.state_dict(keep_vars=True)
    assert [prefix + k for k in sd] == [e["key"] for e in entries], "key order differs from the official state_dict()"
    assert [list(v.shape) for v in sd.values()] == [e["shape"] for e in entries]
    assert [v.dtype for v in sd.values()] == [DTYPES[e["dtype"]] for e in entries]
    buffers = {prefix + k for k, _ in model.named_buffers(remove_duplicate=False)}
    assert {e["key"] for e in entries if e["is_buffer"]} == buffers
    # alias entries (HyperStyle's shared hypernet listed under every shared block) are the same tensor in ours
    first_key = {}
    for k, v in sd.items():
        first_key.setdefault(id(v), prefix + k)
    ours_alias = {prefix + k: first_key[id(v)] for k, v in sd.items() if first_key[id(v)] != prefix + k}
    assert ours_alias == {e["key"]: e["alias_of"] for e in entries if e.get("alias_of")}
    summary = spec.get("summary_encoder") or spec["summary_hypernet"]
    assert sum(p.numel() for p in model.parameters()) == summary["num_parameter_elements_unique"]
    assert sum(b.numel() for b in model.buffers()) == summary["num_buffer_elements"]


def test_hyperstyle_parameters_table_and_blocks_match_the_official_index_map():
    spec = _spec("hyperstyle_sharedweightshypernetresnet_1024.json")
    hyper = _meta_encoder("hyperstyle_sharedweightshypernetresnet_1024.json")
    rows = spec["weights_deltas_index_map"]
    assert hyper.PARAMETERS == {r["index"]: tuple(r["PARAMETERS[k,in,out]"]) for r in rows}
    assert hyper.layers_to_tune == spec["default_layers_to_tune"]
    assert hyper.shared_layers == spec["shared_layers"]
    kinds = [type(b).__name__ if b is not None else None for b in hyper.refinement_blocks]
    assert kinds == [r["block_type"] for r in rows]
    slots = _meta_generator().layer_slots()
    assert [f"{s.name}.conv" for s in slots] == [r["generator_module"] for r in rows]


def test_param_counts_of_other_official_sizes():
    with torch.device("meta"):
        psp14 = GradualStyleEncoder(n_styles=14)
        h256 = SharedWeightsHyperNetResNet(_meta_generator(256).layer_slots())
    assert round(sum(p.numel() for p in psp14.parameters()) / 1e6) == 209  # anchors §5: ~209 M for 14 styles
    assert len(h256.refinement_blocks) == 20 and h256.layers_to_tune == [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]


# ------------------------------------------------------------------------------------------------ official loader
def _decoder_entries() -> list[dict]:
    return _spec("rosinality_generator_1024_cm2.json")["state_dict"]


def _meta_checkpoint(name: str) -> dict:
    """A full official-layout checkpoint of meta tensors: state_dict (aliases share one tensor), opts, latent_avg."""
    spec = _spec(name)
    sd: dict[str, torch.Tensor] = {}
    for e in _entries(spec):
        sd[e["key"]] = sd[e["alias_of"]] if e.get("alias_of") else torch.empty(
            e["shape"], dtype=DTYPES[e["dtype"]], device="meta")
    for e in _decoder_entries():
        sd["decoder." + e["key"]] = torch.empty(e["shape"], dtype=DTYPES[e["dtype"]], device="meta")
    assert list(sd) == spec["checkpoint_state_dict_all_keys"]
    opts = {f["name"]: f["default"] for f in spec.get("ckpt_opts_fields", {}).get("fields", [])}
    opts.update(spec.get("wrapper_opts_used_for_this_dump") or {"encoder_type": SPECS[name][0], "output_size": 1024})
    opts.pop("device", None)
    return {"state_dict": sd, "opts": opts, "latent_avg": torch.empty(18, 512, device="meta")}


@pytest.mark.parametrize("name", list(SPECS))
def test_loader_on_official_layout_checkpoints(name):
    etype, nc, method = SPECS[name]
    m = load_official(_meta_checkpoint(name), device="meta")
    assert (m.method, m.encoder_type, m.n_styles, m.input_nc, m.detected_by) == (method, etype, 18, nc, "opts")
    assert m.generator.n_latent == 18 and tuple(m.latent_avg.shape) == (18, 512) and not m.latent_avg_computed
    assert not m.encoder.training
    assert all(p.device.type == "meta" for p in m.encoder.parameters())


def test_loader_falls_back_to_key_detection():
    for name, (etype, _, method) in SPECS.items():
        ckpt = _meta_checkpoint(name)
        ckpt["opts"]["encoder_type"] = "HyperNet"  # HyperStyle's (invalid) parser default
        assert detect_method(ckpt["opts"], ckpt["state_dict"]) == (method, etype, "keys"), name
    m = load_official(ckpt, device="meta")  # the last one (W-encoder) end to end
    assert (m.detected_by, m.method) == ("keys", "w_encoder")


def test_loader_handles_hyperstyle_alias_keys():
    name = "hyperstyle_sharedweightshypernetresnet_1024.json"
    ckpt = _meta_checkpoint(name)
    sd = ckpt["state_dict"]
    for k in [k for k in sd if ".hypernet.w" in k or ".hypernet.b" in k]:  # e.g. a de-duplicated re-save
        del sd[k]
    m = load_official(ckpt, device="meta")
    shared = m.encoder.shared_weight_hypernet
    assert all(m.encoder.refinement_blocks[i].hypernet is shared for i in m.encoder.shared_layers)
    tensors = m.encoder.state_dict(keep_vars=True)
    assert m.encoder.refinement_blocks[0].hypernet.w2 is tensors["shared_weight_hypernet.w2"]
    ckpt = _meta_checkpoint(name)
    for k in [k for k in ckpt["state_dict"] if k.startswith("hypernet.shared_weight_hypernet.")]:
        del ckpt["state_dict"][k]
    load_official(ckpt, device="meta")  # canonical keys filled from their aliases


def test_loader_is_strict_and_reads_opts_like_the_official_code():
    ckpt = _meta_checkpoint("psp_gradualstyleencoder_irse50_18.json")
    del ckpt["state_dict"]["encoder.styles.5.linear.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\) \(e.g. 'styles.5.linear.bias'\)"):
        load_official(ckpt, device="meta")
    ckpt = _meta_checkpoint("psp_gradualstyleencoder_irse50_18.json")
    ckpt["opts"]["input_nc"] = 6
    with pytest.raises(CheckpointError, match=r"size mismatch for 'input_layer.0.weight'.*input_nc=6"):
        load_official(ckpt, device="meta")
    ckpt = _meta_checkpoint("e4e_encoder4editing_irse50_18.json")
    ckpt["opts"]["output_size"] = 1024
    ckpt["opts"]["stylegan_size"] = 512  # e4e sizes itself from stylegan_size (e4e#56)
    with pytest.raises(CheckpointError, match="opts say the generator is 512x512"):
        load_official(ckpt, device="meta")
    ckpt = _meta_checkpoint("psp_gradualstyleencoder_irse50_18.json")
    del ckpt["opts"]["output_size"], ckpt["opts"]["learn_in_w"], ckpt["latent_avg"]
    m = load_official(ckpt, device="meta")  # pre-2021 pSp: output_size -> 1024, learn_in_w -> False
    assert m.output_size == 1024 and m.learn_in_w is False and m.latent_avg_computed
    assert tuple(m.latent_avg.shape) == (18, 512) and any("1024" in n for n in m.notes)
    ckpt = _meta_checkpoint("hyperstyle_sharedweightshypernetresnet_1024.json")
    ckpt["opts"]["encoder_type"] = "SharedWeightsHyperNetResNetSeparable"
    with pytest.raises(CheckpointError, match="separable"):
        load_official(ckpt, device="meta")


def test_hyperstyle_loads_its_w_encoder_and_rejects_an_e4e_one():
    hs = _meta_checkpoint("hyperstyle_sharedweightshypernetresnet_1024.json")
    m = load_official(hs, device="meta", w_encoder=_meta_checkpoint("hyperstyle_wencoder_irse50.json"))
    assert isinstance(m.w_encoder, WEncoder) and m.w_encoder.n_styles == 18
    assert load_official(hs, device="meta").w_encoder is None  # opts path absent -> note, no crash
    with pytest.raises(CheckpointError, match=r"missing key.*'linear.weight'.*W-encoder checkpoint"):
        load_w_encoder(_meta_checkpoint("e4e_encoder4editing_irse50_18.json"), device="meta")


def test_checkpoint_files_with_non_builtin_opts_or_garbage_give_one_line_errors(tmp_path):
    bad = tmp_path / "namespace.pt"
    torch.save({"state_dict": {}, "opts": argparse.Namespace(exp_dir="/x")}, bad)
    with pytest.raises(CheckpointError, match="argparse.Namespace.*plain dict") as err:
        load_official(bad)
    assert "\n" not in str(err.value)
    sg3 = tmp_path / "sg3.pt"  # stylegan3-editing opts hold pathlib paths: read as strings (nothing run)
    torch.save({"state_dict": {}, "opts": {"exp_dir": pathlib.PurePosixPath("/x")}}, sg3)
    with pytest.raises(CheckpointError, match="cannot tell which encoder this is"):
        load_official(sg3)
    html = tmp_path / "quota.pt"
    html.write_text("<html>Google Drive - quota exceeded</html>")
    with pytest.raises(CheckpointError, match="HTML"):
        load_official(html)
    gen = tmp_path / "g.pt"
    torch.save({"g_ema": {}, "latent_avg": torch.zeros(4)}, gen)
    with pytest.raises(CheckpointError, match="generator file"):
        load_official(gen)


def test_real_checkpoint_file_round_trip(tmp_path):
    """A W-encoder checkpoint with real weights (official IR-SE50, 32x32 decoder) through torch.save/torch.load."""
    torch.manual_seed(0)
    enc = WEncoder(n_styles=8)
    dec = Generator(32)
    sd = {**{"encoder." + k: v for k, v in enc.state_dict().items()},
          **{"decoder." + k: v for k, v in dec.state_dict().items()}}
    path = tmp_path / "w_encoder.pt"
    torch.save({"state_dict": sd, "opts": {"encoder_type": "WEncoder", "output_size": 32, "input_nc": 3}}, path)
    del sd
    m = load_official(path, n_mean_latent=64)
    assert (m.method, m.n_styles, m.latent_avg_computed) == ("w_encoder", 8, True)
    loaded = m.encoder.state_dict()
    for k, v in enc.state_dict().items():
        assert torch.equal(loaded[k], v), k
    assert torch.equal(m.generator.conv1.conv.weight, dec.conv1.conv.weight)
    assert m.latent_avg.shape == (8, 512) and torch.allclose(m.latent_avg[0], m.latent_avg[7])


# ------------------------------------------------------------------------------------------------ numerics
def test_shared_weights_hypernet_matches_the_official_fixture(load_reference):
    ref = load_reference("hyperstyle_deltas_small.pt")["shared_hypernet_small"]
    sd = ref["state_dict"]
    net = SharedWeightsHypernet(f_size=3, z_dim=16, out_size=8, in_size=6)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    net.load_state_dict(sd)
    out = net(ref["z"])
    assert out.shape == (2, 8, 6, 3, 3)
    torch.testing.assert_close(out, ref["kernel"], atol=1e-5, rtol=0)
    fresh = SharedWeightsHypernet(z_dim=16, out_size=8, in_size=6)  # official init: fmod(randn / 40, 2)
    assert fresh.w2.abs().max() < 2 and 0.01 < fresh.w2.std() < 0.04


def test_pretrained_backbone_transfer_expands_the_input_conv():
    small = IRSEConfig(channels=(8, 16, 16, 32), units=(1, 1, 1, 1))
    src = IRSEBackbone(3, small).state_dict()
    src["output_layer.0.weight"] = torch.ones(1)  # ArcFace head, ignored
    dst = BackboneEncoder(n_styles=2, input_nc=6, style_dim=16, input_size=16, backbone=small)
    missing = load_pretrained_irse(dst, src, torch.Generator().manual_seed(0))
    assert missing and all(k.startswith("styles.") for k in missing)
    w = dst.input_layer[0].weight
    assert w.shape[1] == 6 and torch.equal(w[:, :3], src["input_layer.0.weight"])
    torch.testing.assert_close(dst.body[2].res_layer[1].weight, src["body.2.res_layer.1.weight"])
    rn = ResNetBackbone(6, ResNetConfig(channels=(8, 16, 16, 32), units=(1, 2, 1, 1)))
    tv = {"conv1.weight": torch.randn(8, 3, 7, 7), "layer2.1.conv1.weight": torch.randn(16, 16, 3, 3),
          "fc.weight": torch.randn(10, 32)}
    load_pretrained_resnet34(rn, tv)
    assert torch.equal(rn.body[2].conv1.weight, tv["layer2.1.conv1.weight"])
    assert torch.equal(rn.conv1.weight[:, :3], tv["conv1.weight"])


# ------------------------------------------------------------------------------------------------ small configs
SMALL_IRSE = IRSEConfig(channels=(16, 32, 64, 128), units=(1, 1, 1, 1))
SMALL_RESNET = ResNetConfig(channels=(16, 32, 64, 128), units=(1, 1, 1, 1))


@pytest.fixture(scope="module")
def small_g() -> Generator:
    torch.manual_seed(0)
    return Generator(32, 64, 2, channels={4: 64, 8: 64, 16: 32, 32: 32}).eval()


def _small(cls, g: Generator, **kw):
    backbone = SMALL_RESNET if cls.__name__.startswith(("ResNet", "Shared")) else SMALL_IRSE
    if cls is SharedWeightsHyperNetResNet:
        return cls(g.layer_slots(), input_size=32, backbone=backbone, z_dim=16, refine_inner=32, refine_out=32,
                   hyper_inner=16, **kw)
    return cls(n_styles=g.n_latent, style_dim=g.style_dim, input_size=32, backbone=backbone, **kw)


@pytest.mark.parametrize("cls", [GradualStyleEncoder, Encoder4Editing, WEncoder, BackboneEncoderUsingLastLayerIntoWPlus,
                                 BackboneEncoder, ResNetBackboneEncoder, ProgressiveBackboneEncoder,
                                 ResNetProgressiveBackboneEncoder, ResNetGradualStyleEncoder])
def test_small_encoders_forward_and_backward(cls, small_g):
    torch.manual_seed(1)
    enc = _small(cls, small_g)
    x = torch.rand(2, enc.input_nc, 32, 32) * 2 - 1
    codes = enc(x)
    assert codes.shape == (2, small_g.n_latent, 64)
    image, _ = small_g([codes], input_is_latent=True, randomize_noise=False)
    image.square().mean().backward()
    assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(ValueError, match=r"expects images \[B, \d, 32, 32\]"):
        enc(torch.zeros(2, enc.input_nc, 64, 64))
    enc.eval()
    assert enc(torch.zeros(1, enc.input_nc, 24, 32)).shape == (1, small_g.n_latent, 64)  # cars-like 3:4 input


def test_small_w_encoder_learn_in_w(small_g):
    enc = BackboneEncoderUsingLastLayerIntoW(None, style_dim=64, input_size=32, backbone=SMALL_IRSE)
    assert enc(torch.zeros(3, 3, 32, 32)).shape == (3, 64)
    assert list(dict.fromkeys(k.split(".")[0] for k in enc.state_dict())) == ["input_layer", "linear", "body"]


def test_e4e_is_w0_plus_psp_styles_and_respects_the_progressive_stage(small_g):
    torch.manual_seed(2)
    psp = _small(GradualStyleEncoder, small_g).eval()
    e4e = _small(Encoder4Editing, small_g).eval()
    e4e.load_state_dict(psp.state_dict())  # identical keys
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        p, e = psp(x), e4e(x)
        torch.testing.assert_close(e[:, 0], p[:, 0])
        torch.testing.assert_close(e[:, 1:], p[:, :1] + p[:, 1:])  # c3 / p2 (i>=3) / p1 (i>=7) features
        e4e.set_progressive_stage(4)
        e4 = e4e(x)
    torch.testing.assert_close(e4[:, :5], e[:, :5])
    torch.testing.assert_close(e4[:, 5:], e4[:, :1].expand(-1, 3, -1))


def test_small_hypernet_deltas(small_g):
    torch.manual_seed(3)
    hyper = _small(SharedWeightsHyperNetResNet, small_g)
    assert hyper.shared_layers == [0, 2, 3] and hyper.layers_to_tune == [0, 2, 3, 5, 6, 8, 9]
    assert hyper.PARAMETERS[5] == (3, 64, 32) and hyper.PARAMETERS[10] == (1, 32, 3)
    deltas = hyper(torch.rand(2, 6, 32, 32) * 2 - 1)
    shapes = [tuple(d.shape) if d is not None else None for d in deltas]
    assert shapes == [(2, 64, 64, 3, 3), None, (2, 64, 64, 3, 3), (2, 64, 64, 3, 3), None, (2, 32, 64, 1, 1),
                      (2, 32, 32, 1, 1), None, (2, 32, 32, 1, 1), (2, 32, 32, 1, 1), None]
    full = expand_deltas(deltas, small_g.layer_slots())
    assert full[5].shape == (2, 32, 64, 3, 3) and torch.equal(full[5][..., 2, 1], deltas[5][..., 0, 0])
    w = torch.randn(2, small_g.n_latent, 64)
    with torch.no_grad():
        a, _ = small_g([w], input_is_latent=True, randomize_noise=False, weights_deltas=deltas)
        b, _ = small_g([w], input_is_latent=True, randomize_noise=False, weights_deltas=full)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # compact channel-wise deltas broadcast
    every = _small(SharedWeightsHyperNetResNet, small_g, layers_to_tune="")
    rgb = every(torch.zeros(1, 6, 32, 32))
    assert rgb[1].shape == (1, 3, 64, 1, 1) and rgb[10].shape == (1, 3, 32, 1, 1)


def test_restyle_iterations_change_the_reconstruction(small_g):
    torch.manual_seed(4)
    enc = _small(BackboneEncoder, small_g).eval()
    latent_avg = small_g.mean_latent(256)[0]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        res = run_restyle(enc, small_g, latent_avg, x, n_iters=2)
        avg, _ = small_g([latent_avg[None]], input_is_latent=True, randomize_noise=False)
        torch.testing.assert_close(res.avg_image, avg)
        first = enc(torch.cat([x, avg.expand(2, -1, -1, -1)], 1)) + latent_avg
        second = enc(torch.cat([x, res.images[0]], 1)) + res.codes[0]
    assert len(res.codes) == 2 and res.codes[1].shape == (2, small_g.n_latent, 64)
    torch.testing.assert_close(res.codes[0], first)
    torch.testing.assert_close(res.codes[1], second)
    assert (res.images[1] - res.images[0]).abs().max() > 1e-3
    enc.train()  # training pattern: back-propagate every iteration, graph cut between iterations
    for step in restyle_steps(enc, small_g, latent_avg, x, n_iters=2, randomize_noise=True):
        (step.image - x).square().mean().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_hyperstyle_iterations_accumulate_deltas(small_g):
    torch.manual_seed(5)
    hyper = _small(SharedWeightsHyperNetResNet, small_g).eval()
    w_enc = _small(WEncoder, small_g)
    latent_avg = small_g.mean_latent(256)[0]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        res = run_hyperstyle(hyper, small_g, x, 2, w_encoder=w_enc, latent_avg=latent_avg)
        d0 = hyper(torch.cat([x, res.init_image], 1))
        d1 = hyper(torch.cat([x, res.images[0]], 1))
    assert not w_enc.training and res.codes.shape == (2, small_g.n_latent, 64)
    torch.testing.assert_close(res.codes[:, 3], res.codes[:, 0])  # one w, repeated, + latent_avg
    for d, a, b in zip(res.weights_deltas, d0, d1):
        assert (d is None) == (a is None)
        if d is not None:
            torch.testing.assert_close(d, a + b)
    assert (res.images[0] - res.init_image).abs().max() > 1e-4
    assert (res.images[1] - res.images[0]).abs().max() > 1e-4
