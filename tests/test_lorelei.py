"""The lorelei domain: same options as peeps per index, exact labels, deterministic renders, plugin registration,
and the Toonify-style fine-tune start (peeps weights, frozen shared mapping)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.training.stylegan2_gan import GanConfig, train_gan
from zoo_lorelei import avatars as lor
from zoo_peeps import avatars as peeps


def test_labels_share_the_peeps_options_of_the_same_index() -> None:
    for seed in range(60):
        p_id = peeps.sample_identity(seed)
        l_id = lor.identity_for(seed)
        assert l_id.hair == lor.HAIRS[peeps.HEADS.index(p_id.head)]
        assert (l_id.hair_color, l_id.skin_color) == (p_id.hair_color, p_id.skin_color)
        for var in range(3):
            p, q = peeps.labels_for(seed, var), lor.labels_for(seed, var)
            for key in ("smile", "glasses", "sunglasses", "facial_hair", "rotation", "tx", "ty", "identity_id"):
                assert p[key] == q[key], (seed, var, key)
            assert q["smile"] == int(q["mouth"].startswith("happy"))
            assert q["glasses"] == int(q["glasses_style"] in ("variant01", "variant03", "variant04", "variant05"))


def test_lorelei_only_features_depend_on_the_identity_seed_only() -> None:
    assert lor.identity_for(7) == lor.identity_for(7)
    assert len({lor.identity_for(s).eyes for s in range(200)}) > 10


def test_render_is_deterministic_with_the_shared_background() -> None:
    a = lor.render_index(3, 1, 32)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, lor.render_index(3, 1, 32))
    plain = lor.render(lor.identity_for(3), lor.LoreleiAttributes(mouth="happy01"), 32)
    assert tuple(plain[0, 0]) == lor.BACKGROUND
    with pytest.raises(ValueError):
        lor.render(lor.identity_for(3), lor.LoreleiAttributes(mouth="grin"), 32)


def test_domain_is_a_registered_plugin() -> None:
    from zoo import registry
    from zoo_lorelei.domain import LoreleiDomain

    dom = registry.get_domain("lorelei")
    assert isinstance(dom, LoreleiDomain) and dom.resolution == 32 and dom.embedded


def test_train_commands_gain_the_lorelei_choice() -> None:
    from click.testing import CliRunner

    from zoo.cli import main

    for cmd in ("generator", "identity", "attributes"):
        out = CliRunner().invoke(main, ["train", cmd, "--help"])
        assert out.exit_code == 0 and "lorelei" in out.output, out.output


def test_frozen_parameters_stay_fixed_in_training(tmp_path) -> None:
    tiny = dict(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8}, batch=4, checkpoint_every=2,
                sample_every=2, n_sample=4, d_reg_every=2, max_steps=2)
    images = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    train_gan(images, tmp_path / "a", GanConfig(**tiny), frozen=("style.",))
    st = torch.load(tmp_path / "a" / "state.pt", weights_only=True)
    torch.manual_seed(0)
    from zoo.training.stylegan2_gan import build_models

    g0, _, _ = build_models(GanConfig(**tiny))
    for k, v in st["g"].items():
        if k.startswith("style."):
            assert torch.equal(v, g0.state_dict()[k]), k
    assert not torch.equal(st["g"]["conv1.conv.weight"], g0.state_dict()["conv1.conv.weight"])


def test_fine_tune_starts_from_the_peeps_state_with_its_ema_mapping(tmp_path) -> None:
    from zoo_peeps.domain import TRAINING_STATE

    try:
        TRAINING_STATE.resolve()
    except Exception:  # noqa: BLE001 - an installed package without the repository's training state
        pytest.skip("training_state/peeps_generator is not available")
    from zoo.training.checkpointing import load_checkpoint
    from zoo_lorelei.generator_training import LORELEI_GAN, init_from_source

    init_from_source(tmp_path)
    st, src = load_checkpoint(tmp_path / "state.pt"), load_checkpoint(TRAINING_STATE.resolve())
    assert st["step"] == 0 and st["config"]["seed"] == LORELEI_GAN.seed
    for k, v in st["g"].items():
        ref = src["g_ema"][k] if k.startswith("style.") else src["g"][k]
        assert torch.equal(v, ref), k
    assert all(torch.equal(v, src["d"][k]) for k, v in st["d"].items())


def test_shipped_lorelei_weights_match_their_manifest_and_budget() -> None:
    from zoo.cards import sha256_file
    from zoo_lorelei.domain import weight_specs

    specs = weight_specs()
    total = 0
    for role, spec in specs.items():
        path = Path(spec.path)
        assert path.is_file(), f"{role}: {path} missing"
        assert sha256_file(path) == spec.sha256, f"{role}: sha256 differs from the manifest"
        card = Path(spec.model_card or "").read_text()
        assert spec.sha256 in card and "rebuild" in card, f"{role}: model card lacks the sha256 / rebuild command"
        total += path.stat().st_size
    assert total <= 25e6, f"lorelei weights total {total / 1e6:.1f} MB (issue 18 budget: 25 MB)"


def test_shipped_bootstrap_starts_with_the_peeps_encoders_step() -> None:
    from zoo import registry
    from zoo.adaptation.bootstrap import run_bootstrap
    from zoo.errors import CheckpointError

    peeps, lorelei = registry.get_domain("peeps"), registry.get_domain("lorelei")
    try:
        boot = registry.create_inverter_for("restyle_e4e", lorelei, {"bootstrap": "peeps"})
        src = registry.create_inverter_for("restyle_e4e", peeps, {"n_iters": 1})
        st_t, st_s = boot.prepare(lorelei), src.prepare(peeps)
    except CheckpointError as exc:
        pytest.skip(f"shipped weights missing: {exc}")
    x = peeps.images("test", limit=2)
    with torch.no_grad():
        res = run_bootstrap(st_s.encoder, st_s.generator, st_s.latent_avg, st_t.encoder, st_t.generator, x, 1,
                            source_avg_image=st_s.avg_image)
        first = src.invert(x, peeps)
        inv = boot.invert(x, lorelei)
    assert torch.allclose(res.codes[0], first.latents, atol=1e-5)
    assert torch.allclose(inv.latents, res.codes[1], atol=1e-5)
    assert inv.extras["n_iters"] == 2
