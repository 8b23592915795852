"""Fitting editing directions (InterFaceGAN boundary, StyleSpace channel detection) and the sweep's edited-region
and independence records."""

from __future__ import annotations

import pytest
import torch

from zoo_editors.fitting import fit_linear_svm, rank_channels, step_unit, train_boundary


def _planted(n: int = 4000, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen) * torch.linspace(0.5, 2.0, d)
    normal = torch.nn.functional.normalize(torch.randn(d, generator=gen), dim=0)
    score = torch.sigmoid(3 * (x @ normal) + 0.3 * torch.randn(n, generator=gen))
    return x, score, normal


def test_linear_svm_recovers_a_separating_normal() -> None:
    x, score, normal = _planted()
    coef, bias = fit_linear_svm(x, (score > 0.5).float())
    assert torch.nn.functional.cosine_similarity(coef, normal, dim=0) > 0.95
    assert float((((x @ coef + bias) > 0) == (score > 0.5)).float().mean()) > 0.9
    with pytest.raises(ValueError):
        fit_linear_svm(x, torch.ones(len(x)))


def test_train_boundary_follows_the_official_recipe() -> None:
    x, score, normal = _planted()
    b = train_boundary(x, score, ratio=0.05, split=0.7)
    assert b.report["chosen_per_side"] == 200 and b.report["fit_samples"] == 2 * 140
    assert b.report["val_accuracy"] > 0.95 and b.report["remaining_accuracy"] > 0.8
    assert torch.nn.functional.cosine_similarity(b.normal, normal, dim=0) > 0.95
    torch.testing.assert_close(b.normal.norm(), torch.tensor(1.0))
    # a continuous score (pose) reports the correlation of the rest
    pose = x @ normal * 10
    bc = train_boundary(x, pose, ratio=0.05, binary=False)
    assert bc.report["remaining_correlation"] > 0.9
    # one step = one std of the projection
    torch.testing.assert_close(torch.tensor(step_unit(x, b.normal)), (x @ b.normal).std(), rtol=1e-4, atol=0)
    with pytest.raises(ValueError):
        train_boundary(x[:40], score[:40], ratio=0.02)


def test_stylespace_detection_finds_the_planted_channel_and_its_sign() -> None:
    gen = torch.Generator().manual_seed(1)
    codes = [torch.randn(3000, 8, generator=gen), torch.randn(3000, 6, generator=gen)]
    score = torch.rand(3000, generator=gen)
    top = torch.argsort(score, descending=True)[:300]
    codes[1][top, 4] -= 2.0  # the attribute lowers channel 4 of slot 1
    codes[0][top, 2] += 5.0  # a stronger effect in a slot that is skipped (toRGB in the paper)
    rows = rank_channels(codes, score, bank=300, skip={0}, top=3)
    slot, ch, rel, mean = rows[0]
    assert (slot, ch) == (1, 4) and mean < 0 and rel > rows[1][2]
    with pytest.raises(ValueError):
        rank_channels(codes, score, bank=1)


@torch.no_grad()
def test_stylespace_signed_channel_names_edit_the_other_way() -> None:
    from zoo.registry import create_editor, get_domain

    peeps = get_domain("peeps")
    g = peeps.generator().generator
    latents = g.style(torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(0)))[:, None]
    latents = latents.repeat(1, g.n_latent, 1)
    editor = create_editor("stylespace", n_samples=64)
    plus = editor.edit_codes(latents, "s3_5", 1.0, peeps).style_offsets[3]
    minus = editor.edit_codes(latents, "-s3_5", 1.0, peeps).style_offsets[3]
    assert plus[0, 5] > 0 and torch.equal(minus, -plus)
    assert editor.accepts("-s3_5", peeps) and editor.scorers_used("-s3_5", peeps) == ()


@torch.no_grad()
def test_sweep_records_the_edited_region_change_and_whether_the_scorer_is_independent() -> None:
    from zoo.bench.evaluate import EditTarget, Evaluator
    from zoo.inversion import Inversion
    from zoo.registry import create_editor, get_domain

    peeps = get_domain("peeps")
    g = peeps.generator().generator
    w = g.style(torch.randn(3, g.style_dim, generator=torch.Generator().manual_seed(2)))[:, None]
    latents = w.repeat(1, g.n_latent, 1)
    img, _ = g([latents], input_is_latent=True, randomize_noise=False)
    inv = Inversion(latents, img, torch.zeros(3), method="sampled", domain=peeps)
    editors = {"interfacegan": create_editor("interfacegan"), "stylespace": create_editor("stylespace", n_samples=64)}
    ev = Evaluator(peeps, {}, editors, [2.0], ["test"])
    region = peeps.edit_region("smile")
    assert region is not None and region.shape == (32, 32) and 0 < region.sum() < region.numel()
    assert peeps.edit_region("rotation") is None
    targets = [EditTarget(e, "1", d, 2.0, (sc,)) for e, d, sc in (
        ("interfacegan", "smile", "smile"), ("interfacegan", "rotation", "rotation"), ("stylespace", "smile", "smile"),
        ("stylespace", "s3_5", "smile"))]
    rec = ev.edit(inv, img, targets)[0]
    smile = rec[targets[0].key]
    edited = editors["interfacegan"].edit(inv.select([0]), "smile", 2.0).clamp(-1, 1)
    diff = (edited - img[:1].clamp(-1, 1)).abs().mean(1)[0]
    torch.testing.assert_close(torch.tensor(smile["change_region"]), (diff * region).sum() / region.sum())
    assert smile["attributes"]["smile"]["independent"] is True  # fitted with the labeller, not the domain's scorer
    assert rec[targets[1].key]["change_region"] is None  # no region for a pose edit
    assert rec[targets[2].key]["attributes"]["smile"]["independent"] is True  # the domain names that channel
    # a channel this editor ranks with the domain's scorer is flagged, and the evaluator says so in its notes
    assert create_editor("stylespace").scorers_used("rotation", peeps) == ("rotation",)
    ev2 = Evaluator(peeps, {}, {"stylespace": editors["stylespace"]}, [1.0], ["test"])
    assert any("rotation" in n and "not an independent" in n for n in ev2.notes)
