"""StyleGAN3 loading: the official NVlabs pickles (code-free, nothing executed), stylegan3-editing `.pt` state dicts,
zoo's own files, the full-size key layouts (../shared/reference/sg3/keys), and one-line errors."""

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
from zoo.stylegan2.nvlabs import nvlabs_to_rosinality, read_nvlabs_pickle
from zoo.stylegan3 import Generator
from zoo.stylegan3.checkpoints import (build_generator, infer_init_kwargs, is_stylegan3_state_dict,
                                       load_any_generator, load_generator, save_generator)

IMG = dict(rtol=1e-5, atol=1e-4)
SPECS = ["nvlabs_sg3_t_1024.json", "nvlabs_sg3_r_1024.json", "nvlabs_sg3_t_256.json",
         "nvlabs_sg3_t_256_cb32768_editing_landscape.json"]


@pytest.fixture(scope="module")
def t_small():
    return torch.load(reference_file("sg3/sg3_t_small.pt"), weights_only=True)


def _wplus_image(g: Generator, fixture: dict, **kw) -> torch.Tensor:
    with torch.no_grad():
        return g.synthesis(fixture["cases"]["synthesis_wplus"]["ws"], **kw)


# ----------------------------------------------------------------------------- official pickles
@pytest.mark.parametrize("name", ["sg3_t_small_network.pkl", "sg3_t_small_snapshot.pkl"])
def test_official_pickles_load_code_free(name, t_small):
    before = {m for m in sys.modules if m.startswith(("_imported_module_", "torch_utils", "training", "dnnlib"))}
    loaded = load_generator(reference_file(f"sg3/{name}"))
    after = {m for m in sys.modules if m.startswith(("_imported_module_", "torch_utils", "training", "dnnlib"))}
    assert after == before, "the pickle's embedded modules were imported or executed"
    assert loaded.source_format == "nvlabs"
    assert loaded.init_kwargs == t_small["meta"]["init_kwargs"]
    sd = loaded.generator.state_dict()
    assert list(sd) == list(t_small["state_dict"])
    for k, v in t_small["state_dict"].items():
        assert torch.equal(sd[k], v), k
    torch.testing.assert_close(_wplus_image(loaded.generator, t_small), t_small["cases"]["synthesis_wplus"]["image"],
                               **IMG)


# ----------------------------------------------------------------------------- a pickle that would run code
def _fake_persistence(monkeypatch) -> object:
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
    """Pickles like an NVlabs persistent object whose module source would create a file when executed."""

    def __init__(self, recon, class_name: str, params: dict, buffers: dict, modules: dict) -> None:
        self.recon = recon
        self.class_name = class_name
        self.state = {"training": False, "_parameters": params, "_buffers": buffers,
                      "_non_persistent_buffers_set": set(), "_modules": modules, "_init_args": ()}

    def __reduce__(self):
        meta = {"type": "class", "version": 6, "class_name": self.class_name,
                "module_src": ("import os\nopen('SHOULD_NOT_EXIST', 'w').close()\n"
                               "os.system('touch SHOULD_NOT_EXIST_2')\n"),
                "state": self.state}
        return (self.recon, (meta,))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch SHOULD_NOT_EXIST_EITHER",))


def _write_fake_pkl(path, monkeypatch, sd: dict, init_kwargs: dict, top_level_evil: bool = False) -> None:
    recon = _fake_persistence(monkeypatch)
    tree: dict = {}
    for key, t in sd.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = t

    def build(name: str, node: dict) -> _Persistent:
        tensors = {k: v for k, v in node.items() if isinstance(v, torch.Tensor)}
        params = {k: torch.nn.Parameter(v.clone(), requires_grad=False) for k, v in tensors.items()
                  if k in ("weight", "bias")}
        buffers = {k: v.clone() for k, v in tensors.items() if k not in params}
        mods = {k: build("SynthesisInput" if k == "input" else k, v) for k, v in node.items() if isinstance(v, dict)}
        return _Persistent(recon, name, params, buffers, mods)

    g = build("Generator", tree)
    g.state["_init_kwargs"] = dict(init_kwargs)
    g.state["evil_attribute"] = _Evil()
    data = {"G": g, "D": None, "G_ema": g, "training_set_kwargs": _Evil(), "augment_pipe": None}
    with open(path, "wb") as f:
        pickle.dump(_Evil() if top_level_evil else data, f)


def test_pickle_that_would_run_code_is_read_without_running_it(tmp_path, monkeypatch, t_small):
    pkl = tmp_path / "network-snapshot-000000.pkl"
    _write_fake_pkl(pkl, monkeypatch, t_small["state_dict"], t_small["meta"]["init_kwargs"])
    monkeypatch.delitem(sys.modules, "torch_utils")
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")
    monkeypatch.chdir(tmp_path)
    with open(pkl, "rb") as f:
        sd, kwargs = read_nvlabs_pickle(f)
    assert is_stylegan3_state_dict(sd) and kwargs == t_small["meta"]["init_kwargs"]
    loaded = load_generator(pkl)
    assert not list(tmp_path.glob("SHOULD_NOT_EXIST*")), "code from the pickle was executed"
    torch.testing.assert_close(_wplus_image(loaded.generator, t_small), t_small["cases"]["synthesis_wplus"]["image"],
                               **IMG)


def test_pickle_with_numpy_constructor_arguments(tmp_path, monkeypatch, t_small):
    """numpy scalars stay inert placeholders in the code-free unpickler: those arguments come from the shapes."""
    import numpy as np

    pkl = tmp_path / "np-kwargs.pkl"
    kwargs = dict(t_small["meta"]["init_kwargs"], channel_base=np.int64(768), channel_max=np.int64(48))
    _write_fake_pkl(pkl, monkeypatch, t_small["state_dict"], kwargs)
    monkeypatch.delitem(sys.modules, "torch_utils")
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")
    loaded = load_generator(pkl)
    assert (loaded.init_kwargs["channel_base"], loaded.init_kwargs["channel_max"]) == (768, 48)
    torch.testing.assert_close(_wplus_image(loaded.generator, t_small), t_small["cases"]["synthesis_wplus"]["image"],
                               **IMG)


def test_pickle_of_only_code_is_refused(tmp_path, monkeypatch, t_small):
    pkl = tmp_path / "evil.pkl"
    _write_fake_pkl(pkl, monkeypatch, t_small["state_dict"], {}, top_level_evil=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"evil\.pkl.*(not loaded|nothing was run)"):
        load_generator(pkl)
    assert not list(tmp_path.glob("SHOULD_NOT_EXIST*"))


# ----------------------------------------------------------------------------- stylegan3-editing .pt and zoo files
def test_editing_pt_with_prefix_and_batched_transform(tmp_path, t_small):
    case = t_small["cases"]["transform_per_sample_editing"]
    sd = {f"module.{k}": v.clone() for k, v in t_small["state_dict"].items()}
    sd["module.synthesis.input.transform"] = case["transform"].clone()
    path = tmp_path / "sg3-t-small.pt"
    torch.save(sd, path)
    loaded = load_generator(path)
    assert loaded.source_format == "stylegan3-editing"
    kw = loaded.init_kwargs
    assert (kw["channel_base"], kw["channel_max"], kw["z_dim"], kw["w_dim"]) == (768, 48, 64, 64)
    assert torch.equal(loaded.generator.synthesis.input.transform, torch.eye(3))
    assert torch.equal(loaded.transform, case["transform"])
    with torch.no_grad():
        img = loaded.generator.synthesis(case["ws"], transform=loaded.transform)
    torch.testing.assert_close(img, case["image"], **IMG)


def test_r_state_dict_config_is_inferred():
    r = torch.load(reference_file("sg3/sg3_r_small.pt"), weights_only=True)
    g, kw, _ = build_generator(r["state_dict"], None, "sg3_r_small")
    assert kw["conv_kernel"] == 1 and kw["use_radial_filters"] and kw["channel_base"] == 1536
    torch.testing.assert_close(_wplus_image(g, r), r["cases"]["synthesis_wplus"]["image"], **IMG)


def test_zoo_save_load_roundtrip(tmp_path, t_small):
    g, _, _ = build_generator(t_small["state_dict"], t_small["meta"]["init_kwargs"], "fixture")
    path = tmp_path / "g3.pt"
    save_generator(path, g)
    loaded = load_any_generator(path)
    assert isinstance(loaded.generator, Generator)
    assert loaded.source_format == "zoo" and loaded.init_kwargs == g.init_kwargs
    for k, v in g.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[k], v)
    assert torch.equal(loaded.latent_avg, t_small["state_dict"]["mapping.w_avg"])


def test_load_any_generator_dispatches_stylegan2_files(tmp_path):
    from zoo.stylegan2 import Generator as SG2
    from zoo.stylegan2.checkpoints import save_generator as save_sg2

    torch.manual_seed(0)
    g2 = SG2(8, 16, 1, channels={4: 8, 8: 8})
    path = tmp_path / "sg2.pt"
    save_sg2(path, g2, torch.zeros(16))
    assert isinstance(load_any_generator(path).generator, SG2)


def test_bad_files_give_one_line_errors(tmp_path, t_small):
    sg2_like = tmp_path / "sg2.pt"
    torch.save({"style.1.weight": torch.zeros(2, 2)}, sg2_like)
    with pytest.raises(CheckpointError, match=r"sg2\.pt: not a StyleGAN3 generator"):
        load_generator(sg2_like)
    broken = {k: v for k, v in t_small["state_dict"].items() if k != "synthesis.L3_36_48.weight"}
    with pytest.raises(CheckpointError, match=r"missing key.*L3_36_48\.weight"):
        build_generator(broken, t_small["meta"]["init_kwargs"], "broken.pt")
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        nvlabs_to_rosinality(t_small["state_dict"])
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pkl"):
        load_generator(empty)


# ----------------------------------------------------------------------------- full-size layouts
@pytest.mark.parametrize("name", SPECS)
def test_full_size_key_layouts(name):
    spec = json.loads(reference_file(f"sg3/keys/{name}").read_text())
    with torch.device("meta"):
        g = Generator(**spec["constructor_args"], design_filters=False)
    sd = g.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(e["key"], e["shape"]) for e in spec["state_dict"]]
    s = spec["summary"]
    assert len(sd) == s["num_entries"]
    assert sum(p.numel() for p in g.parameters()) == s["num_parameter_elements"]
    assert sum(b.numel() for b in g.buffers()) == s["num_buffer_elements"]
    assert g.synthesis.layer_names == spec["derived"]["layer_names"]
    assert g.n_latent == spec["derived"]["num_ws"] == 16
    # a bare state dict (stylegan3-editing .pt) gives back the same constructor arguments
    meta_sd = {e["key"]: torch.empty(e["shape"], device="meta") for e in spec["state_dict"]}
    kw = infer_init_kwargs(meta_sd)
    loaded, _, _ = build_generator(meta_sd, None, name, device="meta")  # strict load of the bare layout
    assert sum(p.numel() for p in loaded.parameters()) == s["num_parameter_elements"]
    for k in ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "channel_base", "channel_max"):
        assert kw[k] == spec["constructor_args"][k], k
    assert kw.get("conv_kernel", 3) == spec["constructor_args"].get("conv_kernel", 3)
    assert kw.get("use_radial_filters", False) == spec["constructor_args"].get("use_radial_filters", False)
