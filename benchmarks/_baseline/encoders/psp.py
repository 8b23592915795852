"""pSp and e4e encoders (official module names, configurable size).

* `GradualStyleEncoder` (pSp): IR-SE FPN. c3 (final map) -> styles [0, coarse_ind); p2 = up(c3) + latlayer1(c2)
  -> styles [coarse_ind, middle_ind); p1 = up(p2) + latlayer2(c1) -> the rest. Upsampling is bilinear with
  align_corners=True. The official split is coarse_ind=3 / middle_ind=7 for every n_styles (18, 16, 14, ...).
* `Encoder4Editing` (e4e): same modules/keys, forward w0 = styles[0](c3) repeated, then w_i = w0 + styles[i](features)
  for i = 1..min(progressive_stage, n_styles - 1), with features c3 -> p2 at i = coarse_ind -> p1 at i = middle_ind.
* `BackboneEncoderUsingLastLayerIntoW` (pSp `learn_in_w`), `WEncoder` (HyperStyle) / e4e `SingleStyleCodeEncoder`:
  avg-pool of the final map + EqualLinear -> a single w (repeated over the styles for WEncoder).
* `BackboneEncoderUsingLastLayerIntoWPlus` (pSp alternative): BN + AdaptiveAvgPool(7x7) + Linear + EqualLinear.

All encoders take images [B, input_nc, input_size, input_size] in [-1, 1] (official input_size 256) and return
codes [B, n_styles, style_dim] (no latent_avg added: the wrappers / `official.py` add it), except
`BackboneEncoderUsingLastLayerIntoW` with n_styles=None, which returns [B, style_dim].
"""

from __future__ import annotations

from enum import IntEnum

import torch
import torch.nn.functional as F
from torch import nn

from ..stylegan2.layers import EqualLinear
from .backbones import (
    TOTAL_STRIDE,
    GradualStyleBlock,
    IRSEBackbone,
    IRSEConfig,
    check_input,
    check_input_size,
)

COARSE_IND = 3
MIDDLE_IND = 7


class ProgressiveStage(IntEnum):
    """e4e's training stage: WTraining (only w0), Delta1..Delta17 (deltas 1..i on), Inference (all deltas)."""

    WTraining = 0
    Delta1 = 1
    Delta2 = 2
    Delta3 = 3
    Delta4 = 4
    Delta5 = 5
    Delta6 = 6
    Delta7 = 7
    Delta8 = 8
    Delta9 = 9
    Delta10 = 10
    Delta11 = 11
    Delta12 = 12
    Delta13 = 13
    Delta14 = 14
    Delta15 = 15
    Delta16 = 16
    Delta17 = 17
    Inference = 18


def upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear (align_corners=True) upsampling of x to y's size, plus y."""
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class FPNStyleHead:
    """Mixin: the pSp FPN head (`styles`, `latlayer1`, `latlayer2`) on top of a 4-stage backbone.

    Style i reads c3 (spatial s = input_size/16) for i < coarse_ind, p2 (2s) for i < middle_ind, else p1 (4s).
    """

    styles: nn.ModuleList
    stage_channels: tuple[int, ...]

    def _init_fpn_head(self, n_styles: int, style_dim: int, input_size: int, coarse_ind: int, middle_ind: int) -> None:
        check_input_size(input_size)
        if not 0 < coarse_ind <= middle_ind:
            raise ValueError(f"need 0 < coarse_ind <= middle_ind, got {coarse_ind}, {middle_ind}")
        self.n_styles = self.style_count = n_styles
        self.style_dim = style_dim
        self.input_size = input_size
        self.coarse_ind, self.middle_ind = coarse_ind, middle_ind
        c1, c2, c3 = self.stage_channels[1:]
        s = input_size // TOTAL_STRIDE
        self.styles = nn.ModuleList()
        for i in range(n_styles):
            spatial = s if i < coarse_ind else (2 * s if i < middle_ind else 4 * s)
            self.styles.append(GradualStyleBlock(c3, style_dim, spatial))
        self.latlayer1 = nn.Conv2d(c2, c3, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(c1, c3, kernel_size=1, stride=1, padding=0)

    def _fpn_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_input(x, self.input_nc, self.input_size, type(self).__name__)  # type: ignore[attr-defined]
        _, c1, c2, c3 = self.stage_features(x)  # type: ignore[attr-defined]
        return c1, c2, c3

    def _psp_forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self._fpn_features(x)
        n = self.n_styles
        latents = [self.styles[j](c3) for j in range(min(self.coarse_ind, n))]
        p2 = upsample_add(c3, self.latlayer1(c2))
        latents += [self.styles[j](p2) for j in range(self.coarse_ind, min(self.middle_ind, n))]
        p1 = upsample_add(p2, self.latlayer2(c1))
        latents += [self.styles[j](p1) for j in range(self.middle_ind, n)]
        return torch.stack(latents, dim=1)


class GradualStyleEncoder(FPNStyleHead, IRSEBackbone):
    """pSp encoder: IR-SE50 + FPN + n_styles map2style blocks.

    x [B, input_nc, input_size, input_size] -> codes [B, n_styles, style_dim].
    Official: input_nc 3 (pSp inversion) or 6 (ReStyle FPN variant), style_dim 512, input_size 256.
    """

    def __init__(
        self, n_styles: int = 18, input_nc: int = 3, style_dim: int = 512, input_size: int = 256,
        backbone: IRSEConfig | None = None, coarse_ind: int = COARSE_IND, middle_ind: int = MIDDLE_IND,
    ) -> None:
        IRSEBackbone.__init__(self, input_nc, backbone)
        self._init_fpn_head(n_styles, style_dim, input_size, coarse_ind, middle_ind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._psp_forward(x)


class Encoder4Editing(FPNStyleHead, IRSEBackbone):
    """e4e encoder: same modules and keys as `GradualStyleEncoder`; forward = w0 + progressive deltas.

    x [B, input_nc, input_size, input_size] -> codes [B, n_styles, style_dim] where codes[:, 0] = w0 and
    codes[:, i] = w0 + delta_i for 1 <= i <= progressive_stage (others = w0). Officially input_nc is hard-coded to 3
    and n_styles = 2*log2(stylegan_size) - 2.
    """

    def __init__(
        self, n_styles: int = 18, input_nc: int = 3, style_dim: int = 512, input_size: int = 256,
        backbone: IRSEConfig | None = None, coarse_ind: int = COARSE_IND, middle_ind: int = MIDDLE_IND,
        progressive_stage: int = ProgressiveStage.Inference,
    ) -> None:
        IRSEBackbone.__init__(self, input_nc, backbone)
        self._init_fpn_head(n_styles, style_dim, input_size, coarse_ind, middle_ind)
        self.progressive_stage = int(progressive_stage)

    def set_progressive_stage(self, stage: int) -> None:
        """Stage i enables deltas 1..i (ProgressiveStage.Inference = 18: all of them)."""
        self.progressive_stage = int(stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self._fpn_features(x)
        w0 = self.styles[0](c3)
        codes = [w0]
        features, p2 = c3, None
        last = min(self.progressive_stage + 1, self.n_styles)
        for i in range(1, last):
            if i == self.coarse_ind:
                p2 = upsample_add(c3, self.latlayer1(c2))
                features = p2
            elif i == self.middle_ind:
                features = upsample_add(p2 if p2 is not None else c3, self.latlayer2(c1))
            codes.append(w0 + self.styles[i](features))
        codes += [w0] * (self.n_styles - len(codes))
        return torch.stack(codes, dim=1)


def _move_to_end(module: nn.Module, name: str) -> None:
    """Re-register a submodule last, to reproduce the official attribute (= state_dict) order."""
    module._modules[name] = module._modules.pop(name)


class BackboneEncoderUsingLastLayerIntoW(IRSEBackbone):
    """Single-w encoder: IR-SE body, AdaptiveAvgPool(1), EqualLinear(C, style_dim).

    Keys (official order): input_layer, linear, body. x -> w [B, style_dim] when n_styles is None (pSp `learn_in_w`),
    else w repeated to [B, n_styles, style_dim] (HyperStyle `WEncoder`, e4e `SingleStyleCodeEncoder`).
    """

    def __init__(
        self, n_styles: int | None = None, input_nc: int = 3, style_dim: int = 512, input_size: int = 256,
        backbone: IRSEConfig | None = None,
    ) -> None:
        super().__init__(input_nc, backbone)
        check_input_size(input_size)
        self.n_styles = self.style_count = n_styles
        self.style_dim = style_dim
        self.input_size = input_size
        self.output_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = EqualLinear(self.out_channels, style_dim, lr_mul=1)
        _move_to_end(self, "body")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_nc, self.input_size, type(self).__name__)
        x = self.body(self.input_layer(x))
        x = self.output_pool(x).view(-1, self.out_channels)
        w = self.linear(x)
        if self.n_styles is None:
            return w
        return w.unsqueeze(1).repeat(1, self.n_styles, 1)


class WEncoder(BackboneEncoderUsingLastLayerIntoW):
    """HyperStyle's initial W-inversion encoder: x [B, 3, 256, 256] -> w repeated [B, n_styles, style_dim]."""

    def __init__(
        self, n_styles: int = 18, input_nc: int = 3, style_dim: int = 512, input_size: int = 256,
        backbone: IRSEConfig | None = None,
    ) -> None:
        super().__init__(n_styles, input_nc, style_dim, input_size, backbone)


class BackboneEncoderUsingLastLayerIntoWPlus(IRSEBackbone):
    """pSp alternative: IR-SE body, `output_layer_2` = BN(C), AdaptiveAvgPool(7x7), Flatten, Linear(C*49, style_dim);
    `linear` = EqualLinear(style_dim, style_dim * n_styles) -> codes [B, n_styles, style_dim].

    Keys (official order): input_layer, output_layer_2, linear, body.
    """

    def __init__(
        self, n_styles: int = 18, input_nc: int = 3, style_dim: int = 512, input_size: int = 256,
        backbone: IRSEConfig | None = None,
    ) -> None:
        super().__init__(input_nc, backbone)
        check_input_size(input_size)
        self.n_styles = self.style_count = n_styles
        self.style_dim = style_dim
        self.input_size = input_size
        c = self.out_channels
        self.output_layer_2 = nn.Sequential(
            nn.BatchNorm2d(c), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(c * 7 * 7, style_dim)
        )
        self.linear = EqualLinear(style_dim, style_dim * n_styles, lr_mul=1)
        _move_to_end(self, "body")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_nc, self.input_size, type(self).__name__)
        x = self.body(self.input_layer(x))
        x = self.linear(self.output_layer_2(x))
        return x.view(-1, self.n_styles, self.style_dim)
