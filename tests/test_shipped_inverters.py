"""End-to-end on the shipped peeps weights: every trained inverter loads its committed weights offline, inverts
held-out test renders deterministically and clearly better than the generator's average image, and records the
weights' sha256; editing a HyperStyle inversion keeps its offsets."""

from __future__ import annotations

import pytest
import torch

from zoo.inversion import render_with_change
from zoo.registry import create_editor, create_inverter, get_domain

ENCODERS = ("psp", "e4e", "restyle_psp", "restyle_e4e", "hyperstyle", "idinvert_encoder")


@pytest.fixture(scope="module")
def peeps():
    return get_domain("peeps")


@pytest.fixture(scope="module")
def images(peeps):
    return peeps.images("test", limit=8)


@pytest.fixture(scope="module")
def average_mse(peeps, images):
    loaded = peeps.generator()
    g = loaded.generator
    with torch.no_grad():
        avg, _ = g([loaded.latent_avg.reshape(1, -1)], input_is_latent=True, randomize_noise=False)
    return ((avg.clamp(-1, 1) - images) ** 2).flatten(1).mean(1).mean().item()


@pytest.mark.parametrize("name", ENCODERS)
def test_shipped_encoder_inverts_held_out_renders(peeps, images, average_mse, name):
    cls_opts = create_inverter(name).embedded_options()
    inv = create_inverter(name, options=cls_opts)
    with torch.no_grad():
        a = inv.invert(images, peeps)
        b = inv.invert(images, peeps)
    assert torch.equal(a.reconstructions, b.reconstructions)
    mse = ((a.reconstructions.clamp(-1, 1) - images) ** 2).flatten(1).mean(1).mean().item()
    print(f"{name}: mse {mse:.4f} (average image {average_mse:.4f})")
    assert mse < 0.6 * average_mse
    role = "encoder/idinvert" if name == "idinvert_encoder" else f"encoder/{name}"
    assert inv.weights_sha256(peeps)[role] == peeps.weights[role].sha256


def test_shipped_hyperstyle_improves_on_its_w_encoder_and_edits_keep_offsets(peeps, images):
    inv = create_inverter("hyperstyle")
    g = peeps.generator().generator
    with torch.no_grad():
        out = inv.invert(images, peeps)
        # HyperStyle keeps the W-encoder's codes and changes the generator: without the offsets = the W-encoder
        start = render_with_change(g, out.latents, None)
        mse0 = ((start.clamp(-1, 1) - images) ** 2).mean().item()
        mse = ((out.reconstructions.clamp(-1, 1) - images) ** 2).mean().item()
        print(f"hyperstyle: mse {mse:.4f}, its W-encoder's codes alone {mse0:.4f}")
        assert mse < mse0
        editor = create_editor("interfacegan")
        assert (editor.edit(out, "smile", 0.0) - out.reconstructions).abs().max().item() < 1e-5
        moved = editor.edit(out, "smile", 2.0)
        assert (moved - out.reconstructions).abs().mean().item() > 1e-3
