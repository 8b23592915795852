"""ReStyle encoder bootstrapping (yuval-alaluf/restyle-encoder @ 5e80276,
`scripts/encoder_bootstrapping_inference.py:run_on_batch`).

Two complete ReStyle models: net1 = (E1, G1, latent_avg_1) of the source domain, net2 = (E2, G2) of the target.

1. y_0, w_0 = net1([x, avg_1]): w_0 = E1(x ‖ avg_1) + latent_avg_1, y_0 = G1(w_0) — one *source* step from the
   source average image (kept as the first output);
2. for t = 1..n_target: w_t = E2(x ‖ pool(y_{t-1})) + w_{t-1}, y_t = G2(w_t) — target steps adding residuals; the
   first target step sees the source reconstruction, later ones the target outputs; x is always the input.

The official README recommends one target step ("one step for each encoder is typically good"); its test options
default to 5. Renders use the fixed noise buffers (randomize_noise=False), as ReStyle inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..encoders.restyle import Feedback, average_image, latent_avg_wplus, pool_to
from ..stylegan2 import Generator


@dataclass
class BootstrapResult:
    """codes[t] [B, n_styles, D] and images[t] [B, 3, G, G] for t = 0 (source step, rendered by G1) .. n_target
    (rendered by G2)."""

    codes: list[torch.Tensor]
    images: list[torch.Tensor]


@torch.no_grad()
def run_bootstrap(source_encoder: nn.Module, source_generator: Generator, source_latent_avg: torch.Tensor,
                  target_encoder: nn.Module, target_generator: Generator, x: torch.Tensor, n_target: int = 1, *,
                  source_avg_image: torch.Tensor | None = None, feedback: Feedback | None = None) -> BootstrapResult:
    """Bootstrapped inversion of x [B, 3, h, w] in [-1, 1] (h, w = the encoders' input size).

    Encoders map [B, 6, h, w] -> residual codes [B, n_styles, D]; `source_latent_avg` [D] or [n_styles, D];
    `source_avg_image` [1, 3, h, w] defaults to pool(G1(latent_avg_1)). Raises ValueError for n_target < 0.
    """
    if n_target < 0:
        raise ValueError(f"n_target must be >= 0, got {n_target}")
    fb = feedback or pool_to(x.shape[-2:])
    if source_avg_image is None:
        source_avg_image = average_image(source_generator, source_latent_avg, fb)
    avg = source_avg_image.to(x)
    avg = (avg.unsqueeze(0) if avg.ndim == 3 else avg).expand(x.shape[0], -1, -1, -1)
    lat = latent_avg_wplus(source_latent_avg, source_generator.n_latent).unsqueeze(0).to(x)
    codes = source_encoder(torch.cat([x, avg], dim=1)) + lat
    image, _ = source_generator([codes], input_is_latent=True, randomize_noise=False)
    out = BootstrapResult([codes], [image])
    for _ in range(n_target):
        codes = target_encoder(torch.cat([x, fb(image)], dim=1)) + codes
        image, _ = target_generator([codes], input_is_latent=True, randomize_noise=False)
        out.codes.append(codes)
        out.images.append(image)
    return out
