"""InterFaceGAN and GANSpace editors on the shipped peeps domain."""

from __future__ import annotations

import torch

from zoo.inversion import Inversion
from zoo.registry import create_editor, get_domain


def _sampled_inversion(n: int = 32) -> Inversion:
    peeps = get_domain("peeps")
    g = peeps.generator().generator
    with torch.no_grad():
        w = g.style(torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(5)))
        latents = w[:, None].repeat(1, g.n_latent, 1)
        img, _ = g([latents], input_is_latent=True, randomize_noise=False)
    return Inversion(latents, img, torch.zeros(n), method="sampled", domain=peeps)


def test_interfacegan_moves_the_attribute_it_names():
    inv = _sampled_inversion()
    editor = create_editor("interfacegan")
    assert {"smile", "glasses", "facial_hair", "rotation"} <= set(editor.directions(inv.domain))
    scorers = inv.domain.attribute_scorers()
    with torch.no_grad():
        torch.testing.assert_close(editor.edit(inv, "smile", 0.0), inv.render())
        for name in ("smile", "glasses", "rotation"):
            low = scorers[name](editor.edit(inv, name, -2.0).clamp(-1, 1)).mean()
            high = scorers[name](editor.edit(inv, name, 2.0).clamp(-1, 1)).mean()
            assert high > low, f"{name}: {low:.3f} -> {high:.3f}"


def test_ganspace_components_and_layer_range():
    inv = _sampled_inversion(4)
    editor = create_editor("ganspace", n_components=3, n_samples=2000, first_layer=2, last_layer=4)
    comps = editor.components(inv.domain)
    unit = comps / comps.norm(dim=1, keepdim=True)
    torch.testing.assert_close(unit @ unit.t(), torch.eye(3), atol=1e-4, rtol=0)
    assert comps.norm(dim=1)[0] >= comps.norm(dim=1)[1] >= comps.norm(dim=1)[2]  # sorted by variance
    edited = editor.edit_latents(inv.latents, "pc0", 1.0, inv.domain)
    changed = (edited - inv.latents).abs().sum(-1).sum(0) > 0
    assert changed.tolist() == [i in (2, 3, 4) for i in range(inv.latents.shape[1])]
