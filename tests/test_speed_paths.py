"""Issue 20: the CPU fast paths compute the same thing as the reference formulations (float rounding aside).

Small random networks only (< a few seconds): upfirdn2d shortcuts, the generator's batch-1 / batched / grouped
modulated-conv paths and the channel-wise HyperStyle delta path, the cached demodulation sums, LPIPSAlex against the
lpips package, MS-SSIM's channels_last filtering.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from zoo.stylegan2 import Generator
from zoo.stylegan2.ops import upfirdn2d

TOL = dict(rtol=1e-4, atol=1e-5)


def _upfirdn2d_reference(x: torch.Tensor, k: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """rosinality upfirdn2d_native (no down): zero insertion, pad, correlation with the flipped kernel."""
    b, c, h, w = x.shape
    out = x.reshape(b, c, h, 1, w, 1)
    out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)
    out = F.pad(out, [pad[0], pad[1], pad[0], pad[1]])
    kk = torch.flip(k, [0, 1]).view(1, 1, *k.shape).expand(c, 1, *k.shape)
    return F.conv2d(out, kk, groups=c)


@pytest.mark.parametrize("up,pad", [(1, (1, 1)), (1, (2, 2)), (2, (2, 1)), (2, (1, 0)), (2, (3, 2)), (1, (2, 1))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_upfirdn2d_shortcuts_match_reference(up, pad, channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 9)
    k = torch.randn(4, 4)  # asymmetric on purpose: checks the kernel orientation of the transposed-conv shortcut
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(upfirdn2d(x, k, up=up, pad=pad), _upfirdn2d_reference(x, k, up, pad), **TOL)
    bias = torch.randn(5)
    torch.testing.assert_close(upfirdn2d(x, k, up=up, pad=pad, bias=bias),
                               _upfirdn2d_reference(x, k, up, pad) + bias.view(1, -1, 1, 1), **TOL)


def _small_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(32, style_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16}).eval()
    with torch.no_grad():  # non-zero noise strengths and biases, so the folded epilogue is exercised
        for name, p in g.named_parameters():
            if "noise" in name or "bias" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    return g


def test_batch_one_equals_a_row_of_the_batched_path():
    g = _small_generator()
    w = torch.randn(3, g.n_latent, 32)
    with torch.no_grad():
        batched = g([w], input_is_latent=True, randomize_noise=False)[0]
        single = torch.cat([g([w[i : i + 1]], input_is_latent=True, randomize_noise=False)[0] for i in range(3)])
    assert batched.is_contiguous() and single.is_contiguous()
    torch.testing.assert_close(single, batched, **TOL)


def test_grouped_and_compact_delta_paths_match():
    g = _small_generator()
    slots = g.layer_slots()
    w = torch.randn(2, g.n_latent, 32)
    compact = [torch.randn(2, s.out_channels, s.in_channels, 1, 1) * 0.1 if i % 2 == 0 else None
               for i, s in enumerate(slots)]
    full = [d.repeat(1, 1, 1, s.kernel_size, s.kernel_size) if d is not None else None for d, s in zip(compact, slots)]
    with torch.no_grad():
        a = g([w], input_is_latent=True, randomize_noise=False, weights_deltas=compact)[0]
        b = g([w], input_is_latent=True, randomize_noise=False, weights_deltas=full)[0]
        zero = g([w], input_is_latent=True, randomize_noise=False,
                 weights_deltas=[torch.zeros(1)] * len(slots))[0]  # general grouped path, delta 0
        plain = g([w], input_is_latent=True, randomize_noise=False)[0]
    torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(zero, plain, **TOL)


def test_gradients_match_between_paths():
    """Gradients w.r.t. W+ (projector: activation-modulation path) and w.r.t. the weights (PTI: batch-1 weight path)
    equal those of the same images rendered through the grouped per-sample path (delta 0), in float64."""
    g = _small_generator().double()
    n = len(g.layer_slots())
    w0 = torch.randn(1, g.n_latent, 32, dtype=torch.float64)

    def grads(deltas):
        g.zero_grad(set_to_none=True)
        w = w0.clone().requires_grad_(True)
        g([w], input_is_latent=True, randomize_noise=False, weights_deltas=deltas)[0].square().mean().backward()
        return w.grad, [p.grad.clone() for p in g.parameters() if p.grad is not None]

    g.requires_grad_(False)
    gw_fast, _ = grads(None)
    gw_ref, _ = grads([torch.zeros(1, dtype=torch.float64)] * n)
    torch.testing.assert_close(gw_fast, gw_ref, rtol=1e-9, atol=1e-12)
    g.requires_grad_(True)
    _, gp_fast = grads(None)
    _, gp_ref = grads([torch.zeros(1, dtype=torch.float64)] * n)
    assert len(gp_fast) == len(gp_ref) > 0
    for a, b in zip(gp_fast, gp_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_demodulation_cache_follows_weight_updates():
    g = _small_generator()
    w = torch.randn(1, g.n_latent, 32)
    with torch.no_grad():
        before = g([w], input_is_latent=True, randomize_noise=False)[0]
        for p in g.parameters():
            if p.ndim == 5:
                p.mul_(torch.rand_like(p) + 0.5)  # in-place, like an optimiser step or load_state_dict
        after = g([w], input_is_latent=True, randomize_noise=False)[0]
        fresh = _small_generator()
        fresh.load_state_dict(g.state_dict())
        expected = fresh([w], input_is_latent=True, randomize_noise=False)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, **TOL)


def test_lpips_alex_equals_the_lpips_package():
    lpips = pytest.importorskip("lpips")
    from zoo_metrics.lpips_net import LPIPSAlex

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False).eval()
    with torch.no_grad():
        for lin in ref.lins:  # random non-negative heads (pretrained=False leaves them at their init)
            lin.model[-1].weight.copy_(torch.rand_like(lin.model[-1].weight))
    fast = LPIPSAlex.from_lpips(ref)
    x, y = torch.rand(2, 3, 64, 48) * 2 - 1, torch.rand(2, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(fast(x, y), ref(x, y), **TOL)
        torch.testing.assert_close(fast.distance(fast.features(x), fast.features(y[:1])),
                                   ref(x, y[:1].expand(2, -1, -1, -1)).flatten(), **TOL)
    xg = x.clone().requires_grad_(True)  # differentiable w.r.t. the images, as the optimisation losses need
    fast(xg, y).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_msssim_filter_equals_grouped_convolution():
    from zoo_metrics.msssim import gaussian_1d, gaussian_filter_valid

    torch.manual_seed(0)
    x = torch.randn(2, 15, 40, 33)
    g = gaussian_1d(11, 1.5)
    ref = F.conv2d(x, torch.outer(g, g).view(1, 1, 11, 11).expand(15, 1, 11, 11), groups=15)
    torch.testing.assert_close(gaussian_filter_valid(x, g), ref, **TOL)

