"""Video PTI (zoo.video.video_pti): frozen parameters stay unchanged, resuming equals an uninterrupted run, and the
SG3-only steps say so on a StyleGAN2 generator."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from zoo.errors import InputError
from zoo.stylegan2 import Generator
from zoo.video.transforms import has_fourier_input, require_fourier_input
from zoo.video.video_pti import VideoPTIOptions, trainable_names, tune_video

FAST = dict(lpips_weight=0.0, lpips_threshold=0.0, lr=1e-2)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    g = Generator(16, style_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8}).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(3)
    latents = torch.randn(6, g.n_latent, 16, generator=gen)
    frames = torch.rand(6, 3, 16, 16, generator=gen) * 2 - 1
    return g, latents, frames


def test_frozen_parameters_stay_unchanged(setup):
    g, latents, frames = setup
    before = {k: v.clone() for k, v in g.state_dict().items()}
    res = tune_video(g, latents, frames, VideoPTIOptions(steps=3, batch=4, freeze="input", **FAST))
    assert "input.input" in res.frozen and "input.input" not in res.deltas
    assert not any(k.startswith("style.") for k in res.deltas)  # the mapping is never tuned
    assert any(float(d.abs().max()) > 0 for d in res.deltas.values())
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # the generator itself is untouched
    res_none = tune_video(g, latents, frames, VideoPTIOptions(steps=1, batch=4, freeze="none", **FAST))
    assert "input.input" in res_none.deltas
    assert trainable_names(g, "auto")[0] == trainable_names(g, "none")[0]  # SG2: auto freezes nothing
    with pytest.raises(InputError, match="nothing_like_this"):
        trainable_names(g, "nothing_like_this")


def test_resume_continues_the_same_run(setup, tmp_path: Path):
    g, latents, frames = setup
    opts = VideoPTIOptions(steps=4, batch=4, save_every=2, **FAST)
    full = tune_video(g, latents, frames, opts)

    def stop(step, total, loss):
        if step == 3:
            raise KeyboardInterrupt

    ckpt = tmp_path / "pti.checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        tune_video(g, latents, frames, opts, checkpoint=ckpt, on_step=stop)
    resumed = tune_video(g, latents, frames, opts, checkpoint=ckpt, resume=True)
    assert resumed.resumed_from == 2 and resumed.steps == 4
    for k, d in full.deltas.items():
        torch.testing.assert_close(resumed.deltas[k], d, atol=1e-6, rtol=1e-5)
    with pytest.raises(InputError, match="other frames, pivots, generator or options"):
        tune_video(g, latents, frames, VideoPTIOptions(steps=5, batch=4, save_every=2, **FAST), checkpoint=ckpt,
                   resume=True)


def test_sg3_only_steps_need_a_fourier_input(setup):
    g, _, _ = setup
    assert not has_fourier_input(g)
    with pytest.raises(InputError, match="needs an SG3 domain"):
        require_fourier_input(g, "--fov 8", "peeps")
    sg3_like = SimpleNamespace(synthesis=SimpleNamespace(input=SimpleNamespace(transform=torch.eye(3))))
    assert has_fourier_input(sg3_like)
