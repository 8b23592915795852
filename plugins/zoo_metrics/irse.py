"""IR / IR-SE 50/100/152 face-recognition backbones (TreB1eN InsightFace / face.evoLVe layout, anchors §1.4).

Loads user-supplied weights strictly: ArcFace `model_ir_se50.pth` (IR-SE-50) or CurricularFace
`CurricularFace_Backbone.pth` (IR-101, no SE), the model the HyperStyle / ReStyle ID metric uses.
Input: aligned faces [B, 3, 112, 112] in [-1, 1]; output: L2-normalised embeddings [B, 512].
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from zoo.checkpoint_io import load_checked, strip_module_prefix, torch_load
from zoo.errors import CheckpointError

UNITS_PER_STAGE: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STAGE_DEPTHS: tuple[int, int, int, int] = (64, 128, 256, 512)


class SEModule(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(fc2(relu(fc1(avgpool(x))))) with bias-free 1×1 convs."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIR(nn.Module):
    """`bottleneck_IR(_SE)`: res_layer = BN, conv3×3, PReLU, conv3×3(stride), BN[, SE]; shortcut = pool or conv+BN."""

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool) -> None:
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channel, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        layers: list[nn.Module] = [nn.BatchNorm2d(in_channel), nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
                                   nn.PReLU(depth), nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
                                   nn.BatchNorm2d(depth)]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """`Backbone(112, num_layers, mode)`: input_layer, body (bottleneck units), output_layer -> 512-D embedding."""

    def __init__(self, num_layers: int = 50, se: bool = True, bn1d_affine: bool = True) -> None:
        super().__init__()
        if num_layers not in UNITS_PER_STAGE:
            raise ValueError(f"num_layers must be one of {sorted(UNITS_PER_STAGE)}")
        self.num_layers, self.se = num_layers, se
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units, in_c = [], 64
        for depth, n in zip(STAGE_DEPTHS, UNITS_PER_STAGE[num_layers]):
            for i in range(n):
                units.append(BottleneckIR(in_c, depth, 2 if i == 0 else 1, se))
                in_c = depth
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(0.4), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512, affine=bn1d_affine))

    @property
    def arch(self) -> str:
        """Conventional name: IR-SE-50 (ArcFace), IR-101 (CurricularFace; 100 layers in the code), ..."""
        return f"IR{'-SE' if self.se else ''}-{ {100: 101}.get(self.num_layers, self.num_layers)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 3, 112, 112] in [-1, 1] -> L2-normalised embeddings [B, 512]."""
        x = self.output_layer(self.body(self.input_layer(x)))
        return nn.functional.normalize(x, dim=1)


def load_ir_backbone(path: str | Path) -> IRBackbone:
    """Build the IR(-SE) backbone that fits a state dict file and load it strictly (eval mode, frozen).

    Depth (50/100/152) comes from the number of body units, SE from `res_layer.5.*` keys; a `module.` prefix
    (DataParallel) is stripped (one note). Raises CheckpointError naming the file if it is unreadable (empty, HTML,
    pickled objects or code: never run) or not such a backbone.
    """
    path = Path(path)
    fix = "download model_ir_se50.pth again (TreB1eN / pSp release)"
    sd = torch_load(path, what="identity weights", fix=fix)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{path}: not a state dict; {fix}")
    sd = strip_module_prefix(sd, str(path))
    units = {int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.", k))}
    by_count = {sum(v): n for n, v in UNITS_PER_STAGE.items()}
    if len(units) not in by_count:
        raise CheckpointError(f"{path}: {len(units)} body units is not an IR-50/100/152 backbone "
                              "(expected the TreB1eN / face.evoLVe / CurricularFace layout)")
    se = any(".res_layer.5." in k for k in sd)
    config = dict(num_layers=by_count[len(units)], se=se, bn1d_affine="output_layer.4.weight" in sd)
    with torch.device("meta"):  # no random init of 40-65 M parameters that are overwritten anyway
        model = IRBackbone(**config)
    # strict; BN counters absent from old files are set to 0 (one note), missing weights / statistics are an error
    load_checked(model, sd, str(path), fix, assign=True, problem=f"does not fit {model.arch}")
    return model.eval().requires_grad_(False)
