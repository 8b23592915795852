"""rosinality StyleGAN2 residual discriminator with minibatch-stddev, for a configurable channel table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .generator import default_channels
from .layers import ConvLayer, EqualLinear, ResBlock


class Discriminator(nn.Module):
    """Image [B, 3, size, size] in [-1, 1] -> realness logit [B, 1]."""

    def __init__(
        self, size: int, channel_multiplier: int = 2, blur_kernel: Sequence[int] = (1, 3, 3, 1),
        channels: dict[int, int] | None = None, stddev_group: int = 4,
    ) -> None:
        super().__init__()
        table = default_channels(channel_multiplier)
        if channels:
            table.update({int(k): int(v) for k, v in channels.items()})
        convs: list[nn.Module] = [ConvLayer(3, table[size], 1)]
        log_size = int(math.log2(size))
        in_channel = table[size]
        for i in range(log_size, 2, -1):
            out_channel = table[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = stddev_group
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, table[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(table[4] * 4 * 4, table[4], activation="fused_lrelu"), EqualLinear(table[4], 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs(x)
        batch, channel, height, width = out.shape
        group = min(batch, self.stddev_group)
        while batch % group:
            group -= 1
        stddev = out.view(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
        stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2)
        stddev = stddev.repeat(group, 1, height, width)
        out = torch.cat([out, stddev], 1)
        out = self.final_conv(out)
        return self.final_linear(out.view(batch, -1))
