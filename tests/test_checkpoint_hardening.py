"""Checkpoint hardening: missing non-learned buffers, DataParallel prefixes, pickles with code, unresumable training
states, options that cannot apply and a computed latent_avg -- each fixed once in `zoo.checkpoint_io` and used by
every loader."""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

try:
    import zoo_encoders  # noqa: F401
except ImportError:  # source checkout before `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from zoo import plugins
from zoo.encoders.official import build_encoder, load_official
from zoo.errors import CheckpointError, InputError
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import load_generator, save_generator
from zoo_encoders.configs import SmallSizes, build_module, small_config  # noqa: E402
from zoo_encoders.inverters import HyperStyle, ReStylePSP  # noqa: E402
from zoo_encoders.weights_io import load_encoder_file, save_encoder_file  # noqa: E402
from zoo_optim.idinvert import EncoderConfig as IDInvertEncoderConfig  # noqa: E402
from zoo_optim.idinvert import IDInvertEncoder, IDInvertOptions, load_encoder, save_encoder  # noqa: E402
from zoo_optim.projector import ProjectorOptions  # noqa: E402
from zoo_optim.pti import PTIOptions  # noqa: E402

TINY = SmallSizes(irse_channels=(4, 8, 8, 16), irse_units=(1, 1, 1, 1), resnet_channels=(4, 8, 8, 16),
                  resnet_units=(1, 1, 1, 1), hyper_z_dim=8, hyper_refine_inner=8, hyper_refine_out=16, hyper_inner=8)
RESTART = "move it away or pass a fresh --out to start over"


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def notes(caplog):
    """The one-line notes of `zoo.checkpoint_io.note` (logged on 'zoo' while pytest configures logging)."""
    caplog.set_level(logging.INFO, logger="zoo")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "zoo"]


def _tiny_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(8, 16, 1, channels={4: 8, 8: 8}).eval()


def _generator16() -> Generator:
    torch.manual_seed(0)
    return Generator(16, 16, 1, channels={4: 8, 8: 8, 16: 8}).eval()


def _render(g: Generator) -> torch.Tensor:
    with torch.no_grad():
        return g([torch.ones(1, g.n_latent, g.style_dim) * 0.1], input_is_latent=True, randomize_noise=False)[0]


class _System:
    """Pickles as a call of os.system (the GLOBAL a malicious checkpoint uses)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


# ------------------------------------------------------------------------------------ 1. missing non-learned buffers
def test_generator_without_noise_buffers_loads_with_seeded_noise(tmp_path, notes):
    g = _tiny_generator()
    sd = {k: v for k, v in g.state_dict().items() if not k.startswith("noises.")}
    path = tmp_path / "old_rosinality.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(16)}, path)
    a = load_generator(path)
    b = load_generator(path)
    gen = torch.Generator().manual_seed(0)
    for i, (na, nb) in enumerate(zip(a.generator.fixed_noise(), b.generator.fixed_noise())):
        assert torch.equal(na, nb), f"noise_{i} is not deterministic"
        assert torch.equal(na, torch.randn(tuple(na.shape), generator=gen))  # seed 0, state-dict order
    for k, v in sd.items():
        assert torch.equal(a.generator.state_dict()[k], v)
    msgs = [m for m in notes() if "noise" in m]
    assert len(msgs) == 2 and str(path) in msgs[0] and "seed 0" in msgs[0] and "\n" not in msgs[0]


def test_missing_learned_parameters_are_still_an_error_naming_the_file_and_keys(tmp_path):
    g = _tiny_generator()
    sd = g.state_dict()
    del sd["to_rgb1.bias"], sd["noises.noise_0"]
    path = tmp_path / "broken.pt"
    torch.save({"g_ema": sd}, path)
    with pytest.raises(CheckpointError) as err:
        load_generator(path, n_mean_latent=16)
    msg = str(err.value)
    assert str(path) in msg and "1 missing key(s)" in msg and "'to_rgb1.bias'" in msg and "noise" not in msg


def test_official_decoder_without_noise_buffers_loads(tmp_path, notes):
    path = _official_psp(tmp_path, drop_noise=True)
    m = load_official(path, device="meta")
    assert m.method == "psp" and m.generator.noises.noise_0.shape == (1, 1, 4, 4)
    assert any("noise buffer" in n and str(path) in n for n in notes())


# ------------------------------------------------------------------------------------ 2. DataParallel `module.` keys
def test_generator_with_dataparallel_keys(tmp_path, notes):
    g = _tiny_generator()
    path = tmp_path / "dp.pt"
    torch.save({"g_ema": {f"module.{k}": v for k, v in g.state_dict().items()}, "latent_avg": torch.zeros(16)}, path)
    loaded = load_generator(path)
    torch.testing.assert_close(_render(loaded.generator), _render(g), rtol=0, atol=0)
    msgs = [n for n in notes() if "DataParallel" in n]
    assert len(msgs) == 1 and str(path) in msgs[0]


def _official_psp(tmp_path: Path, *, prefix: str = "", inner: bool = False, drop_noise: bool = False,
                  opts: dict | None = None, name: str = "psp.pt") -> Path:
    """An official-layout pSp checkpoint (meta encoder tensors: no data) with a real 8x8 decoder."""
    g = _tiny_generator()
    with torch.device("meta"):
        enc = build_encoder("GradualStyleEncoder", n_styles=4, style_dim=16)
    sep = ".module." if inner else "."
    sd = {f"{prefix}encoder{sep}{k}": v for k, v in enc.state_dict(keep_vars=True).items()}
    sd.update({f"{prefix}decoder{sep}{k}": v for k, v in g.state_dict().items()
               if not (drop_noise and k.startswith("noises."))})
    opts = {"encoder_type": "GradualStyleEncoder", "output_size": 8, "start_from_latent_avg": True, **(opts or {})}
    path = tmp_path / name
    torch.save({"state_dict": sd, "opts": opts, "latent_avg": torch.zeros(4, 16)}, path)
    return path


@pytest.mark.parametrize("inner", [False, True], ids=["module.encoder", "encoder.module"])
def test_official_encoder_checkpoint_with_dataparallel_keys(tmp_path, notes, inner):
    path = _official_psp(tmp_path, prefix="" if inner else "module.", inner=inner)
    m = load_official(path, device="meta")
    assert m.method == "psp" and m.encoder_type == "GradualStyleEncoder" and m.generator.size == 8
    assert any("DataParallel" in n and str(path) in n for n in notes())


def test_zoo_encoder_file_with_dataparallel_keys(tmp_path, notes):
    g = _generator16()
    cfg = small_config("psp", g.n_latent, g.style_dim, 16, sizes=TINY)
    module = build_module(cfg, g.layer_slots())
    path = save_encoder_file(tmp_path / "psp.safetensors", module, cfg, torch.zeros(g.n_latent, 16))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {(k if k == "latent_avg" else f"module.{k}"): f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    dp = tmp_path / "psp_dp.safetensors"
    save_file(tensors, str(dp), metadata=meta)
    loaded = load_encoder_file(dp, g.layer_slots(), expect_method="psp")
    ref = load_encoder_file(path, g.layer_slots(), expect_method="psp")
    for (k, a), (_, b) in zip(loaded.module.state_dict().items(), ref.module.state_dict().items()):
        assert torch.equal(a, b), k
    assert any("DataParallel" in n and str(dp) in n for n in notes())


def test_idinvert_encoder_file_with_dataparallel_keys(tmp_path, notes):
    torch.manual_seed(0)
    enc = IDInvertEncoder(IDInvertEncoderConfig.for_generator(_generator16(), 4, 8))
    path = save_encoder(tmp_path / "enc.safetensors", enc)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {f"module.{k}": f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    dp = tmp_path / "enc_dp.safetensors"
    save_file(tensors, str(dp), metadata=meta)
    loaded, _ = load_encoder(dp)
    for k, v in enc.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert any("DataParallel" in n and str(dp) in n for n in notes())


# ------------------------------------------------------------------------------------ 3. pickles that try to run code
def _no_code_ran(marker: Path) -> None:
    assert not marker.exists(), "code from the file was executed"


def test_generator_pt_with_os_system_is_refused_naming_the_file_without_torch_warnings(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {}, "latent_avg": _System(marker)}, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError) as err:
            load_generator(path)
    msg = str(err.value)
    assert str(path) in msg and "system" in msg and "not loaded" in msg and "\n" not in msg
    assert "weights_only" not in msg and "plain dict" not in msg
    assert not [w for w in caught if "torch" in str(w.filename)], [str(w.message) for w in caught]
    _no_code_ran(marker)


def test_pkl_with_eval_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "network-snapshot.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": _Eval()}, f, protocol=2)
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    msg = str(err.value)
    assert str(path) in msg and "eval" in msg and "not loaded" in msg


def test_official_checkpoint_with_code_says_so_not_resave_opts(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "psp_evil.pt"
    torch.save({"state_dict": {}, "opts": {"encoder_type": "GradualStyleEncoder", "x": _System(marker)}}, path)
    with pytest.raises(CheckpointError) as err:
        load_official(path)
    msg = str(err.value)
    assert str(path) in msg and "system" in msg and "not loaded" in msg and "plain dict" not in msg
    _no_code_ran(marker)


def test_unknown_encoder_layout_names_the_file(tmp_path):
    path = tmp_path / "mystery.pt"
    g = _tiny_generator()
    torch.save({"state_dict": {**{f"decoder.{k}": v for k, v in g.state_dict().items()},
                               "head.weight": torch.zeros(2)}, "opts": {}}, path)
    with pytest.raises(CheckpointError, match="cannot tell which encoder") as err:
        load_official(path)
    assert str(path) in str(err.value)


# ------------------------------------------------------------------------------------ 4. resuming from a bad state.pt
def _bad_state(kind: str, path: Path, tmp_path: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "html":
        path.write_text("<!DOCTYPE html><html><body>Google Drive - Quota exceeded</body></html>")
    elif kind == "foreign":
        torch.save({"hello": 1, "world": [1, 2]}, path)
    elif kind == "generator":
        save_generator(path, _tiny_generator(), torch.zeros(16))
    elif kind == "malicious":
        torch.save({"method": "psp", "step": _System(tmp_path / "PWNED")}, path)


@pytest.fixture
def real_plugins(monkeypatch):
    """The installed plugins (the shipped `peeps` domain and the train commands)."""
    monkeypatch.delenv("ZOO_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()


@pytest.mark.parametrize("kind", ["empty", "html", "foreign", "generator", "malicious"])
@pytest.mark.parametrize("command", [
    ["train", "psp", "--domain", "peeps", "--steps", "1"],
    ["train", "generator", "--domain", "peeps", "--steps", "1"],
    ["train", "idinvert", "--domain", "peeps", "--steps", "1"],
], ids=["encoder", "generator", "idinvert"])
def test_resuming_from_a_bad_state_is_one_line_naming_the_file(tmp_path, real_plugins, command, kind):
    from zoo.cli import main

    out = tmp_path / "run"
    out.mkdir()
    state = out / "state.pt"
    _bad_state(kind, state, tmp_path)
    before = state.read_bytes()
    res = CliRunner().invoke(main, [*command, "--out", str(out)])
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert str(state) in lines[0] and RESTART in lines[0], lines[0]
    assert "Traceback" not in res.output and "Aborted" not in res.output and "weights_only" not in lines[0]
    assert state.is_file() and state.read_bytes() == before, "the bad state.pt was modified or deleted"
    _no_code_ran(tmp_path / "PWNED")


def test_state_restore_failures_name_the_file(tmp_path):
    """A dict with every expected key whose contents do not fit is also one error naming the file."""
    from dataclasses import asdict

    from zoo.training.stylegan2_gan import GAN_STATE_KEYS, GanConfig, train_gan

    cfg = GanConfig(size=8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8}, batch=2, max_steps=1)
    state = tmp_path / "state.pt"
    torch.save({**{k: {} for k in GAN_STATE_KEYS}, "config": json.loads(json.dumps(asdict(cfg)))}, state)
    images = torch.zeros(4, 8, 8, 3, dtype=torch.uint8).numpy()
    with pytest.raises(CheckpointError) as err:
        train_gan(images, tmp_path, cfg)
    assert str(state) in str(err.value) and RESTART in str(err.value)


# ------------------------------------------------------------------------------------ 5. options that cannot apply
def test_hyperstyle_w_encoder_without_weights_is_an_error(tmp_path):
    w = tmp_path / "faces_w_encoder.pt"
    with pytest.raises(InputError, match=r"w_encoder=.*needs weights="):
        HyperStyle(w_encoder=str(w))
    HyperStyle(w_encoder=str(w), weights=str(tmp_path / "hyperstyle_ffhq.pt"))  # applies: fine


def test_restyle_backbone_with_weights_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"backbone=resnet34 does not apply with weights="):
        ReStylePSP(backbone="resnet34", weights=str(tmp_path / "restyle.pt"))
    ReStylePSP(backbone="resnet34")  # small configuration: applies


@pytest.mark.parametrize("cls, overrides, match", [
    (ProjectorOptions, {"early_stop_tol": 0.5}, "early_stop_tol=0.5 has no effect"),
    (ProjectorOptions, {"optimize_noise": False, "noise_regularize": 10.0}, "noise_regularize=10.0 has no effect"),
    (IDInvertOptions, {"early_stop_tol": 0.5}, "early_stop_tol=0.5 has no effect"),
    (PTIOptions, {"locality_alpha": 5.0}, "locality_alpha=5.0 has no effect"),
])
def test_optim_options_that_cannot_apply_are_errors(cls, overrides, match):
    with pytest.raises(InputError, match=match):
        cls(**overrides)
    applied = {"early_stop_tol": {"early_stop_patience": 3}, "noise_regularize": {"optimize_noise": True},
               "locality_alpha": {"locality": True}}[next(k for k in overrides if k != "optimize_noise")]
    cls(**{**overrides, **applied})  # with the switch on it applies


# ------------------------------------------------------------------------------------ 6. computed latent_avg
def test_computed_latent_avg_is_stated_in_one_note(tmp_path, notes):
    path = tmp_path / "train_checkpoint.pt"
    torch.save({"g_ema": _tiny_generator().state_dict()}, path)
    loaded = load_generator(path, n_mean_latent=256)
    assert loaded.latent_avg_computed
    msgs = [n for n in notes() if "latent_avg" in n]
    assert len(msgs) == 1 and str(path) in msgs[0] and "256" in msgs[0] and "seed 0" in msgs[0]
    assert not [n for n in notes() if "noise" in n or "DataParallel" in n]  # nothing else was patched


def test_note_is_one_stderr_line_when_logging_is_not_configured(monkeypatch, capsys):
    from zoo.checkpoint_io import note

    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger("zoo"), "handlers", [])
    note("g.pt: no latent_avg\nin the file")
    assert capsys.readouterr().err == "note: g.pt: no latent_avg in the file\n"
