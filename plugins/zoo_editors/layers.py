"""Shared helper of the latent editors: which W+ layers an edit touches."""

from __future__ import annotations

import torch

from zoo.editor import check_layer_range


def layer_mask(latents: torch.Tensor, first: int, last: int | None, what: str = "edit") -> torch.Tensor:
    """[n_styles, 1] mask (1 on layers first..last inclusive, last=None = through the last) for latents
    [B, n_styles, w_dim]. InputError (naming `what`, the range and n_styles) when the range is negative, reversed
    or reaches beyond the n_styles layers: such an edit would silently change nothing (or less than asked)."""
    first, last = check_layer_range(first, last, int(latents.shape[1]), what)
    mask = torch.zeros(latents.shape[1], 1, device=latents.device, dtype=latents.dtype)
    mask[first : last + 1] = 1
    return mask
