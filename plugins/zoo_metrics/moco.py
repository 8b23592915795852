"""MoCo-v2 ResNet-50 similarity embedder: the identity-like measure of pSp / e4e / ReStyle / HyperStyle for
non-face domains (cars, animals, churches).

As their `MocoLoss`: torchvision ResNet-50 with MoCo-v2 800-epoch `encoder_q` weights (`moco_v2_800ep_pretrain.pt`
or `.pth.tar`, keys `module.encoder_q.*`; the projection head `fc.*` is dropped and `fc` replaced by the identity),
images in [-1, 1] fed as they are after `F.interpolate(x, size=224)` (nearest, no ImageNet normalisation), features
L2-normalised [B, 2048]. Source: official `criteria/moco_loss.py` (anchors-methods §5, §11).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zoo.checkpoint_io import torch_load
from zoo.errors import CheckpointError

PREFIX = "module.encoder_q."


def load_moco_resnet50(path: str | Path) -> nn.Module:
    """ResNet-50 trunk [B, 3, 224, 224] -> [B, 2048] from a MoCo checkpoint (weights-only read; strict on the trunk).

    Raises CheckpointError naming the file when it is unreadable or not a MoCo ResNet-50 checkpoint.
    """
    from torchvision.models import resnet50

    path = Path(path)
    ckpt = torch_load(path, what="MoCo weights")
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: not a MoCo checkpoint (no state_dict)")
    prefix = PREFIX if any(k.startswith(PREFIX) for k in sd) else "encoder_q." if any(
        k.startswith("encoder_q.") for k in sd) else ""
    trunk = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and not k[len(prefix):].startswith("fc.")}
    model = resnet50()
    model.fc = nn.Identity()
    missing, unexpected = model.load_state_dict(trunk, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: not a MoCo ResNet-50 checkpoint (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]})")
    return model.eval().requires_grad_(False)


class MocoEmbedder:
    """images [B, 3, H, W] in [-1, 1] -> L2-normalised MoCo features [B, 2048]."""

    dim = 2048

    def __init__(self, device: torch.device, weights: str | Path) -> None:
        self.net = load_moco_resnet50(weights).to(device)
        self.device = device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.to(self.device, torch.float32), size=224)
        return F.normalize(self.net(x), dim=1)
