"""Encoder backbones of pSp / e4e / ReStyle / HyperStyle, with the official module names and a configurable size.

* IR-SE50 (TreB1eN InsightFace `bottleneck_IR_SE` / `bottleneck_IR`): `input_layer` = Conv3x3-BN-PReLU, `body.0..N-1`
  units grouped in 4 stages; every stage's first unit has stride 2 (so the final map is input/16).
* ResNet34 as used by ReStyle and HyperStyle: `conv1` 7x7 stride 2, `bn1`, `relu` = PReLU, no max-pool, `body.0..15`
  torchvision BasicBlocks of layer1..layer4 (final map input/16).
* `GradualStyleBlock` ("map2style"): log2(spatial) stride-2 convs + LeakyReLU(0.01), then EqualLinear -> one style.

The defaults are the official configuration. A small CPU-trainable configuration only changes the channel table and
the number of units per stage, e.g. ``IRSEConfig(channels=(16, 32, 64, 128), units=(1, 1, 1, 1))`` or
``IRSEConfig.scaled(0.25, units=(1, 2, 2, 1))``; the four-stage topology (and hence the FPN taps) is unchanged.
Backbone `stage_features(x)` returns the four stage outputs [B, C_i, H/2^(i+1), W/2^(i+1)] for i = 0..3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..checkpoint_io import strip_module_prefix
from ..stylegan2.layers import EqualLinear

OFFICIAL_CHANNELS = (64, 128, 256, 512)
IRSE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}  # official get_blocks(num_layers)
RESNET34_UNITS = (3, 4, 6, 3)
TOTAL_STRIDE = 16  # both backbones: final map = input / 16


def _scale(channels: Sequence[int], width: float, minimum: int = 8) -> tuple[int, ...]:
    return tuple(max(minimum, int(round(c * width))) for c in channels)


@dataclass(frozen=True)
class IRSEConfig:
    """IR(-SE) backbone widths: stem (`input_layer`) channels, per-stage channels and units, SE on/off.

    Official IR-SE50: stem 64, channels (64, 128, 256, 512), units (3, 4, 14, 3), SE reduction 16.
    """

    channels: tuple[int, int, int, int] = OFFICIAL_CHANNELS
    units: tuple[int, int, int, int] = IRSE_UNITS[50]
    stem_channels: int | None = None  # None -> channels[0] (official 64)
    se: bool = True  # 'ir_se' (True) or 'ir' (False)
    se_reduction: int = 16

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or len(self.units) != 4 or min(self.units) < 1:
            raise ValueError(f"IR-SE backbone needs 4 stages with >= 1 unit each, got {self.channels} / {self.units}")

    @property
    def stem(self) -> int:
        return self.stem_channels if self.stem_channels is not None else self.channels[0]

    @classmethod
    def official(cls, num_layers: int = 50, mode: str = "ir_se") -> IRSEConfig:
        """The InsightFace `get_blocks(num_layers)` table (50, 100 or 152) with mode 'ir' or 'ir_se'."""
        if num_layers not in IRSE_UNITS or mode not in ("ir", "ir_se"):
            raise ValueError(f"num_layers must be 50/100/152 and mode 'ir'/'ir_se', got {num_layers}, {mode!r}")
        return cls(units=IRSE_UNITS[num_layers], se=mode == "ir_se")

    @classmethod
    def scaled(cls, width: float, units: Sequence[int] = IRSE_UNITS[50], se: bool = True) -> IRSEConfig:
        """Width multiplier on the official channel table, e.g. scaled(0.25) -> (16, 32, 64, 128)."""
        return cls(channels=_scale(OFFICIAL_CHANNELS, width), units=tuple(units), se=se)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ResNetConfig:
    """ResNet (BasicBlock) backbone widths. Official ResNet34: stem 64, channels (64,128,256,512), units (3,4,6,3)."""

    channels: tuple[int, int, int, int] = OFFICIAL_CHANNELS
    units: tuple[int, int, int, int] = RESNET34_UNITS
    stem_channels: int | None = None  # None -> channels[0]

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or len(self.units) != 4 or min(self.units) < 1:
            raise ValueError(f"ResNet backbone needs 4 stages with >= 1 unit each, got {self.channels} / {self.units}")

    @property
    def stem(self) -> int:
        return self.stem_channels if self.stem_channels is not None else self.channels[0]

    @classmethod
    def scaled(cls, width: float, units: Sequence[int] = RESNET34_UNITS) -> ResNetConfig:
        return cls(channels=_scale(OFFICIAL_CHANNELS, width), units=tuple(units))  # type: ignore[arg-type]


def check_input(x: torch.Tensor, input_nc: int, input_size: int, who: str) -> None:
    """Encoders reduce the map to 1x1 with a fixed number of stride-2 convs, sized for `input_size`: the longer side
    must equal it (a shorter other side is fine, e.g. the official cars inputs 192x256)."""
    if (x.ndim != 4 or x.shape[1] != input_nc or max(x.shape[-2:]) != input_size
            or min(x.shape[-2:]) < TOTAL_STRIDE):
        raise ValueError(
            f"{who} expects images [B, {input_nc}, {input_size}, {input_size}] in [-1, 1] (or a shorter height), "
            f"got {tuple(x.shape)} (resize / pool the input first)"
        )


def check_input_size(input_size: int) -> None:
    if input_size < TOTAL_STRIDE or input_size & (input_size - 1):
        raise ValueError(f"encoder input_size must be a power of two >= {TOTAL_STRIDE}, got {input_size}")


# --------------------------------------------------------------------------------------------- IR-SE units
class SEModule(nn.Module):
    """Squeeze-excitation: x * sigmoid(fc2(relu(fc1(avgpool(x))))); fc1 [C/r, C, 1, 1], fc2 [C, C/r, 1, 1], no bias."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIR(nn.Module):
    """InsightFace `bottleneck_IR(_SE)`: res_layer(x) + shortcut_layer(x).

    shortcut_layer = MaxPool2d(1, stride) if in == depth else Conv1x1(stride, no bias) + BN;
    res_layer = BN(in), Conv3x3(in->depth), PReLU(depth), Conv3x3(depth->depth, stride), BN(depth)[, SEModule].
    """

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool = True, se_reduction: int = 16) -> None:
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SEModule(depth, se_reduction))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.res_layer(x)
        if isinstance(self.shortcut_layer, nn.MaxPool2d):  # MaxPool2d(1, s) is a plain s-strided subsampling
            s = self.shortcut_layer.stride
            return res + (x if s == 1 else x[:, :, ::s, ::s])
        return res + self.shortcut_layer(x)


def _stage_ends(units: Sequence[int]) -> tuple[int, ...]:
    ends, total = [], 0
    for n in units:
        total += n
        ends.append(total - 1)
    return tuple(ends)


class IRSEBackbone(nn.Module):
    """IR-SE body: `input_layer` (Conv3x3 s1 input_nc->stem, BN, PReLU) then `body.0..N-1` bottleneck units.

    Official IR-SE50 taps (256 input): body.6 -> c1 [B,128,64,64], body.20 -> c2 [B,256,32,32],
    body.23 -> c3 [B,512,16,16]; generally the ends of stages 2, 3 and 4.
    """

    def __init__(self, input_nc: int = 3, config: IRSEConfig | None = None) -> None:
        super().__init__()
        cfg = config or IRSEConfig()
        self.backbone_config = cfg
        self.input_nc = input_nc
        self.input_layer = nn.Sequential(
            nn.Conv2d(input_nc, cfg.stem, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(cfg.stem), nn.PReLU(cfg.stem)
        )
        units: list[nn.Module] = []
        in_ch = cfg.stem
        for depth, n in zip(cfg.channels, cfg.units):
            for i in range(n):
                units.append(BottleneckIR(in_ch, depth, 2 if i == 0 else 1, cfg.se, cfg.se_reduction))
                in_ch = depth
        self.body = nn.Sequential(*units)
        self.stage_ends = _stage_ends(cfg.units)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(self.backbone_config.channels)

    @property
    def out_channels(self) -> int:
        return self.backbone_config.channels[-1]

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_layer(x)

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, input_nc, H, W] -> the 4 stage outputs [B, C_i, H/2^(i+1), W/2^(i+1)]."""
        x = self.stem_forward(x)
        feats = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.stage_ends:
                feats.append(x)
        return feats


# --------------------------------------------------------------------------------------------- ResNet34
class BasicBlock(nn.Module):
    """torchvision `resnet.BasicBlock` (same names and math; importing torchvision.models costs seconds):
    relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)), conv1 3x3 with the stride, conv2 3x3, no biases."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """ReStyle / HyperStyle ResNet34: `conv1` 7x7 s2 (input_nc->stem), `bn1`, `relu` = PReLU(stem), `body.0..N-1`.

    `body` = torchvision BasicBlocks of layer1..layer4 flattened (downsample at each stage's first block when the
    stride or width changes: body.3, body.7, body.13 officially). No max-pool: final map = input / 16.
    Body convs use torchvision's ResNet init (kaiming_normal fan_out); officially they come pretrained from ImageNet
    (see `load_pretrained_resnet34`).
    """

    def __init__(self, input_nc: int = 6, config: ResNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or ResNetConfig()
        self.backbone_config = cfg
        self.input_nc = input_nc
        self.conv1 = nn.Conv2d(input_nc, cfg.stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem)
        self.relu = nn.PReLU(cfg.stem)
        blocks: list[nn.Module] = []
        in_ch = cfg.stem
        for stage, (planes, n) in enumerate(zip(cfg.channels, cfg.units)):
            for i in range(n):
                stride = 2 if (i == 0 and stage > 0) else 1
                down = None
                if stride != 1 or in_ch != planes:
                    down = nn.Sequential(nn.Conv2d(in_ch, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                blocks.append(BasicBlock(in_ch, planes, stride, down))
                in_ch = planes
        self.body = nn.Sequential(*blocks)
        self.stage_ends = _stage_ends(cfg.units)
        for m in self.body.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(self.backbone_config.channels)

    @property
    def out_channels(self) -> int:
        return self.backbone_config.channels[-1]

    def stem_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, input_nc, H, W] -> the 4 stage outputs [B, C_i, H/2^(i+1), W/2^(i+1)]."""
        x = self.stem_forward(x)
        feats = []
        for i, block in enumerate(self.body):
            x = block(x)
            if i in self.stage_ends:
                feats.append(x)
        return feats


# --------------------------------------------------------------------------------------------- map2style
class GradualStyleBlock(nn.Module):
    """map2style: [Conv3x3 s2 + LeakyReLU(0.01)] x max(1, log2(spatial)) then EqualLinear(out_c, out_c).

    Input [B, in_c, spatial, spatial] -> one style [B, out_c]. Keys `convs.{0,2,..}.weight/bias`, `linear.*`.
    """

    def __init__(self, in_c: int, out_c: int, spatial: int) -> None:
        super().__init__()
        self.out_c = out_c
        self.spatial = spatial
        num_pools = int(math.log2(spatial))
        modules: list[nn.Module] = [nn.Conv2d(in_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            modules += [nn.Conv2d(out_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*modules)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        x = x.view(-1, self.out_c)
        return self.linear(x)


# --------------------------------------------------------------------------------------------- official init
def _expand_first_conv(weight: torch.Tensor, input_nc: int, generator: torch.Generator | None) -> torch.Tensor:
    """Official 6-channel init: [out, 3, k, k] -> [out, input_nc, k, k], first 3 channels copied, the rest randn."""
    if weight.shape[1] == input_nc:
        return weight
    out = torch.randn(weight.shape[0], input_nc, *weight.shape[2:], dtype=torch.float32, generator=generator)
    out[:, : min(3, input_nc)] = weight[:, : min(3, input_nc)]
    return out


def load_pretrained_irse(
    module: IRSEBackbone, state_dict: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
    source: str = "pretrained IR-SE weights",
) -> list[str]:
    """Initialise from TreB1eN `model_ir_se50.pth` as pSp / ReStyle do (strict=False; `output_layer.*` ignored).

    A DataParallel `module.` prefix is stripped (one note naming `source`). Returns the model keys that the file did
    not provide (e.g. `styles.*`, `latlayer*`, `linear.*`).
    """
    state_dict = strip_module_prefix(state_dict, source)
    sd = {k: v for k, v in state_dict.items() if k.startswith(("input_layer.", "body."))}
    if "input_layer.0.weight" in sd:
        sd["input_layer.0.weight"] = _expand_first_conv(sd["input_layer.0.weight"], module.input_nc, generator)
    result = module.load_state_dict(sd, strict=False)
    return list(result.missing_keys)


def load_pretrained_resnet34(
    module: ResNetBackbone, state_dict: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
    source: str = "pretrained ResNet34 weights",
) -> list[str]:
    """Initialise from torchvision `resnet34` weights: `layer{s}.{j}.*` -> `body.{n}.*`, `conv1` expanded to input_nc.

    Officially the body is the pretrained torchvision layer1..4 and conv1/bn1 come from the same file (the repos'
    RESNET_MAPPING is computed but unused, which is equivalent). `fc.*` is ignored; a DataParallel `module.` prefix
    is stripped (one note naming `source`). Returns the keys not provided.
    """
    state_dict = strip_module_prefix(state_dict, source)
    cfg = module.backbone_config
    offsets = [0]
    for n in cfg.units[:-1]:
        offsets.append(offsets[-1] + n)
    sd: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        if k.startswith("layer"):
            stage, rest = k[len("layer"):].split(".", 1)
            j, tail = rest.split(".", 1)
            sd[f"body.{offsets[int(stage) - 1] + int(j)}.{tail}"] = v
        elif k.startswith(("conv1.", "bn1.")):
            sd[k] = v
    if "conv1.weight" in sd:
        sd["conv1.weight"] = _expand_first_conv(sd["conv1.weight"], module.input_nc, generator)
    result = module.load_state_dict(sd, strict=False)
    return list(result.missing_keys)
