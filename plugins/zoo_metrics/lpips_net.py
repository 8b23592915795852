"""LPIPS-AlexNet v0.1 as one small module (the `lpips` 0.1.4 network's math, re-laid out for speed on the CPU).

lpips.LPIPS(net='alex', version='0.1', lpips=True, spatial=False) computes, for images in [-1, 1]:
scale (x - shift) / scale per channel -> AlexNet `features` taps relu1..relu5 -> per-tap unit-normalisation over
channels, f / (sqrt(sum_c f^2) + 1e-10) -> squared difference -> 1x1 conv `lins[k]` (no bias) -> spatial mean ->
sum over the 5 taps (lpips/lpips.py `LPIPS.forward`, `normalize_tensor`, `ScalingLayer`).

Differences from the package are in evaluation order only (results equal to float rounding): both images go
through AlexNet as one batch, the convolutions run in channels_last (oneDNN's fast layout on the CPU), and the
1x1 `lins` conv is applied after the spatial mean (both are linear); the conv weights are stored channels_last. Weights are the package's, copied by
`LPIPSAlex.from_lpips`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    import lpips as lpips_pkg

# lpips ScalingLayer constants
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# torchvision alexnet().features: (index, out, in, kernel, stride, padding); max-pools (3, 2) after relu1, relu2
ALEX_CONVS = ((0, 64, 3, 11, 4, 2), (3, 192, 64, 5, 1, 2), (6, 384, 192, 3, 1, 1), (8, 256, 384, 3, 1, 1),
              (10, 256, 256, 3, 1, 1))
ALEX_CHANNELS = tuple(c[1] for c in ALEX_CONVS)


class LPIPSAlex(nn.Module):
    """LPIPS-AlexNet v0.1 distance between images [B, 3, H, W] in [-1, 1] (H, W >= 31).

    forward(in0, in1) -> [B, 1, 1, 1] like `lpips.LPIPS.forward`; `features(x)` -> the 5 normalised taps and
    `distance(f0, f1)` -> [B] split the computation so a fixed target's features can be cached (optimisation losses).
    Differentiable w.r.t. the images; the weights are frozen by `from_lpips`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, k, stride=s, padding=p)
                                   for _, cout, cin, k, s, p in ALEX_CONVS)
        self.lin_weights = nn.ParameterList(nn.Parameter(torch.zeros(c)) for c in ALEX_CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    @classmethod
    def from_lpips(cls, model: lpips_pkg.LPIPS) -> LPIPSAlex:
        """Copy the weights of an `lpips.LPIPS(net='alex', version='0.1')` model (frozen, eval mode, same device).

        Raises ValueError for another backbone or version."""
        if getattr(model, "pnet_type", "alex") != "alex" or getattr(model, "version", "0.1") != "0.1":
            raise ValueError("LPIPSAlex copies lpips.LPIPS(net='alex', version='0.1') only")
        feats = {}
        for sl in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
            for idx, mod in sl.named_children():
                if isinstance(mod, nn.Conv2d):
                    feats[int(idx)] = mod
        ref = next(model.parameters())
        out = cls().to(ref.device)
        with torch.no_grad():
            for conv, (idx, *_rest) in zip(out.convs, ALEX_CONVS):
                # stored channels_last, oneDNN's layout for channels_last inputs: no reorder at every call
                conv.weight.data = feats[idx].weight.detach().clone().contiguous(memory_format=torch.channels_last)
                conv.bias.copy_(feats[idx].bias)
            for k, w in enumerate(out.lin_weights):
                w.copy_(model.lins[k].model[-1].weight.detach().flatten())
            out.shift.copy_(model.scaling_layer.shift.flatten().view(1, 3, 1, 1))
            out.scale.copy_(model.scaling_layer.scale.flatten().view(1, 3, 1, 1))
        return out.eval().requires_grad_(False)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images [B, 3, H, W] in [-1, 1] -> AlexNet relu1..relu5 maps (unnormalised, channels_last memory)."""
        h = ((x - self.shift) / self.scale).contiguous(memory_format=torch.channels_last)
        out = []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(conv(h))
            out.append(h)
        return out

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 5 taps unit-normalised over channels (lpips `normalize_tensor`, eps 1e-10)."""
        return [f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10) for f in self.taps(x)]

    def distance(self, f0: Sequence[torch.Tensor], f1: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-image LPIPS [B] between two feature lists (from `features`); f1 may have batch 1 (broadcast)."""
        total = None
        for a, b, w in zip(f0, f1, self.lin_weights):
            d = (a - b).square().mean((2, 3)) @ w
            total = d if total is None else total + d
        assert total is not None
        return total

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
        """LPIPS [B, 1, 1, 1] of in0, in1 [B, 3, H, W] in [-1, 1] (one AlexNet pass over both)."""
        n = in0.shape[0]
        if in1.shape == in0.shape:
            feats = self.features(torch.cat([in0, in1]))
            f0, f1 = [f[:n] for f in feats], [f[n:] for f in feats]
        else:
            f0, f1 = self.features(in0), self.features(in1)
        return self.distance(f0, f1).view(-1, 1, 1, 1)
