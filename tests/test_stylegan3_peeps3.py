"""peeps3 (code only): aligned / unaligned peeps pairs with the renderer's exact pose, and the StyleGAN3 GAN recipe
(zoo.training.stylegan3_gan) -- EMAs tracked, checkpoint + resume equal to an uninterrupted run, export loadable.
A tiny 16 px SG3 keeps it fast; the real recipe is plugins/zoo_peeps/generator3_training.PEEPS3_GAN."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

try:
    import zoo_peeps  # noqa: F401
except ImportError:  # not installed as a package yet: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from zoo.errors import InputError
from zoo.stylegan3 import load_any_generator
from zoo.training.stylegan3_gan import Gan3Config, build_models3, train_gan3
from zoo_peeps.generator3_training import PEEPS3_GAN, export_generator3
from zoo_peeps.peeps3_data import load_aligned_split, pose_of, render_pair

TINY = Gan3Config(generator=dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                                 mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=16, num_layers=4,
                                 margin_size=4),
                  d_channels={4: 16, 8: 16, 16: 16}, batch=4, max_steps=4, checkpoint_every=2, sample_every=4,
                  n_sample=4, d_reg_every=2)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_pairs_differ_by_the_renderers_pose():
    aligned, unaligned, pose = render_pair(7, 2, 64)
    assert pose == pose_of(7, 2) and abs(pose[0]) > 1.0
    # moving the aligned render by the pose (PIL rotate + translate, = make_transform(r, tx, ty)) gives the unaligned
    # render up to resampling: much closer than the aligned render itself or the opposite motion
    img = Image.fromarray(aligned)
    r, tx, ty = pose

    def moved(sign: float) -> np.ndarray:
        return np.asarray(img.rotate(sign * r, resample=Image.Resampling.BICUBIC, translate=(sign * tx * 64,
                                                                                          sign * ty * 64),
                                     fillcolor=(240, 240, 240)), dtype=np.float64)

    err = np.abs(moved(1.0) - unaligned).mean()
    assert err < 0.5 * np.abs(aligned.astype(np.float64) - unaligned).mean()
    assert err < 0.5 * np.abs(moved(-1.0) - unaligned).mean()


def test_aligned_split_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    images, poses = load_aligned_split("test", 16, n_ids=2, n_var=2)
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.uint8 and poses.shape == (4, 3)
    assert list(tmp_path.rglob("aligned_test_16_2x2.npz"))
    again, _ = load_aligned_split("test", 16, n_ids=2, n_var=2)
    assert np.array_equal(again, images)


def test_recipe_sizes():
    g, d, g_ema = build_models3(PEEPS3_GAN)
    assert g.synthesis.layer_names == ["L0_24_64", "L1_40_64", "L2_40_64", "L3_32_64", "L4_32_3"]
    assert g.n_latent == 6 and g.w_dim == 128 and sum(p.numel() for p in g.parameters()) == 226_823
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), g_ema.state_dict().values()))


def test_training_tracks_emas_checkpoints_and_resumes_exactly(tmp_path):
    data = (np.random.RandomState(0).rand(16, 16, 16, 3) * 255).astype(np.uint8)
    whole = train_gan3(data, tmp_path / "whole", TINY)
    assert whole["finished"] and whole["step"] == 4 and (tmp_path / "whole" / "samples" / "000004.png").is_file()
    st = torch.load(tmp_path / "whole" / "state.pt", weights_only=True)
    fresh, _, _ = build_models3(TINY)
    assert not torch.equal(st["g_ema"]["mapping.w_avg"], fresh.mapping.w_avg)  # w_avg tracked
    assert not torch.equal(st["g_ema"]["synthesis.L1_24_16.magnitude_ema"], fresh.synthesis.L1_24_16.magnitude_ema)

    half = Gan3Config(**{**TINY.__dict__, "max_steps": 2})
    train_gan3(data, tmp_path / "split", half)
    resumed = train_gan3(data, tmp_path / "split", TINY)
    assert resumed["step"] == 4
    st2 = torch.load(tmp_path / "split" / "state.pt", weights_only=True)
    for key, value in st["g_ema"].items():
        torch.testing.assert_close(st2["g_ema"][key], value, rtol=1e-5, atol=1e-6)

    info = export_generator3(tmp_path / "whole", tmp_path / "g.pt")
    loaded = load_any_generator(tmp_path / "g.pt")
    assert info["step"] == 4 and loaded.source_format == "zoo"
    ws = loaded.latent_avg.reshape(1, 1, -1).repeat(1, loaded.generator.n_latent, 1)
    g_ema, _, _ = build_models3(TINY)
    g_ema.load_state_dict(st["g_ema"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator.synthesis(ws, transform=(10.0, 0.1, 0.0)),
                                   g_ema.synthesis(ws, transform=(10.0, 0.1, 0.0)), rtol=0, atol=0)

    other = Gan3Config(**{**TINY.__dict__, "g_lr": 0.001})
    with pytest.raises(InputError, match="different config"):
        train_gan3(data, tmp_path / "whole", other)


def test_ctrl_c_finishes_the_step_saves_and_resumes(tmp_path):
    """SIGINT mid-run: the step in progress finishes, state.pt holds it, the call returns; a rerun completes."""
    import os
    import signal

    data = (np.random.RandomState(0).rand(16, 16, 16, 3) * 255).astype(np.uint8)
    cfg = Gan3Config(**{**TINY.__dict__, "checkpoint_every": 100})

    def interrupt(step: int, seconds: float) -> None:
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)

    out = train_gan3(data, tmp_path, cfg, on_step=interrupt)
    assert out["step"] == 1 and not out["finished"]
    assert torch.load(tmp_path / "state.pt", weights_only=True)["step"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert train_gan3(data, tmp_path, cfg)["step"] == 4
