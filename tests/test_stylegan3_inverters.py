"""The optimisation inverters of zoo_optim (optim in W, optim_wplus, PTI) run unchanged on a StyleGAN3 generator
through the shared generator interface; PTI leaves the Fourier input layer (and the mapping) untouched, as
stylegan3-editing's PTI does. Runs on a tiny random SG3-T (16 px, 4 layers, margin 4), no ../shared needed."""

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
from zoo.inversion import TunedWeights, render_with_change
from zoo.stylegan3 import Generator
from zoo.stylegan3.checkpoints import LoadedGenerator
from zoo_optim.projector import OptimInverter, OptimWPlusInverter
from zoo_optim.pti import PTIInverter

W_DIM = 16


class TinySG3Domain(Domain):
    """A seeded random 16 px StyleGAN3-T (4 layers, <= 16 channels, margin 4); images = its own renders."""

    name = "tiny_sg3"
    resolution = 16
    card = Card(title="tiny StyleGAN3 test domain")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        g = Generator(z_dim=W_DIM, c_dim=0, w_dim=W_DIM, img_resolution=16, img_channels=3,
                      mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=16, num_layers=4,
                      margin_size=4, output_scale=1.0).eval()
        g.requires_grad_(False)
        with torch.no_grad():
            g.mapping.w_avg.copy_(g.get_latent(torch.randn(1000, W_DIM, generator=torch.Generator().manual_seed(1)))
                                  .mean(0))
            x = g([g.mapping.w_avg.reshape(1, -1)], input_is_latent=True)[0]
            g.synthesis.output_scale = 0.5 / float(x.abs().max())  # images well inside [-1, 1]
        self.loaded = LoadedGenerator(g, g.mapping.w_avg.clone(), "zoo", g.init_kwargs)

    @property
    def weights(self):
        return {}

    def generator(self, device="cpu") -> LoadedGenerator:
        return self.loaded

    def latents(self, n: int, seed: int) -> torch.Tensor:
        z = torch.randn(n, W_DIM, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return self.loaded.generator.style(z)

    def render(self, w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.loaded.generator([w], input_is_latent=True)[0]

    def images(self, split="test", limit=None):
        x = self.render(self.latents(8, 5 if split == "test" else 6))
        return x if limit is None else x[:limit]


@pytest.fixture(scope="module")
def domain() -> TinySG3Domain:
    torch.set_num_threads(1)
    return TinySG3Domain()


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).mean((1, 2, 3))


def test_interface_matches_the_stylegan2_generator(domain):
    g = domain.loaded.generator
    assert g.n_latent == 6 and g.style_dim == W_DIM and g.size == 16 and g.fixed_noise() == []
    slots = g.layer_slots()
    assert len(slots) == 5 and slots[-1].is_torgb and g.slot_latent_index() == [1, 2, 3, 4, 5]
    w = domain.latents(2, seed=3).unsqueeze(1).repeat(1, 6, 1)
    codes = g.style_codes(w)
    assert [tuple(c.shape) for c in codes] == [(2, s.in_channels) for s in slots]
    with torch.no_grad():
        base = g.synthesis(w)
        # styles override = the same image; a style offset and a weight delta change it, per sample
        torch.testing.assert_close(g.synthesis(w, styles=codes), base)
        offsets = [None] * 5
        offsets[2] = torch.zeros(2, slots[2].in_channels)
        offsets[2][1] = 1.0
        moved = g.synthesis(w, style_offsets=offsets)
        torch.testing.assert_close(moved[0], base[0], atol=1e-5, rtol=0)
        assert (moved[1] - base[1]).abs().max() > 1e-3
        deltas = [None] * 5
        s = slots[1]
        deltas[1] = torch.zeros(2, s.out_channels, s.in_channels, 1, 1)
        gen = torch.Generator().manual_seed(2)
        deltas[1][0] = 0.5 * torch.randn(s.out_channels, s.in_channels, 1, 1, generator=gen)
        changed = g.synthesis(w, weights_deltas=deltas)
        torch.testing.assert_close(changed[1], base[1], atol=1e-5, rtol=0)
        assert (changed[0] - base[0]).abs().max() > 1e-3
        # zero deltas take the grouped per-sample path: same image
        zero = [torch.zeros(1, sl.out_channels, sl.in_channels, 1, 1) for sl in slots]
        torch.testing.assert_close(g.synthesis(w, weights_deltas=zero), base, atol=1e-5, rtol=1e-5)


def test_optim_w_and_wplus_run_on_sg3(domain):
    w = domain.latents(1, seed=11)
    x = domain.render(w)
    inv = OptimInverter(steps=60, mse=1.0, lpips_weight=0.0, w_avg_samples=500)
    res = inv.invert(x, domain)
    start = mse(domain.render(inv.prepare(domain).w_avg), x)
    err = mse(res.reconstructions, x)
    assert (err < 0.2 * start).all(), (err, start)
    assert res.latents.shape == (1, 6, W_DIM) and torch.equal(res.latents[:, 0], res.latents[:, 5])
    assert not res.noise  # StyleGAN3 has no noise maps
    assert torch.allclose(res.render(), res.reconstructions, atol=1e-6)
    plus = OptimWPlusInverter(steps=30, mse=1.0, lpips_weight=0.0, w_avg_samples=500).invert(x, domain)
    assert not torch.equal(plus.latents[:, 0], plus.latents[:, 5])
    assert (mse(plus.reconstructions, x) < start).all()


def test_pti_on_sg3_freezes_the_fourier_input(domain):
    w = domain.latents(1, seed=16)
    x = 0.8 * domain.render(w) + 0.1  # outside the generator's range: tuning has something to fix
    inv = PTIInverter(pivot_steps=15, steps=15, lr=3e-3, lpips_weight=0.0, lpips_threshold=0.0, w_avg_samples=300)
    res = inv.invert(x, domain)
    g = domain.loaded.generator
    assert (mse(res.reconstructions, x) < 0.9 * mse(res.extras["pivot_reconstructions"], x)).all()
    assert isinstance(res.change, TunedWeights)
    delta = res.change.deltas[0]
    assert delta and all(k.startswith("synthesis.L") for k in delta), sorted(delta)
    assert not any(k.startswith(("synthesis.input.", "mapping.")) for k in delta)
    assert (res.render() - res.reconstructions).abs().max().item() < 1e-5
    edited = res.latents + 0.5 * torch.randn(W_DIM, generator=torch.Generator().manual_seed(9))
    assert (res.render(edited) - render_with_change(g, edited, None)).abs().mean().item() > 1e-4


def test_magnitude_ema_update_and_conv_clamp():
    """update_emas tracks the mean square of each layer's input (beta 0: exactly it); conv_clamp bounds the
    pre-filter activations (ToRGB has no down filter, so the image is bounded by clamp * output_scale)."""
    torch.manual_seed(0)
    kw = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=128, channel_max=8,
              num_layers=4, margin_size=4)
    g = Generator(**kw, magnitude_ema_beta=0.0).eval()
    seen: dict[str, float] = {}
    hooks = [layer.register_forward_pre_hook(lambda m, a, n=name: seen.__setitem__(n, float(a[0].square().mean())))
             for name, layer in zip(g.synthesis.layer_names, g.synthesis.layers)]
    with torch.no_grad():
        g(torch.randn(4, 8), None, update_emas=True)
    for h in hooks:
        h.remove()
    for name, layer in zip(g.synthesis.layer_names, g.synthesis.layers):
        assert layer.magnitude_ema.item() == pytest.approx(seen[name], rel=1e-5), name
    clamped = Generator(**kw, conv_clamp=0.05).eval()
    clamped.load_state_dict(g.state_dict())
    with torch.no_grad():
        z = torch.randn(2, 8)
        free, img = g(z, None), clamped(z, None)
    assert img.abs().max() <= 0.05 * 0.25 + 1e-7
    assert free.abs().max() > 0.05 * 0.25
    # the autograd path (clamp applied only when something exceeds it) gives the same images and gradients flow
    with_grad = clamped(z, None)
    torch.testing.assert_close(with_grad, img, atol=1e-6, rtol=0)
    with_grad.square().sum().backward()
    assert clamped.synthesis.layers[0].weight.grad is not None
    torch.testing.assert_close(g(z, None), free, atol=1e-6, rtol=0)
