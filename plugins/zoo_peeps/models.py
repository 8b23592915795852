"""Small CNNs of the peeps domain: the identity embedder (ID metric and ID loss) and the attribute scorers.

Both take images [B, 3, H, W] in [-1, 1] of any size (area-resized to 32x32 inside) and are differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ATTRIBUTES = ("smile", "glasses", "facial_hair")  # binary heads (logits)
POSE = ("rotation", "tx", "ty")  # regression heads, in degrees / fraction of the image size
POSE_SCALE = (10.0, 0.06, 0.06)  # label ranges: rotation +-10 deg, translation +-6 %


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class Backbone(nn.Module):
    """32x32 -> 4x4x(8*width) conv trunk -> global average -> [B, 8*width]."""

    input_size = 32

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(_block(3, w, 1), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2), _block(4 * w, 8 * w, 2))
        self.out_features = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="area" if x.shape[-1] > self.input_size
                              else "bilinear", **({} if x.shape[-1] > self.input_size else {"align_corners": False}))
        return self.body(x).mean((2, 3))


class IdentityEmbedder(nn.Module):
    """Images [B, 3, H, W] in [-1, 1] -> L2-normalised identity embeddings [B, dim]."""

    def __init__(self, dim: int = 128, width: int = 24) -> None:
        super().__init__()
        self.backbone = Backbone(width)
        self.head = nn.Sequential(nn.Linear(self.backbone.out_features, dim), nn.BatchNorm1d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=1)


class CosFaceHead(nn.Module):
    """Large-margin cosine classifier (CosFace): logits = s * (cos(theta) - m * onehot). Training only."""

    def __init__(self, dim: int, n_classes: int, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = emb @ F.normalize(self.weight, dim=1).t()
        return self.scale * (cos - self.margin * F.one_hot(labels, cos.shape[1]).to(cos))


class AttributeNet(nn.Module):
    """Images [B, 3, H, W] in [-1, 1] -> dict of scores: P(smile), P(glasses), P(facial_hair) in [0, 1];
    rotation (degrees), tx, ty (fraction of the image size)."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        self.backbone = Backbone(width)
        self.binary = nn.Linear(self.backbone.out_features, len(ATTRIBUTES))
        self.pose = nn.Linear(self.backbone.out_features, len(POSE))

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(binary logits [B, 3], normalised pose [B, 3] in about [-1, 1])."""
        f = self.backbone(x)
        return self.binary(f), self.pose(f)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, pose = self.raw(x)
        out = {name: torch.sigmoid(logits[:, i]) for i, name in enumerate(ATTRIBUTES)}
        for i, name in enumerate(POSE):
            out[name] = pose[:, i] * POSE_SCALE[i]
        return out
