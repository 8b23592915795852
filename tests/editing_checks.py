"""Shared check: every editor kind renders an inversion through its own (changed) generator."""

from __future__ import annotations

import torch

from zoo.inversion import Inversion, render_with_change
from zoo.registry import create_editor


def check_edits_keep_the_change(inv: Inversion) -> None:
    """Step 0 of a W+ (GANSpace) and an S-space (StyleSpace) edit reproduces the reconstruction exactly; a
    non-zero S edit equals the generator call with the same change and offsets, and differs from the unchanged
    generator's."""
    g = inv.domain.generator().generator
    ganspace = create_editor("ganspace", n_components=2, n_samples=500)
    stylespace = create_editor("stylespace", n_samples=64)
    with torch.no_grad():
        for editor, direction in ((ganspace, "pc0"), (ganspace, "pc1@1-2"), (stylespace, "s2_0")):
            assert (editor.edit(inv, direction, 0.0) - inv.reconstructions).abs().max().item() < 1e-5, direction
        codes = stylespace.edit_codes(inv.latents, "s2_0", 3.0, inv.domain)
        assert [i for i, o in enumerate(codes.style_offsets) if o is not None] == [2]
        edited = stylespace.edit(inv, "s2_0", 3.0)
        same = render_with_change(g, inv.latents, inv.change, inv.noise, codes.style_offsets)
        assert (edited - same).abs().max().item() < 1e-5
        plain = render_with_change(g, inv.latents, None, inv.noise, codes.style_offsets)
        assert (edited - plain).abs().mean().item() > 1e-4
        assert (edited - inv.reconstructions).abs().mean().item() > 1e-4
