"""Shared helper of the latent editors: which W+ layers an edit touches."""

from __future__ import annotations

import torch


def layer_mask(latents: torch.Tensor, first: int, last: int | None) -> torch.Tensor:
    """[n_styles, 1] mask (1 on layers first..last inclusive, last=None = all) for latents [B, n_styles, w_dim]."""
    mask = torch.zeros(latents.shape[1], 1, device=latents.device, dtype=latents.dtype)
    mask[first : (latents.shape[1] - 1 if last is None else last) + 1] = 1
    return mask
