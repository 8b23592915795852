"""zoo_encoders: the pSp / e4e / ReStyle / HyperStyle inverters (small configuration on a tiny domain, paper
configuration on official-layout checkpoints of meta tensors), their training loops (a few steps, resume, e4e
progressive stages, export round trip) and the `zoo train` commands."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from zoo.cards import Card, WeightSpec, sha256_file
from zoo.domain import Domain
from zoo.encoders.official import build_encoder
from zoo.errors import CheckpointError
from editing_checks import check_edits_keep_the_change
from zoo.inversion import Inversion, WeightOffsets
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import save_generator

try:
    import zoo_encoders  # noqa: F401
except ImportError:  # source checkout before `pip install -e .` picked up the new plugin
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from zoo_encoders.configs import SmallSizes, build_module, small_config, weight_role  # noqa: E402
from zoo_encoders.inverters import E4E, PSP, CheckpointInversion, HyperStyle, ReStyleE4E, ReStylePSP  # noqa: E402
from zoo_encoders.weights_io import load_encoder_file, save_encoder_file  # noqa: E402

INVERTERS = {"psp": PSP, "e4e": E4E, "restyle_psp": ReStylePSP, "restyle_e4e": ReStyleE4E, "hyperstyle": HyperStyle}
TINY = SmallSizes(irse_channels=(4, 8, 8, 16), irse_units=(1, 1, 1, 1), resnet_channels=(4, 8, 8, 16),
                  resnet_units=(1, 1, 1, 1), hyper_z_dim=8, hyper_refine_inner=8, hyper_refine_out=16, hyper_inner=8)
RES, W_DIM = 16, 32


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class TinyIdentity(nn.Module):
    """A differentiable embedder images [-1, 1] -> L2-normalised [B, 8]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.conv(x).mean((2, 3)), dim=1)


class TinyDomain(Domain):
    """16x16 StyleGAN2 (style_dim 32, 6 styles) whose train/test images are its own samples."""

    name = "tiny_enc"
    resolution = RES
    card = Card(title="tiny encoder-test domain")

    def __init__(self, root: Path) -> None:
        super().__init__()
        torch.manual_seed(0)
        g = Generator(RES, W_DIM, 2, channels={4: 32, 8: 32, 16: 16}).eval()
        with torch.no_grad():
            latent_avg = g.style(torch.randn(256, W_DIM)).mean(0)
            self._images = g([torch.randn(28, W_DIM)], randomize_noise=False)[0].clamp(-1, 1)
        path = root / "generator.pt"
        save_generator(path, g, latent_avg)
        self._weights = {"generator": WeightSpec("tiny/generator", path.name, sha256_file(path), path=str(path))}
        torch.manual_seed(1)
        self._identity = TinyIdentity().eval().requires_grad_(False)

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return self._weights

    def add_weights(self, role: str, path: Path) -> None:
        self._weights[role] = WeightSpec(f"tiny/{role}", path.name, sha256_file(path), path=str(path))

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        x = self._images[:24] if split == "train" else self._images[24:]
        return x if limit is None else x[:limit]

    def identity_model(self, device: str | torch.device = "cpu") -> nn.Module:
        return self._identity.to(device)


@pytest.fixture(scope="module")
def domain(tmp_path_factory) -> TinyDomain:
    """The tiny domain with randomly initialised tiny encoders of every method installed."""
    root = tmp_path_factory.mktemp("tiny_domain")
    d = TinyDomain(root)
    g = d.generator().generator
    torch.manual_seed(2)
    for method in ("psp", "e4e", "restyle_psp", "restyle_e4e", "w_encoder", "hyperstyle"):
        cfg = small_config(method, g.n_latent, g.style_dim, RES, sizes=TINY)
        module = build_module(cfg, g.layer_slots())
        if method == "hyperstyle":  # the official init gives ~0 offsets; make them visible
            with torch.no_grad():
                for p in module.shared_weight_hypernet.parameters():
                    p.mul_(20)
        latent_avg = d.generator().latent_avg.reshape(1, -1).expand(g.n_latent, -1)
        path = save_encoder_file(root / f"{method}.safetensors", module, cfg, latent_avg, {"steps": 0})
        d.add_weights(weight_role(method), path)
    return d


# ------------------------------------------------------------------------------------------------ small config
@pytest.mark.parametrize("name", list(INVERTERS))
def test_small_configuration_inversion(domain, name):
    inv = INVERTERS[name]()
    x = domain.images("test")
    out = inv.invert(x, domain)
    g = domain.generator().generator
    assert isinstance(out, Inversion) and not isinstance(out, CheckpointInversion)
    assert out.latents.shape == (4, g.n_latent, W_DIM) and out.reconstructions.shape == (4, 3, RES, RES)
    assert out.seconds.shape == (4,) and bool((out.seconds > 0).all()) and torch.isfinite(out.reconstructions).all()
    assert out.method == name and out.extras["configuration"] == "small"
    sha = inv.weights_sha256(domain)
    assert sha["generator"] == domain.weights["generator"].sha256 and weight_role(name) in sha
    rendered = out.render()
    assert torch.allclose(rendered, out.reconstructions, atol=1e-5)  # edits go through the same (changed) generator
    if name == "hyperstyle":
        check_edits_keep_the_change(out)
        assert inv.changes_generator and inv.kind == "hybrid" and isinstance(out.change, WeightOffsets)
        tuned = [i for i, dlt in enumerate(out.change.deltas) if dlt is not None]
        assert tuned == [0, 2, 3, 5, 6] and "encoder/w_encoder" in sha
        plain = g([out.latents], input_is_latent=True, randomize_noise=False)[0]
        assert not torch.allclose(plain, out.reconstructions, atol=1e-4)  # the offsets matter
        assert out.select([1, 2]).change.deltas[0].shape[0] == 2
    else:
        assert out.change is None
    if name.startswith("restyle"):
        one = INVERTERS[name](n_iters=1).invert(x, domain)
        assert not torch.allclose(one.latents, out.latents)


def test_e4e_codes_are_w0_plus_deltas_and_psp_adds_latent_avg(domain):
    x = domain.images("test")
    st = PSP().prepare(domain)
    codes = PSP().invert(x, domain).latents
    assert torch.allclose(codes, st.encoder(x) + st.latent_avg, atol=1e-5)
    e4e = E4E()
    enc = e4e.prepare(domain).encoder
    assert enc.progressive_stage == 18  # inference: every delta on
    assert not torch.allclose(e4e.invert(x, domain).latents[:, 0], e4e.invert(x, domain).latents[:, 3])


def test_missing_or_mismatched_small_weights_say_how_to_fix(domain, tmp_path):
    with pytest.raises(CheckpointError, match=r"run `zoo train restyle_psp --domain tiny_enc --backbone resnet34"):
        ReStylePSP(backbone="resnet34").invert(domain.images("test"), domain)
    other = TinyDomain(tmp_path)
    with pytest.raises(CheckpointError, match=r"run `zoo train psp --domain tiny_enc --install`"):
        PSP().weights_sha256(other)
    other.add_weights("encoder/hyperstyle", Path(domain.weights["encoder/hyperstyle"].path))
    with pytest.raises(CheckpointError, match=r"zoo train w_encoder --domain tiny_enc"):
        HyperStyle().invert(other.images("test"), other)
    other.add_weights("encoder/psp", Path(domain.weights["encoder/e4e"].path))
    with pytest.raises(CheckpointError, match="holds a e4e model, not psp"):
        PSP().invert(other.images("test"), other)
    with pytest.raises(Exception, match="n_iters must be >= 1"):
        HyperStyle(n_iters=0)


def test_weights_file_round_trip_is_fp16_and_restores_shared_hypernet(domain):
    f = load_encoder_file(domain.weights["encoder/hyperstyle"].path, domain.generator().generator.layer_slots())
    hyper = f.module
    assert all(hyper.refinement_blocks[i].hypernet is hyper.shared_weight_hypernet for i in hyper.shared_layers)
    assert f.config.method == "hyperstyle" and f.latent_avg.shape == (6, W_DIM) and not hyper.training
    from safetensors import safe_open

    with safe_open(domain.weights["encoder/psp"].path, framework="pt") as fh:
        assert fh.get_tensor("encoder.input_layer.0.weight").dtype == torch.float16
        assert not any(".hypernet." in k for k in fh.keys())  # noqa: SIM118


# ------------------------------------------------------------------------------------------------ paper config
PAPER = {  # method -> official encoder_type
    "psp": "GradualStyleEncoder", "e4e": "Encoder4Editing", "restyle_psp": "BackboneEncoder",
    "restyle_e4e": "ResNetProgressiveBackboneEncoder", "hyperstyle": "SharedWeightsHyperNetResNet",
}


def _official_file(tmp_path: Path, encoder_type: str, decoder: Generator, method: str) -> Path:
    """An official-layout checkpoint (state_dict encoder./hypernet. + decoder., opts, latent_avg) of meta tensors:
    the official IR-SE50 / ResNet34 at 256 input, with the tiny 16x16 decoder (so output_size 16 -> 6 styles)."""
    with torch.device("meta"):
        enc = build_encoder(encoder_type, n_styles=6, style_dim=W_DIM, layer_slots=decoder.layer_slots(),
                            layers_to_tune=None)
        latent_avg = torch.empty(6, W_DIM)
    prefix = "hypernet" if method == "hyperstyle" else "encoder"
    sd = {f"{prefix}.{k}": v for k, v in enc.state_dict(keep_vars=True).items()}
    sd.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    size_key = "stylegan_size" if method == "e4e" else "output_size"
    opts = {"encoder_type": encoder_type, size_key: RES, "start_from_latent_avg": True}
    if method == "e4e":
        opts.update(progressive_start=20000, w_discriminator_lambda=0.1)
    path = tmp_path / f"{method}_official.pt"
    torch.save({"state_dict": sd, "opts": opts, "latent_avg": latent_avg}, path)
    return path


@pytest.mark.parametrize("name", list(INVERTERS))
def test_paper_configuration_on_official_layout_checkpoints(domain, tmp_path, name):
    with torch.device("meta"):
        decoder = Generator(RES, W_DIM, 2, channels={4: 32, 8: 32, 16: 16})
    path = _official_file(tmp_path, PAPER[name], decoder, name)
    options = {"weights": str(path)}
    if name in ("restyle_psp", "restyle_e4e", "hyperstyle"):
        options["n_iters"] = 2  # meta kernels cost Python time per op
    if name == "hyperstyle":
        options["w_encoder"] = str(_official_file(tmp_path, "WEncoder", decoder, "w_encoder"))
    inv = INVERTERS[name](options, device="meta")
    st = inv.prepare(domain)
    assert st.paper and st.input_size == 256 and st.official.method == name and st.generator.size == RES
    assert st.encoder.input_size == 256 and not st.encoder.training
    out = inv.invert(domain.images("test"), domain)  # shapes only: every tensor is on the meta device
    assert isinstance(out, CheckpointInversion) and out.extras["configuration"] == "paper"
    assert out.latents.shape == (4, 6, W_DIM) and out.reconstructions.shape == (4, 3, RES, RES)
    assert out.seconds.shape == (4,) and out.render().shape == (4, 3, RES, RES)
    assert isinstance(out.select([0]), CheckpointInversion)
    assert isinstance(out.change, WeightOffsets) == (name == "hyperstyle")
    sha = inv.weights_sha256(domain)
    assert sha["checkpoint"] == sha256_file(path) and ("w_encoder" in sha) == (name == "hyperstyle")


def test_paper_configuration_rejects_the_wrong_method_and_a_missing_w_encoder(domain, tmp_path):
    with torch.device("meta"):
        decoder = Generator(RES, W_DIM, 2, channels={4: 32, 8: 32, 16: 16})
    e4e = _official_file(tmp_path, "Encoder4Editing", decoder, "e4e")
    with pytest.raises(CheckpointError, match=r"is a e4e checkpoint \(Encoder4Editing\), not psp: invert with `e4e`"):
        PSP(weights=str(e4e), device="meta").prepare(domain)
    hs = _official_file(tmp_path, "SharedWeightsHyperNetResNet", decoder, "hyperstyle")
    with pytest.raises(CheckpointError, match="pass w_encoder=PATH"):
        HyperStyle(weights=str(hs), device="meta").prepare(domain)
    with pytest.raises(CheckpointError, match="not found"):
        PSP(weights=str(tmp_path / "nope.pt")).prepare(domain)


# ------------------------------------------------------------------------------------------------ training
def _train(method, domain, out, steps, **kw):
    from zoo_encoders.train import train_encoder

    g = domain.generator().generator
    cfg = small_config(method, g.n_latent, g.style_dim, RES, sizes=TINY)
    recipe = {"n_iters_per_batch": 2, "val_iters": 2, "lpips_size": 32, **kw.pop("recipe", {})}
    return train_encoder(method, domain, out, steps=steps, batch=2, config=cfg, recipe=recipe, progress=False,
                         **kw)


@pytest.mark.parametrize("method", ["psp", "e4e", "restyle_psp", "restyle_e4e", "w_encoder", "hyperstyle"])
def test_training_runs_checkpoints_and_resumes(domain, tmp_path, method):
    from zoo.training.checkpointing import load_checkpoint

    extra = {"w_encoder": domain.weights["encoder/w_encoder"].path} if method == "hyperstyle" else {}
    first = _train(method, domain, tmp_path, 2, **extra)
    assert first["step"] == 2 and (tmp_path / "state.pt").exists() and (tmp_path / "val" / "000002.png").exists()
    state = load_checkpoint(tmp_path / "state.pt")
    before = {k: v.clone() for k, v in state["trainer"]["module"].items()}
    second = _train(method, domain, tmp_path, 4, **extra)
    assert second["step"] == 4  # continued from 2, not restarted
    state = load_checkpoint(tmp_path / "state.pt")
    assert state["step"] == 4 and len([e for e in state["log"] if "loss" in e]) >= 2
    assert all(math.isfinite(e["loss"]) for e in state["log"] if "loss" in e)
    changed = [k for k, v in state["trainer"]["module"].items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed
    final = second["validation"]["final"]
    assert math.isfinite(final["l2"]) and math.isfinite(final["lpips"]) and -1 <= final["id_sim"] <= 1
    n_iter_metrics = len(second["validation"]["iterations"])
    assert n_iter_metrics == {"restyle_psp": 2, "restyle_e4e": 2, "hyperstyle": 3}.get(method, 1)
    with pytest.raises(Exception, match="trained with other settings"):
        _train(method, domain, tmp_path, 5, recipe={"lr": 1e-3}, **extra)


def test_e4e_progressive_stage_advances_and_export_round_trips(domain, tmp_path):
    from zoo.training.checkpointing import load_checkpoint
    from zoo_encoders.train import export_encoder

    # 6 styles: stage 1 from 20 % of the steps, one more delta every 5 % -> stage 5 (all deltas) at 40 %
    summary = _train("e4e", domain, tmp_path, 5, recipe={"w_discriminator_lambda": 0.1})
    assert summary["stage"] == 5 and summary["stage_events"][0] == "step 1: stage 1"
    state = load_checkpoint(tmp_path / "state.pt")
    assert state["trainer"]["disc"]["real_pool"]["ws"].shape[0] == 10  # 5 steps x batch 2 in the pool
    exported = export_encoder("e4e", tmp_path, domain, install=False)
    assert export_encoder("e4e", tmp_path, domain, install=False)["sha256"] == exported["sha256"]  # reproducible
    path = Path(exported["path"])
    assert path.name == "encoder_e4e.safetensors" and exported["size_bytes"] < 200_000
    f = load_encoder_file(path, expect_method="e4e")
    assert f.training["steps"] == 5 and f.training["seed"] == 0 and "validation" in f.training
    domain.add_weights("encoder/e4e", path)
    out = E4E().invert(domain.images("test"), domain)
    assert out.latents.shape == (4, 6, W_DIM)


def test_install_writes_the_model_card_and_manifest_entry(domain, tmp_path, monkeypatch):
    import json

    import zoo_peeps.export as peeps_export
    from zoo_encoders.train import export_encoder

    monkeypatch.setattr(peeps_export, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(peeps_export, "MANIFEST", tmp_path / "weights" / "manifest.json")
    monkeypatch.setattr(domain, "name", "peeps")  # installing is only for the embedded domain
    _train("restyle_psp", domain, tmp_path / "run", 2, recipe={"lr": 3e-4})
    res = export_encoder("restyle_psp", tmp_path / "run", domain, install=True)
    entry = json.loads((tmp_path / "weights" / "manifest.json").read_text())["encoder/restyle_psp"]
    assert entry["filename"] == "encoder_restyle_psp.safetensors" and entry["sha256"] == res["sha256"]
    card = (tmp_path / "weights" / entry["model_card"]).read_text()
    assert "zoo train restyle_psp --domain peeps --steps 2 --minutes 90 --batch 2 --seed 0" in card
    assert "--set lr=0.0003" in card and "--install" in card and "ReStyle" in card and "iteration 2" in card


def test_zoo_train_commands(monkeypatch):
    import click

    import zoo_encoders.train as train_mod

    from zoo_encoders.commands import add_commands

    @click.group()
    def cli() -> None:
        pass

    @cli.group("train")
    def train() -> None:
        pass

    add_commands(cli)
    assert set(train.commands) == {"psp", "e4e", "restyle_psp", "restyle_e4e", "hyperstyle", "w_encoder"}
    res = CliRunner().invoke(cli, ["train", "restyle_e4e", "--help"])
    assert res.exit_code == 0 and "--backbone" in res.output and "--minutes" in res.output
    res = CliRunner().invoke(cli, ["train", "hyperstyle", "--help"])
    assert "--w-encoder" in res.output and "--install" in res.output
    calls = []
    monkeypatch.setattr(train_mod, "train_encoder", lambda *a, **k: calls.append(("train", a, k)) or {"run_dir": "R"})
    monkeypatch.setattr(train_mod, "export_encoder", lambda *a, **k: calls.append(("export", a, k)) or {})
    res = CliRunner().invoke(cli, ["train", "restyle_psp", "--domain", "peeps", "--steps", "7", "--minutes", "3",
                                   "--backbone", "resnet34", "--set", "lr=1e-4", "--fresh", "--install",
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    (_, a, k), (_, ea, ek) = calls
    assert a == ("restyle_psp", "peeps", None) and k["steps"] == 7 and k["max_minutes"] == 3.0
    assert k["backbone"] == "resnet34" and k["recipe"] == {"lr": "1e-4"} and k["resume"] is False
    assert ea == ("restyle_psp", "R", "peeps") and ek == {"install": True}


def test_registered_through_the_plugin_hooks():
    """The registry accepts the five inverters and `zoo train --help` lists the six commands (through the entry
    point once installed, else as a programmatic plugin)."""
    import contextlib

    import zoo_encoders
    from zoo import plugins, registry
    from zoo.cli import main

    installed = plugins.get_plugin_manager().is_registered(zoo_encoders)
    ctx = contextlib.nullcontext() if installed else plugins.temporary_plugin(zoo_encoders, "encoders")
    with ctx:
        for name, cls in INVERTERS.items():
            assert registry.get_inverter_class(name) is cls
        assert registry.describe("hyperstyle")["changes_generator"] is True
        res = CliRunner().invoke(main, ["train", "--help"])
        assert res.exit_code == 0, res.output
        for name in ("psp", "e4e", "restyle_psp", "restyle_e4e", "hyperstyle", "w_encoder"):
            assert name in res.output


def test_ranger_is_radam_plus_lookahead_plus_gradient_centralisation():
    from zoo_encoders.ranger import Ranger

    torch.manual_seed(0)
    target = torch.randn(4, 3)
    w0 = torch.randn(4, 3)

    def run(opt_cls, steps, **kw):
        w = nn.Parameter(w0.clone())
        opt = opt_cls([w], **kw)
        for _ in range(steps):
            opt.zero_grad()
            ((w - target) ** 2).sum().backward()
            opt.step()
        return w.detach(), opt

    # without GC and Lookahead, Ranger's update is RAdam's (same rectification and threshold 5)
    ours, _ = run(Ranger, 12, lr=1e-2, k=10**6, use_gc=False)
    ref, _ = run(torch.optim.RAdam, 12, lr=1e-2, betas=(0.95, 0.999), eps=1e-5)
    assert torch.allclose(ours, ref, atol=1e-6)
    # Lookahead: after k fast steps the weights move to slow + alpha * (fast - slow)
    fast, _ = run(Ranger, 6, lr=1e-2, k=10**6, use_gc=False)
    slow_synced, opt = run(Ranger, 6, lr=1e-2, k=6, alpha=0.5, use_gc=False)
    assert torch.allclose(slow_synced, w0 + 0.5 * (fast - w0), atol=1e-6)
    assert torch.allclose(opt.state[opt.param_groups[0]["params"][0]]["slow_buffer"], slow_synced)
    # gradient centralisation changes the update of multi-dimensional tensors
    gc, _ = run(Ranger, 3, lr=1e-2, k=10**6)
    assert not torch.allclose(gc, run(Ranger, 3, lr=1e-2, k=10**6, use_gc=False)[0])


def test_official_checkpoint_always_gets_the_paper_options(tmp_path):
    """Embedded-domain overrides (hyperstyle n_iters 4 on peeps) never apply with weights= (official checkpoint)."""
    from zoo_encoders.inverters import EMBEDDED

    assert EMBEDDED["hyperstyle"]["n_iters"] != 5
    assert HyperStyle.configure({}, embedded=True)["n_iters"] == EMBEDDED["hyperstyle"]["n_iters"]
    official = HyperStyle.configure({"weights": "hs.pt", "w_encoder": "w.pt"}, embedded=True)
    assert "n_iters" not in official and HyperStyle(official).options.n_iters == 5  # the paper's default
    assert HyperStyle.configure({"weights": "hs.pt", "n_iters": 3}, embedded=True)["n_iters"] == 3  # the user's


def test_bench_resolves_official_weights_to_the_paper_options(tmp_path):
    from zoo.bench import BenchConfig
    from zoo.bench.runner import resolve

    hs = {"weights": str(tmp_path / "hs.pt"), "w_encoder": str(tmp_path / "w.pt")}
    def options(**kw):
        return resolve(BenchConfig(methods=["hyperstyle"], domains=["peeps"], metrics=["l2"], editors=[],
                                   out=str(tmp_path / "run"), **kw).resolved()).options["hyperstyle"]

    assert options()["n_iters"] == 4  # the small configuration's validated setting on peeps
    assert options(options={"hyperstyle": hs}) == hs  # an official checkpoint: the paper's n_iters (5)
