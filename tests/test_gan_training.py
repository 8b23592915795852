"""The StyleGAN2 training loop: runs, checkpoints atomically, resumes (also from a compacted state), is seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.training.checkpointing import compact_training_state, load_checkpoint
from zoo.training.stylegan2_gan import GanConfig, train_gan

TINY = dict(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8}, batch=4, checkpoint_every=2,
            sample_every=2, n_sample=4, d_reg_every=2)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (12, 16, 16, 3), dtype=np.uint8)


def test_trains_checkpoints_and_resumes(tmp_path, images):
    cfg = GanConfig(**TINY, max_steps=3)
    out = train_gan(images, tmp_path, cfg)
    assert out["step"] == 3 and (tmp_path / "state.pt").exists() and list((tmp_path / "samples").glob("*.png"))
    st = load_checkpoint(tmp_path / "state.pt")
    assert st["step"] == 3
    out = train_gan(images, tmp_path, GanConfig(**TINY, max_steps=5))
    assert out["step"] == 5
    assert all(np.isfinite(v) for row in load_checkpoint(tmp_path / "state.pt")["log"] for v in row.values())


def test_seeded_runs_are_identical(tmp_path, images):
    cfg = GanConfig(**TINY, max_steps=2)
    train_gan(images, tmp_path / "a", cfg)
    train_gan(images, tmp_path / "b", cfg)
    a, b = load_checkpoint(tmp_path / "a" / "state.pt"), load_checkpoint(tmp_path / "b" / "state.pt")
    for k in a["g_ema"]:
        assert torch.equal(a["g_ema"][k], b["g_ema"][k]), k


def test_resume_from_compacted_state_and_config_mismatch(tmp_path, images):
    train_gan(images, tmp_path / "run", GanConfig(**TINY, max_steps=2))
    size = compact_training_state(tmp_path / "run" / "state.pt", tmp_path / "small" / "state.pt")
    assert size < (tmp_path / "run" / "state.pt").stat().st_size
    out = train_gan(images, tmp_path / "small", GanConfig(**TINY, max_steps=3))
    assert out["step"] == 3
    with pytest.raises(ValueError, match="different config"):
        train_gan(images, tmp_path / "small", GanConfig(**{**TINY, "lr": 0.01}, max_steps=4))


def test_ctrl_c_saves_the_finished_step(tmp_path, images):
    import os
    import signal

    def interrupt(step: int, g) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while step 2 is being saved

    out = train_gan(images, tmp_path, GanConfig(**TINY, max_steps=6), on_checkpoint=interrupt)
    assert out["step"] == 3 and not out["finished"]  # step 3 finished, saved, then stopped
    assert load_checkpoint(tmp_path / "state.pt")["step"] == 3
    assert train_gan(images, tmp_path, GanConfig(**TINY, max_steps=6))["step"] == 6
