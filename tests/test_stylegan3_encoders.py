"""pSp, e4e, ReStyle-pSp and ReStyle-e4e on a StyleGAN3 generator (issue 16, deliverable 3; stylegan3-editing
semantics): all 16 codes including ws[0], codes = E(x) + latent_avg (ReStyle: from the average image, then residual
updates), the encoder sees aligned renders only (identity transform, whatever the generator's transform buffer),
a user transform renders the result in the unaligned frame; training (frozen generator, SG3 recipe defaults) and the
export -> reload round trip; the stylegan3-editing checkpoint layout (`restyle_pSp_ffhq.pt` / `restyle_e4e_ffhq.pt`:
opts with pathlib paths, `encoder.` + `decoder.` prefixes with NVlabs SG3 decoder keys, latent_avg [512]) loads
strictly, also with a DataParallel `module.` prefix. Tiny generators are built here: no ../shared needed."""

from __future__ import annotations

import math
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pytest
import torch
from torch import nn

from zoo.cards import Card, WeightSpec, sha256_file
from zoo.domain import Domain
from zoo.encoders import restyle_steps
from zoo.encoders.generators import render_aligned
from zoo.encoders.official import build_encoder, load_official
from zoo.stylegan3 import Generator, save_generator
from zoo.stylegan3.checkpoints import LoadedGenerator
from zoo.stylegan3.transforms import as_generator_transform

try:
    import zoo_encoders  # noqa: F401
except ImportError:  # source checkout before `pip install -e .` picked up the plugin
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from zoo_encoders.configs import SmallSizes, build_module, small_config, weight_role  # noqa: E402
from zoo_encoders.inverters import E4E, PSP, CheckpointInversion, HyperStyle, ReStyleE4E, ReStylePSP  # noqa: E402
from zoo_encoders.train import default_recipe, export_encoder, train_encoder  # noqa: E402
from zoo_encoders.weights_io import load_encoder_file, save_encoder_file  # noqa: E402

INVERTERS = {"psp": PSP, "e4e": E4E, "restyle_psp": ReStylePSP, "restyle_e4e": ReStyleE4E}
TINY = SmallSizes(irse_channels=(4, 8, 8, 16), irse_units=(1, 1, 1, 1), resnet_channels=(4, 8, 8, 16),
                  resnet_units=(1, 1, 1, 1))
RES, W_DIM, N_CODES = 16, 16, 16
POSE = (12.0, 0.06, -0.04)  # (r degrees, tx, ty): the image motion aligned -> unaligned


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_sg3(config: str = "T", seed: int = 0) -> Generator:
    """A 16 px StyleGAN3 with the official 14 layers (num_ws 16), <= 32 channels, margin 4, w_dim 16; w_avg = mean of
    1000 mapped z; ToRGB magnitude chosen so that renders stay inside [-1, 1]."""
    kw = dict(z_dim=W_DIM, c_dim=0, w_dim=W_DIM, img_resolution=RES, img_channels=3, mapping_kwargs={"num_layers": 2},
              channel_base=256, channel_max=16, num_layers=14, margin_size=4)
    if config == "R":
        kw.update(conv_kernel=1, use_radial_filters=True, channel_base=512, channel_max=32)
    torch.manual_seed(seed)
    g = Generator(**kw).eval()
    with torch.no_grad():
        z = torch.randn(1000, W_DIM, generator=torch.Generator().manual_seed(seed + 1))
        g.mapping.w_avg.copy_(g.get_latent(z).mean(0))
        peak = float(g.synthesis(g.get_latent(z[:16]).unsqueeze(1).repeat(1, g.num_ws, 1)).abs().max())
        g.synthesis.layers[-1].magnitude_ema.mul_((peak / 0.6) ** 2)
    return g.requires_grad_(False)


class TinyIdentity(nn.Module):
    """A differentiable embedder images [-1, 1] -> L2-normalised [B, 8]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.conv(x).mean((2, 3)), dim=1)


class TinySG3Domain(Domain):
    """16 px StyleGAN3-T with 16 codes; train (24) / test (4) images are its own aligned renders."""

    name = "tiny_sg3_enc"
    resolution = RES
    card = Card(title="tiny StyleGAN3 encoder-test domain")

    def __init__(self, root: Path) -> None:
        super().__init__()
        g = tiny_sg3("T")
        path = root / "generator.pt"
        save_generator(path, g)
        self._weights = {"generator": WeightSpec("tiny3/generator", path.name, sha256_file(path), path=str(path))}
        self.loaded = LoadedGenerator(g, g.mapping.w_avg.clone(), "zoo", g.init_kwargs)
        with torch.no_grad():
            w = g.get_latent(torch.randn(28, W_DIM, generator=torch.Generator().manual_seed(5)))
            self._images = g([w], input_is_latent=True)[0].clamp(-1, 1)
        torch.manual_seed(1)
        self._identity = TinyIdentity().eval().requires_grad_(False)

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return self._weights

    def add_weights(self, role: str, path: Path) -> None:
        self._weights[role] = WeightSpec(f"tiny3/{role}", path.name, sha256_file(path), path=str(path))

    def generator(self, device: str | torch.device = "cpu") -> LoadedGenerator:
        return self.loaded

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        x = self._images[:24] if split == "train" else self._images[24:]
        return x if limit is None else x[:limit]

    def identity_model(self, device: str | torch.device = "cpu") -> nn.Module:
        return self._identity.to(device)


@pytest.fixture(scope="module")
def domain(tmp_path_factory) -> TinySG3Domain:
    """The tiny SG3 domain with randomly initialised tiny encoders of the four methods installed."""
    root = tmp_path_factory.mktemp("tiny_sg3_domain")
    d = TinySG3Domain(root)
    g = d.loaded.generator
    torch.manual_seed(2)
    for method in INVERTERS:
        cfg = small_config(method, g.n_latent, g.style_dim, RES, sizes=TINY, generator="stylegan3")
        module = build_module(cfg)
        latent_avg = d.loaded.latent_avg.reshape(1, -1).expand(g.n_latent, -1)
        path = save_encoder_file(root / f"{method}.safetensors", module, cfg, latent_avg, {"steps": 0})
        d.add_weights(weight_role(method), path)
    return d


def identity_render(g: Generator, codes: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return g.synthesis(codes, transform=torch.eye(3))


# ------------------------------------------------------------------------------------------------ inversion
@pytest.mark.parametrize("name", list(INVERTERS))
def test_inversion_on_sg3_predicts_16_codes_and_carries_the_transform(domain, name):
    g = domain.loaded.generator
    assert "stylegan3" in INVERTERS[name].generators
    x = domain.images("test")
    out = INVERTERS[name](**({"n_iters": 2} if name.startswith("restyle") else {})).invert(x, domain)
    assert out.latents.shape == (4, N_CODES, W_DIM) and out.reconstructions.shape == (4, 3, RES, RES)
    assert out.transform is None and out.extras["configuration"] == "small"
    torch.testing.assert_close(out.reconstructions, identity_render(g, out.latents), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.render(), out.reconstructions, rtol=0, atol=1e-5)
    if name in ("psp", "restyle_psp"):  # ws[0] (the Fourier input's code) is predicted like every other code
        assert not torch.allclose(out.latents[:, 0], out.latents[:, 1])
    # the encoder sees aligned renders whatever the generator's transform buffer holds
    buffer = g.synthesis.input.transform.clone()
    try:
        g.synthesis.input.transform.copy_(as_generator_transform((30.0, 0.1, 0.0)).reshape(3, 3))
        again = INVERTERS[name](**({"n_iters": 2} if name.startswith("restyle") else {})).invert(x, domain)
    finally:
        g.synthesis.input.transform.copy_(buffer)
    torch.testing.assert_close(again.latents, out.latents, rtol=0, atol=1e-5)
    torch.testing.assert_close(again.reconstructions, out.reconstructions, rtol=0, atol=1e-5)
    # the user transform puts the aligned result into the unaligned frame
    un = out.with_transform(POSE)
    t = as_generator_transform(POSE)
    assert un.transform.shape == (4, 3, 3)
    with torch.no_grad():
        expected = g.synthesis(out.latents, transform=t.reshape(1, 3, 3).expand(4, 3, 3))
    torch.testing.assert_close(un.reconstructions, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(un.render(), un.reconstructions, rtol=0, atol=1e-5)
    assert (un.reconstructions - out.reconstructions).abs().mean() > 1e-3
    torch.testing.assert_close(un.extras["aligned_reconstructions"], out.reconstructions)


def test_restyle_starts_from_the_average_image_then_adds_residuals(domain):
    g = domain.loaded.generator
    st = ReStylePSP().prepare(domain)
    seen: list[torch.Tensor] = []

    class Spy(nn.Module):
        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            seen.append(inp.clone())
            return st.encoder(inp)

    x = domain.images("test", 2)
    with torch.no_grad():
        steps = list(restyle_steps(Spy(), g, st.latent_avg, x, 3))
        avg = identity_render(g, g.mapping.w_avg.reshape(1, 1, -1).repeat(1, N_CODES, 1))
        torch.testing.assert_close(seen[0][:, 3:], avg.expand(2, -1, -1, -1), rtol=0, atol=1e-6)
        torch.testing.assert_close(seen[0][:, :3], x)
        torch.testing.assert_close(steps[0].codes, st.encoder(seen[0]) + g.mapping.w_avg, rtol=0, atol=1e-6)
        for t in (1, 2):  # later: E([x, y_{t-1}]) + codes_{t-1}, y = the aligned render
            torch.testing.assert_close(seen[t][:, 3:], identity_render(g, steps[t - 1].codes), rtol=0, atol=1e-5)
            torch.testing.assert_close(steps[t].codes, st.encoder(seen[t]) + steps[t - 1].codes, rtol=0, atol=1e-6)


def test_methods_without_sg3_support_refuse_in_one_line(domain):
    assert HyperStyle.generators == ("stylegan2",)
    with pytest.raises(Exception, match="hyperstyle cannot run on a StyleGAN3 generator yet"):
        HyperStyle().prepare(domain)
    with pytest.raises(Exception, match="cannot be trained on a StyleGAN3 generator"):
        train_encoder("w_encoder", domain, None, steps=1, progress=False)


# ------------------------------------------------------------------------------------------------ training
def test_sg3_recipes_follow_stylegan3_editing():
    sg2, sg3 = default_recipe("restyle_e4e"), default_recipe("restyle_e4e", "stylegan3")
    assert sg2.progressive and sg2.n_iters_per_batch == 5 and sg2.real_w_truncation == 1.0
    assert not sg3.progressive and sg3.n_iters_per_batch == 3 and sg3.real_w_truncation == 0.7
    assert default_recipe("restyle_psp", "stylegan3").n_iters_per_batch == 3
    assert default_recipe("e4e", "stylegan3").progressive  # plain e4e keeps its progressive deltas


@pytest.mark.parametrize("method", list(INVERTERS))
def test_training_smoke_and_export_round_trip(domain, tmp_path, method):
    from zoo.training.checkpointing import load_checkpoint

    g = domain.loaded.generator
    cfg = small_config(method, g.n_latent, g.style_dim, RES, sizes=TINY, generator="stylegan3")
    frozen = {k: v.clone() for k, v in g.state_dict().items()}
    summary = train_encoder(method, domain, tmp_path, steps=3, batch=2, config=cfg, progress=False,
                            recipe={"lpips_size": 32, "w_discriminator_lambda": 0.1 if "e4e" in method else 0.0})
    assert summary["step"] == 3 and all(torch.equal(v, g.state_dict()[k]) for k, v in frozen.items())
    state = load_checkpoint(tmp_path / "state.pt")
    assert all(math.isfinite(e["loss"]) for e in state["log"] if "loss" in e)
    assert len(summary["validation"]["iterations"]) == (5 if method.startswith("restyle") else 1)
    assert state["recipe"]["n_iters_per_batch"] == (3 if method.startswith("restyle") else 1)  # stylegan3-editing
    if method == "e4e":  # progressive over the 16 codes: all 15 deltas on by the end of the run
        assert summary["stage"] == N_CODES - 1 and summary["stage_events"][0].startswith("step 1: stage")
        assert any("delta" in e for e in state["log"])
    if method == "restyle_e4e":  # no progressive training: every delta from the start, no delta regularisation
        assert summary["stage"] == 18 and not summary["stage_events"]
        assert not any("delta" in e for e in state["log"]) and any("adv" in e for e in state["log"])
    exported = export_encoder(method, tmp_path, domain, install=False)
    f = load_encoder_file(exported["path"], expect_method=method)
    assert f.config.generator == "stylegan3" and f.config.n_styles == N_CODES
    assert f.latent_avg.shape == (N_CODES, W_DIM)
    torch.testing.assert_close(f.latent_avg[3], g.mapping.w_avg)
    domain.add_weights(weight_role(method), Path(exported["path"]))
    out = INVERTERS[method](**({"n_iters": 2} if method.startswith("restyle") else {})).invert(
        domain.images("test"), domain)
    assert out.latents.shape == (4, N_CODES, W_DIM) and torch.isfinite(out.reconstructions).all()


def test_encoder_file_for_the_other_family_is_refused(domain, tmp_path):
    g = domain.loaded.generator
    cfg = small_config("psp", g.n_latent, g.style_dim, RES, sizes=TINY)  # a StyleGAN2 config of the same shape
    path = save_encoder_file(tmp_path / "psp.safetensors", build_module(cfg), cfg,
                             domain.loaded.latent_avg.reshape(1, -1).expand(N_CODES, -1))
    saved = domain.weights["encoder/psp"]
    domain.add_weights("encoder/psp", path)
    try:
        with pytest.raises(Exception, match="trained for a stylegan2 generator"):
            PSP().invert(domain.images("test"), domain)
    finally:
        domain._weights["encoder/psp"] = saved


# ------------------------------------------------------------------------------------------------ official files
def _encoder_sd(etype: str, n_styles: int, style_dim: int, seed: int) -> dict[str, torch.Tensor]:
    """Official-layout encoder tensors (IR-SE50, 6 channels, 256 input); one shared tensor per (kind, shape) keeps
    the file small. BatchNorms are identities, weights N(0, 0.5 / fan_in)."""
    with torch.device("meta"):
        enc = build_encoder(etype, n_styles=n_styles, input_nc=6, style_dim=style_dim)
    gen = torch.Generator().manual_seed(seed)
    shared: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
    out = {}
    for key, t in enc.state_dict(keep_vars=True).items():
        shape = tuple(t.shape)
        owner = enc.get_submodule(key.rsplit(".", 1)[0])
        norm = isinstance(owner, (nn.BatchNorm2d, nn.PReLU)) and key.endswith("weight")
        kind = ("var" if key.endswith("running_var") else "mean" if key.endswith("running_mean")
                else "count" if key.endswith("num_batches_tracked") else "one" if norm
                else "zero" if key.endswith("bias") else "w")
        if (kind, shape) not in shared:
            if kind == "count":
                v = torch.tensor(0)
            elif kind in ("var", "one"):
                v = torch.ones(shape)
            elif kind in ("mean", "zero"):
                v = torch.zeros(shape)
            else:
                fan_in = max(1, int(np.prod(shape[1:]))) if len(shape) > 1 else 1
                v = torch.randn(shape, generator=gen) * (0.5 / math.sqrt(fan_in))
            shared[(kind, shape)] = v
        out[key] = shared[(kind, shape)]
    return out


def save_sg3_editing_checkpoint(path: Path, etype: str, decoder: Generator, *, module_prefix: bool = False) -> Path:
    """A stylegan3-editing ReStyle checkpoint: {'state_dict': encoder.* + decoder.* (NVlabs SG3 keys; without
    `synthesis.input.transform`, which the editing repo drops when loading its decoder), 'opts':
    dataclasses.asdict(TrainOptions) with pathlib paths, 'latent_avg': [w_dim]} (+ e4e training fields);
    module_prefix: saved from DataParallel (`module.encoder.*`)."""
    sd = {f"encoder.{k}": v for k, v in _encoder_sd(etype, N_CODES, decoder.w_dim, seed=3).items()}
    sd.update({f"decoder.{k}": v.clone() for k, v in decoder.state_dict().items()
               if k != "synthesis.input.transform"})
    if module_prefix:
        sd = {f"module.{k}": v for k, v in sd.items()}
    opts = {"exp_dir": PurePosixPath("experiments/restyle"), "dataset_type": "ffhq_encode", "encoder_type": etype,
            "input_nc": 6, "output_size": RES, "n_iters_per_batch": 3, "batch_size": 2, "learning_rate": 1e-4,
            "start_from_latent_avg": True, "stylegan_weights": Path("pretrained_models/sg3-r-ffhq-1024.pt"),
            "checkpoint_path": None, "windows_copy": PureWindowsPath(r"C:\models\sg3.pt"), "device": "cuda:0"}
    ckpt = {"state_dict": sd, "opts": opts, "latent_avg": decoder.mapping.w_avg.clone()}
    if etype.startswith("Progressive"):
        opts.update(w_discriminator_lambda=0.1, progressive_start=None, delta_norm_lambda=2e-4, truncation_psi=0.7)
        ckpt.update(global_step=500000, best_val_loss=0.1, discriminator_state_dict={"mlp.0.weight": torch.zeros(2)})
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("etype,method,prefix", [("BackboneEncoder", "restyle_psp", False),
                                                 ("ProgressiveBackboneEncoder", "restyle_e4e", True)])
def test_stylegan3_editing_checkpoints_load_strictly(tmp_path, etype, method, prefix):
    decoder = tiny_sg3("R", seed=4)
    path = save_sg3_editing_checkpoint(tmp_path / f"restyle_{method}_ffhq.pt", etype, decoder, module_prefix=prefix)
    assert path.stat().st_size < 40_000_000  # one tensor per (kind, shape): ~20 MB instead of ~130 MB
    model = load_official(path)
    assert (model.method, model.encoder_type, model.generator_family) == (method, etype, "stylegan3")
    assert model.n_styles == N_CODES and model.n_iters == 3 and model.output_size == RES
    assert model.opts["stylegan_weights"] == "pretrained_models/sg3-r-ffhq-1024.pt"  # a Path read as a string
    assert model.opts["exp_dir"] == "experiments/restyle" and model.opts["windows_copy"] == r"C:\models\sg3.pt"
    assert model.latent_avg.shape == (N_CODES, W_DIM)
    torch.testing.assert_close(model.latent_avg[5], decoder.mapping.w_avg)
    ours = model.generator.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in decoder.state_dict().items())  # strict, transform = identity
    enc = model.encoder
    assert len(enc.styles) == N_CODES and enc.styles[0].convs[0].weight.shape == (W_DIM, 512, 3, 3)
    if prefix:  # the forward pass is checked once (a full-size IR-SE50 costs ~1 s per image)
        return
    # one official iteration: codes = E([x, avg image]) + latent_avg, the avg image = the aligned render of
    # latent_avg brought to the encoder input size by `face_pool` (adaptive average pooling)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        codes, image, _ = model.invert(x, n_iters=1)
        avg = nn.functional.adaptive_avg_pool2d(identity_render(model.generator, model.latent_avg[None]), (256, 256))
        first = model.encoder(torch.cat([x, avg], 1)) + model.latent_avg
    torch.testing.assert_close(codes, first, rtol=0, atol=1e-5)
    torch.testing.assert_close(image, render_aligned(model.generator, codes), rtol=0, atol=1e-6)
    assert codes.shape == (1, N_CODES, W_DIM) and image.shape == (1, 3, RES, RES)


def test_paper_configuration_on_an_sg3_domain_renders_unaligned_through_the_decoder(domain, tmp_path):
    decoder = tiny_sg3("R", seed=4)
    path = save_sg3_editing_checkpoint(tmp_path / "restyle_pSp_ffhq.pt", "BackboneEncoder", decoder)
    out = ReStylePSP(weights=str(path), n_iters=1).invert(domain.images("test", 1), domain)
    assert isinstance(out, CheckpointInversion) and out.latents.shape == (1, N_CODES, W_DIM)
    assert out.extras["configuration"] == "paper"
    un = out.with_transform(POSE)
    t = as_generator_transform(POSE)
    with torch.no_grad():
        expected = decoder.synthesis(out.latents, transform=t)
    torch.testing.assert_close(un.reconstructions, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(un.render(), un.reconstructions, rtol=0, atol=1e-6)
    moved = (un.reconstructions - out.reconstructions).abs().mean()
    assert moved > 0.05 * out.reconstructions.abs().mean()  # random weights: small images, scale-free check


def test_domain_generator_from_a_stylegan3_editing_encoder_checkpoint(tmp_path):
    """A domain file's [generator] may point at a stylegan3-editing ReStyle checkpoint: its SG3 decoder loads."""
    from zoo.userdomain import load_domain_generator

    decoder = tiny_sg3("R", seed=4)
    path = save_sg3_editing_checkpoint(tmp_path / "restyle_pSp_ffhq.pt", "BackboneEncoder", decoder,
                                       module_prefix=True)
    loaded, fmt = load_domain_generator(path)
    assert fmt == "stylegan3 (encoder-decoder)" and loaded.generator.n_latent == N_CODES
    ours = loaded.generator.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in decoder.state_dict().items())
    torch.testing.assert_close(loaded.latent_avg, decoder.mapping.w_avg)
