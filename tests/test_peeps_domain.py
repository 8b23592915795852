"""The shipped peeps domain: weights present and sha256-pinned with model cards, deterministic sampling, the
quality floor recorded in the generator card, sample diversity, identity verification and scorer accuracy."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.errors import CheckpointError
from zoo.kid import kid
from zoo.registry import get_domain

MAX_DOMAIN_BYTES = 25 * 1024 * 1024  # issue 3: generator, identity, attributes, directions
MAX_ENCODER_BYTES = 30 * 1024 * 1024  # issue 6: pSp, e4e, ReStyle x2, HyperStyle + its W-encoder
ISSUE6_ENCODERS = ("psp", "e4e", "restyle_psp", "restyle_e4e", "hyperstyle", "w_encoder")


@pytest.fixture(scope="module")
def peeps():
    return get_domain("peeps")


def test_every_weight_file_is_pinned_and_has_a_model_card(peeps):
    specs = peeps.weights
    assert {"generator", "identity", "attributes", "directions"} <= set(specs)
    domain_bytes = encoder_bytes = 0
    for role, spec in specs.items():
        path = spec.resolve()  # verifies sha256
        if role.startswith("encoder/"):
            encoder_bytes += path.stat().st_size if role.split("/", 1)[1] in ISSUE6_ENCODERS else 0
        else:
            domain_bytes += path.stat().st_size
        card = open(spec.model_card).read()
        for field in ("sha256", "rebuild: `zoo train", "seed"):
            assert field in card, f"{role} card lacks {field}"
        assert spec.sha256 in card
    assert domain_bytes <= MAX_DOMAIN_BYTES and encoder_bytes <= MAX_ENCODER_BYTES


def test_corrupted_weights_are_refused(peeps, tmp_path):
    spec = peeps.weights["identity"]
    bad = tmp_path / "identity.safetensors"
    data = bytearray(open(spec.path, "rb").read())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        spec.verify(bad)


def test_generator_loads_offline_and_samples_deterministically(peeps):
    from zoo_peeps.quality import sample

    g = peeps.generator().generator
    assert g.size == peeps.resolution == 32
    a, b = sample(g, 8, seed=3), sample(g, 8, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, sample(g, 8, seed=4))


def test_quality_floor_and_diversity(peeps):
    """KID (identity features) stays within a margin of the model card's value; no mode collapse."""
    from zoo_peeps.dataset import load_split
    from zoo_peeps.domain import WEIGHTS_DIR
    from zoo_peeps.quality import embed, sample

    recorded = json.loads((WEIGHTS_DIR / "generator_quality.json").read_text())
    g = peeps.generator().generator
    emb = peeps.identity_model()
    renders = load_split("test", 32).to_tensor()
    fake = sample(g, recorded["n_samples"], seed=recorded["sample_seed"])
    f_real, f_fake = embed(emb, renders), embed(emb, fake)
    value, _ = kid(f_real, f_fake)
    assert value * 1e3 <= recorded["kid_x1e3"] * 1.25 + 0.5
    sims = f_fake[:300] @ f_fake[:300].t()
    mean_off_diag = (sims.sum() - sims.diagonal().sum()) / (300 * 299)
    assert mean_off_diag < 0.5, "samples share one identity: mode collapse"
    assert fake.std(0).mean() > 0.5 * renders.std(0).mean()


def test_identity_model_verifies_held_out_identities(peeps):
    from zoo_peeps.dataset import load_split
    from zoo_peeps.model_training import verification

    test = load_split("test", 32, limit=400)
    res = verification(peeps.identity_model(), test.to_tensor(), test.labels, threshold=None)
    assert res["roc_auc"] > 0.98 and res["accuracy"] > 0.95
    assert res["mean_pos_sim"] - res["mean_neg_sim"] > 0.5


def test_attribute_scorers_are_accurate_on_held_out_renders(peeps):
    from zoo_peeps.dataset import load_split

    test = load_split("test", 32, limit=400)
    scorers = peeps.attribute_scorers()
    x = test.to_tensor()
    with torch.no_grad():
        for name in ("smile", "glasses", "facial_hair"):
            acc = ((scorers[name](x) > 0.5).numpy() == test.labels[name].to_numpy().astype(bool)).mean()
            assert acc > 0.9, f"{name} accuracy {acc:.3f}"
        err = (scorers["rotation"](x).numpy() - test.labels["rotation"].to_numpy())
        assert abs(err).mean() < 3.0  # degrees, labels span +-10


def test_ood_set_is_registered(peeps):
    x = peeps.images("ood")
    assert x.shape == (100, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
