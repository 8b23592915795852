"""The StyleGAN3-only video steps on the official small SG3-T fixture generator (../shared/reference/sg3): video PTI
freezes the Fourier input layer, frames render with their transforms, and field-of-view expansion renders a wider
frame whose centre equals the plain render. Skipped without zoo.stylegan3 or the fixture."""

from __future__ import annotations

import pytest
import torch

from zoo.video.fov import expand
from zoo.video.transforms import has_fourier_input, inverse_transforms
from zoo.video.video_pti import VideoPTIOptions, render_tuned, trainable_names, tune_video

sg3 = pytest.importorskip("zoo.stylegan3.checkpoints")


@pytest.fixture(scope="module")
def g():
    from conftest import reference_file

    d = torch.load(reference_file("sg3/sg3_t_small.pt"), weights_only=True)
    gen, _, _ = sg3.build_generator(d["state_dict"], d["meta"].get("init_kwargs"))
    for p in gen.parameters():
        p.requires_grad_(False)
    return gen


@pytest.fixture(scope="module")
def ws(g):
    with torch.no_grad():
        return g.mapping(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)), None)


def test_video_pti_freezes_the_fourier_input(g, ws):
    assert has_fourier_input(g)
    tuned, frozen = trainable_names(g, "auto")
    assert sorted(tuned) == sorted(g.tuning_parameters())  # = stylegan3-editing's synthesis.parameters()[3:]
    assert {"synthesis.input.weight", "synthesis.input.affine.weight", "synthesis.input.affine.bias"} <= set(frozen)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    t = inverse_transforms([{"rotation": 10.0, "tx": 0.05, "ty": 0.0}, {"rotation": -5.0, "tx": 0.0, "ty": 0.1}])
    with torch.no_grad():
        frames = render_tuned(g, ws, transforms=t) + 0.05
    res = tune_video(g, ws, frames, VideoPTIOptions(steps=1, batch=2, lpips_weight=0.0, lpips_threshold=0.0),
                     transforms=t)
    assert res.deltas and not any(k.startswith(("synthesis.input.", "mapping.")) for k in res.deltas)
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())


def test_frames_render_with_their_transforms(g, ws):
    t = inverse_transforms([{"rotation": 0.0, "tx": 0.0, "ty": 0.0}, {"rotation": 20.0, "tx": 0.0, "ty": 0.0}])
    with torch.no_grad():
        plain, _ = g([ws], input_is_latent=True)
        out = render_tuned(g, ws, transforms=t)
    torch.testing.assert_close(out[0], plain[0], atol=1e-5, rtol=1e-5)  # identity transform = aligned render
    assert float((out[1] - plain[1]).abs().mean()) > 1e-3  # the rotated frame differs


def test_fov_expansion_centre_equals_the_plain_render(g, ws):
    t = inverse_transforms([{"rotation": 5.0, "tx": 0.02, "ty": -0.03}])
    with torch.no_grad():
        plain = render_tuned(g, ws[:1], transforms=t)
        wide = expand(g, ws[:1], t, left=4, top=3)
    assert wide.shape == (1, 3, 3 + 32, 4 + 32)
    torch.testing.assert_close(wide[:, :, 3:, 4:], plain, atol=1e-5, rtol=1e-5)
    assert float(wide[:, :, :3, :].abs().mean()) > 0 and float(wide[:, :, :, :4].abs().mean()) > 0


def test_pipeline_unaligned_pti_and_fov_on_a_tiny_sg3_domain(tmp_path):
    """run_video end to end on a seeded random 16 px StyleGAN3-T domain: frames rendered with their transforms,
    video PTI with those transforms (input layer frozen), field-of-view expansion around the final frames."""
    from zoo.cards import Card
    from zoo.domain import Domain
    from zoo.stylegan3 import Generator
    from zoo.stylegan3.checkpoints import LoadedGenerator
    from zoo.video.clip import Clip
    from zoo.video.pipeline import VideoOptions, run_video
    from zoo_optim.projector import OptimInverter

    class TinySG3(Domain):
        name = "tiny_sg3_video"
        resolution = 16
        card = Card(title="tiny StyleGAN3 video test domain")

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            gen = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                            mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=16, num_layers=4,
                            margin_size=4, output_scale=0.25).eval()
            gen.requires_grad_(False)
            self.loaded = LoadedGenerator(gen, gen.mapping.w_avg.clone(), "zoo", gen.init_kwargs)

        @property
        def weights(self):
            return {}

        def generator(self, device="cpu"):
            return self.loaded

        def images(self, split="test", limit=None):
            raise NotImplementedError

    dom = TinySG3()
    gen = dom.loaded.generator
    params = [{"rotation": 4.0 * i, "tx": 0.02 * i, "ty": 0.0} for i in range(5)]
    t = inverse_transforms(params)
    with torch.no_grad():
        w = gen.style(torch.randn(1, 16, generator=torch.Generator().manual_seed(1))).expand(5, -1)
        codes = w.unsqueeze(1).repeat(1, gen.n_latent, 1)
        frames = render_tuned(gen, codes, transforms=t).clamp(-1, 1)
        aligned = render_tuned(gen, codes).clamp(-1, 1)
    clip = Clip(frames, "tiny", "test", params=params, aligned=aligned)
    opts = VideoOptions(unaligned=True, fov=2, video_pti=True, edges="replicate",
                        pti=VideoPTIOptions(steps=1, batch=5, lpips_weight=0.0, lpips_threshold=0.0))
    inverter = OptimInverter(steps=3, mse=1.0, lpips_weight=0.0, w_avg_samples=50)
    res = run_video(clip, dom, inverter, tmp_path, opts, batch_size=5, resume=False)
    assert res.kept == list(range(5)) and res.columns["reconstruction"].shape == (5, 3, 16, 16)
    assert res.fov is not None and res.fov.shape == (5, 3, 20, 20)
    torch.testing.assert_close(res.fov[:, :, 2:18, 2:18], res.columns["reconstruction"], atol=1e-5, rtol=1e-5)
    assert "synthesis.input.weight" in res.pti["frozen_parameters"]
    assert (tmp_path / "video_pti.safetensors").is_file() and len(list((tmp_path / "frames").iterdir())) == 5
    from zoo.inversion import Inversion

    saved = Inversion.load(tmp_path / "frames" / "frame_0003.inversion.safetensors", domain=dom)
    assert torch.allclose(saved.images[0], aligned[3], atol=1 / 127.5)  # the aligned frame was inverted
