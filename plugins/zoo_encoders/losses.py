"""Reconstruction losses shared by pSp / e4e / ReStyle / HyperStyle training (anchors §1.5).

    loss = l2_lambda * MSE(y_hat, y) + lpips_lambda * LPIPS_alex(y_hat, y) + id_lambda * mean(1 - <f(y_hat), f(y)>)
           [+ w_norm_lambda * mean_b ||w_b - w_avg||_F]

* L2: `F.mse_loss` on [-1, 1] images at the encoder resolution (officially the 256 face_pool output; for a 32x32
  domain the generator output itself).
* LPIPS: lpips 0.1.4 AlexNet v0.1 (the metric plugin's offline ImageNet backbone, `build_lpips_alex`), inputs in
  [-1, 1], batch mean. Officially computed at 256x256. For a 32x32 domain both images are bilinearly upsampled to
  `lpips_size` (default 64) first: at 32 px AlexNet's stride-4 11x11 stem leaves 1x1 maps for relu3-5, while 256 px
  costs ~2.6 s per batch-8 forward+backward on one contended core (x5 per ReStyle step); 64 px keeps all five
  taps spatial (15/7/3/3/3) at ~0.16 s. The benchmark metric itself upsamples to 256.
* ID: the domain's identity model (differentiable embedder, L2-normalised features; officially ArcFace IR-SE50 on
  the 188x188 face crop pooled to 112): 1 - cosine with the target's (detached) embedding, batch mean. The peeps
  embedder takes the whole image (its identity = hair, skin and clothing colours), so no crop is applied.
* W-norm: pSp's `sum_b ||w_b - w_avg||_F / B`; 0 for encoding (faces recipe), available for completeness.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


_LPIPS: dict[str, nn.Module] = {}


def build_lpips(device: str | torch.device = "cpu") -> nn.Module:
    """LPIPS-alex v0.1 with the real ImageNet backbone, frozen (raises CheckpointError with the fix if missing).
    One shared instance per device (it has no state that training changes)."""
    key = str(torch.device(device))
    if key not in _LPIPS:
        from zoo_metrics.lpips_metric import build_lpips_alex

        _LPIPS[key], _ = build_lpips_alex(device)
    return _LPIPS[key]


class ReconstructionLoss(nn.Module):
    """L2 + LPIPS + identity (+ W-norm) between reconstructions y_hat and targets y, both [B, 3, H, W] in [-1, 1].

    forward(y_hat, y, codes=None, latent_avg=None) -> (loss, {name: float}). Modules with lambda 0 are not built.
    `lpips` / `identity` may be passed in to share one frozen instance between trainers.
    """

    def __init__(self, identity: nn.Module | None, *, l2_lambda: float = 1.0, lpips_lambda: float = 0.8,
                 id_lambda: float = 0.1, w_norm_lambda: float = 0.0, lpips_size: int | None = 64,
                 lpips: nn.Module | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.l2_lambda, self.lpips_lambda, self.id_lambda = l2_lambda, lpips_lambda, id_lambda
        self.w_norm_lambda = w_norm_lambda
        self.lpips_size = lpips_size
        if id_lambda > 0 and identity is None:
            raise ValueError("id_lambda > 0 needs the domain's identity model")
        self.lpips = (lpips if lpips is not None else build_lpips(device)) if lpips_lambda > 0 else None
        self.identity = identity if id_lambda > 0 else None
        for m in (self.lpips, self.identity):
            if m is not None:
                m.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> ReconstructionLoss:  # the loss networks always stay in eval mode
        return self

    def _lpips_input(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lpips_size
        if s is None or x.shape[-1] == s:
            return x
        return F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=x.shape[-1] > s)

    def lpips_distance(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS [B] at `lpips_size`."""
        assert self.lpips is not None
        return self.lpips(self._lpips_input(y_hat), self._lpips_input(y)).flatten()

    def id_similarity(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image cosine similarity [B] of identity embeddings (target detached)."""
        assert self.identity is not None
        with torch.no_grad():
            target = self.identity(y)
        return (self.identity(y_hat) * target).sum(1)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor, codes: torch.Tensor | None = None,
                latent_avg: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        logs: dict[str, float] = {}
        loss = y_hat.new_zeros(())
        if self.l2_lambda > 0:
            l2 = F.mse_loss(y_hat, y)
            loss = loss + self.l2_lambda * l2
            logs["l2"] = float(l2.detach())
        if self.lpips is not None:
            lp = self.lpips_distance(y_hat, y).mean()
            loss = loss + self.lpips_lambda * lp
            logs["lpips"] = float(lp.detach())
        if self.identity is not None:
            sim = self.id_similarity(y_hat, y)
            id_loss = (1 - sim).mean()
            loss = loss + self.id_lambda * id_loss
            logs["id"] = float(id_loss.detach())
        if self.w_norm_lambda > 0 and codes is not None and latent_avg is not None:
            wn = w_norm(codes, latent_avg)
            loss = loss + self.w_norm_lambda * wn
            logs["w_norm"] = float(wn.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs


def w_norm(codes: torch.Tensor, latent_avg: torch.Tensor) -> torch.Tensor:
    """pSp WNormLoss (start_from_latent_avg): sum_b ||codes_b - latent_avg||_F / B for codes [B, n_styles, D]."""
    d = codes - latent_avg.to(codes).expand_as(codes)
    return d.flatten(1).norm(2, dim=1).sum() / codes.shape[0]
