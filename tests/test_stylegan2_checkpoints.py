"""Key-layout specs (../shared/reference/keys) load strictly; NVlabs pickles are read without executing code;
bad checkpoint files give one-line CheckpointErrors."""

from __future__ import annotations

import json
import os
import pickle
import sys
import types

import pytest
import torch

from conftest import reference_file
from zoo.errors import CheckpointError
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import build_generator, infer_config, load_generator, save_generator
from zoo.stylegan2.nvlabs import nvlabs_to_rosinality, read_nvlabs_pickle


def _spec(name: str) -> dict:
    return json.loads(reference_file(f"keys/{name}").read_text())


def _meta_generator(cfg) -> Generator:
    with torch.device("meta"):
        return Generator(**cfg.__dict__)


@pytest.mark.parametrize("name", ["rosinality_generator_1024_cm2.json", "rosinality_generator_256_cm2.json",
                                  "rosinality_generator_256_cm1.json"])
def test_rosinality_key_specs(name):
    spec = _spec(name)
    entries = {e["key"]: e["shape"] for e in spec["state_dict"]}
    sd = {k: torch.empty(s, device="meta") for k, s in entries.items()}
    cfg = infer_config(sd)
    c = spec["constructor_args"]
    assert (cfg.size, cfg.style_dim, cfg.n_mlp, cfg.channel_multiplier) == (c["size"], c["style_dim"], c["n_mlp"],
                                                                           c["channel_multiplier"])
    ours = _meta_generator(cfg).state_dict()
    assert list(ours) == [e["key"] for e in spec["state_dict"]], "key order differs from the official state_dict()"
    assert {k: list(v.shape) for k, v in ours.items()} == entries
    n_params = sum(p.numel() for p in _meta_generator(cfg).parameters())
    assert n_params == spec["summary"]["num_parameter_elements_unique"]


def test_rosinality_spec_loads_strictly_with_real_tensors():
    spec = _spec("rosinality_generator_256_cm1.json")
    sd = {e["key"]: torch.zeros(e["shape"]) for e in spec["state_dict"]}
    g = build_generator(sd)  # strict load inside
    assert g.n_latent == 14 and g.channels[256] == 64


@pytest.mark.parametrize("name", ["nvlabs_generator_1024_cb32768.json", "nvlabs_generator_256_cb32768.json",
                                  "nvlabs_generator_256_cb16384_paper256.json"])
def test_nvlabs_key_specs_convert_to_rosinality(name):
    spec = _spec(name)
    sd = {e["key"]: torch.zeros(e["shape"], device="meta") for e in spec["state_dict"]}
    conv, latent_avg = nvlabs_to_rosinality(sd)
    assert latent_avg is not None and latent_avg.shape == (512,)
    cfg = infer_config(conv)
    kw = spec["constructor_args"]
    assert cfg.size == kw["img_resolution"] and cfg.n_mlp == kw["mapping_kwargs"]["num_layers"]
    assert cfg.channel_multiplier == kw["synthesis_kwargs"]["channel_base"] // 16384
    ours = _meta_generator(cfg).state_dict()
    assert set(ours) == set(conv)
    assert all(list(ours[k].shape) == list(conv[k].shape) for k in ours)


# ----------------------------------------------------------------------------- NVlabs pickle without code execution
def _fake_persistence(monkeypatch):
    """Install stand-ins for torch_utils.persistence/dnnlib so we can *write* an NVlabs-shaped pickle."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called by the safe reader
        raise AssertionError("the real reconstructor must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg = types.ModuleType("torch_utils")
    pkg.persistence = persistence
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    return _reconstruct_persistent_obj


class _Persistent:
    def __init__(self, reconstruct, class_name, params, modules, kwargs=None):
        self.reconstruct, self.class_name = reconstruct, class_name
        self.state = {"_parameters": params, "_buffers": {}, "_modules": modules, "_init_kwargs": kwargs or {},
                      "training": False}

    def __reduce__(self):
        meta = {"type": "class", "version": 6, "class_name": self.class_name,
                "module_src": "import os\nos.system('touch SHOULD_NOT_EXIST')\n", "state": self.state}
        return (self.reconstruct, (meta,))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch SHOULD_NOT_EXIST_EITHER",))


def _write_fake_pkl(path, monkeypatch, nv_sd):
    recon = _fake_persistence(monkeypatch)
    tree: dict = {}
    for key, t in nv_sd.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = t

    def build(name, node):
        params = {k: torch.nn.Parameter(v.clone()) for k, v in node.items() if isinstance(v, torch.Tensor)}
        mods = {k: build(k, v) for k, v in node.items() if isinstance(v, dict)}
        return _Persistent(recon, name, params, mods)

    g = build("Generator", tree)
    g.state["_init_kwargs"] = {"z_dim": 64}
    with open(path, "wb") as f:
        pickle.dump({"G": None, "D": None, "G_ema": g, "training_set_kwargs": _Evil(), "augment_pipe": None}, f)


def test_nvlabs_pickle_read_without_executing_code(tmp_path, monkeypatch, load_reference):
    ref = load_reference("nvlabs_to_rosinality_small.pt")
    pkl = tmp_path / "network-snapshot.pkl"
    _write_fake_pkl(pkl, monkeypatch, ref["nvlabs_state_dict"])
    monkeypatch.delitem(sys.modules, "torch_utils")
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")
    monkeypatch.chdir(tmp_path)
    with open(pkl, "rb") as f:
        sd, kwargs = read_nvlabs_pickle(f)
    assert not list(tmp_path.glob("SHOULD_NOT_EXIST*")), "code from the pickle was executed"
    assert kwargs == {"z_dim": 64}
    for k, v in ref["nvlabs_state_dict"].items():
        torch.testing.assert_close(sd[k], v, rtol=0, atol=0)
    loaded = load_generator(pkl)
    assert loaded.source_format == "nvlabs"
    with torch.no_grad():
        img, _ = loaded.generator([ref["wplus"]], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(img, ref["image_nvlabs"], rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- our own format + bad files
def test_save_load_roundtrip_fp16_and_latent_avg(tmp_path):
    torch.manual_seed(0)
    g = Generator(16, 32, 2, channels={4: 16, 8: 16, 16: 8})
    path = tmp_path / "g.pt"
    save_generator(path, g, torch.ones(32), half=True)
    loaded = load_generator(path)
    assert loaded.source_format == "zoo" and torch.equal(loaded.latent_avg, torch.ones(32))
    w = torch.randn(2, g.n_latent, 32)
    with torch.no_grad():
        a, _ = g([w], input_is_latent=True, randomize_noise=False)
        b, _ = loaded.generator([w], input_is_latent=True, randomize_noise=False)
    assert (a - b).abs().max() < 5e-2  # fp16 storage


def test_rosinality_file_without_latent_avg_computes_it(tmp_path):
    g = Generator(8, 16, 1, channels={4: 8, 8: 8})
    torch.save({"g_ema": g.state_dict()}, tmp_path / "train.pt")
    loaded = load_generator(tmp_path / "train.pt", n_mean_latent=256)
    assert loaded.latent_avg_computed and loaded.latent_avg.shape == (16,)
    again = load_generator(tmp_path / "train.pt", n_mean_latent=256)
    assert torch.equal(loaded.latent_avg, again.latent_avg)  # seeded


@pytest.mark.parametrize("content,match", [
    (b"<html>Google Drive - Quota exceeded</html>", "HTML"),
    (b"", "HTML"),
])
def test_bad_files_give_checkpoint_errors(tmp_path, content, match):
    p = tmp_path / "stylegan2-ffhq-config-f.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_generator(p)


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "nope.pt")
    torch.save({"state_dict": {}, "opts": {}}, tmp_path / "psp.pt")
    with pytest.raises(CheckpointError, match="no 'g_ema'"):
        load_generator(tmp_path / "psp.pt")
    g = Generator(8, 16, 1, channels={4: 8, 8: 8})
    sd = g.state_dict()
    sd["convs.0.conv.weight"] = torch.zeros(1, 8, 4, 3, 3)  # wrong in-channels
    torch.save({"g_ema": sd}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(tmp_path / "bad.pt")
    torch.save({"g_ema": sd}, tmp_path / "trunc.pt")
    data = (tmp_path / "trunc.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_generator(tmp_path / "trunc.pt")
