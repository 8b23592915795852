"""rosinality-layout StyleGAN2 generator with z / W / W+ inputs, truncation, style mixing, noise control and
per-sample multiplicative weight offsets (HyperStyle's W * (1 + delta)).

Images are raw synthesis outputs (no tanh/clamp); trained models give roughly [-1, 1].
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .layers import ConstantInput, EqualLinear, ModulatedConv2d, PixelNorm, StyledConv, ToRGB


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """Official channel table: 4-32 -> 512; 64 -> 256*cm; 128 -> 128*cm; 256 -> 64*cm; 512 -> 32*cm; 1024 -> 16*cm."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}


@dataclass
class GeneratorConfig:
    """Everything needed to rebuild a Generator (stored next to weights; JSON-serialisable)."""

    size: int
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    blur_kernel: list[int] = field(default_factory=lambda: [1, 3, 3, 1])
    lr_mlp: float = 0.01
    channels: dict[int, int] | None = None  # overrides the official table (small models)

    def channel_table(self) -> dict[int, int]:
        table = default_channels(self.channel_multiplier)
        if self.channels:
            table.update({int(k): int(v) for k, v in self.channels.items()})
        return table

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["channels"] is not None:
            d["channels"] = {str(k): v for k, v in d["channels"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        d = dict(d)
        if d.get("channels"):
            d["channels"] = {int(k): int(v) for k, v in d["channels"].items()}
        return cls(**d)


@dataclass(frozen=True)
class LayerSlot:
    """One entry of HyperStyle's `weights_deltas` list: which module it modulates and its weight shape."""

    index: int
    name: str  # e.g. "conv1", "convs.3", "to_rgbs.2"
    out_channels: int
    in_channels: int
    kernel_size: int
    is_torgb: bool


class Generator(nn.Module):
    """StyleGAN2 generator (rosinality `model.py:Generator` layout).

    forward(styles, ...) -> (image [B, 3, size, size], latent [B, n_latent, style_dim] or None).
    """

    def __init__(
        self, size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
        blur_kernel: Sequence[int] = (1, 3, 3, 1), lr_mlp: float = 0.01, channels: dict[int, int] | None = None,
    ) -> None:
        super().__init__()
        if size < 4 or size & (size - 1):
            raise ValueError(f"generator size must be a power of two >= 4, got {size}")
        self.config = GeneratorConfig(size, style_dim, n_mlp, channel_multiplier, list(blur_kernel), lr_mlp, channels)
        self.size = size
        self.style_dim = style_dim
        layers: list[nn.Module] = [PixelNorm()]
        for _ in range(n_mlp):
            layers.append(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu"))
        self.style = nn.Sequential(*layers)

        self.channels = self.config.channel_table()
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)

        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        in_channel = self.channels[4]
        for layer_idx in range(self.num_layers):
            res = (layer_idx + 5) // 2
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, 2**res, 2**res))
        for i in range(3, self.log_size + 1):
            out_channel = self.channels[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2

    # ------------------------------------------------------------------ latents
    @property
    def device(self) -> torch.device:
        return self.input.input.device

    def make_noise(self) -> list[torch.Tensor]:
        """Fresh noise maps [1, 1, R, R] for every layer (R = 4, 8, 8, 16, 16, ...)."""
        noises = [torch.randn(1, 1, 4, 4, device=self.device)]
        for i in range(3, self.log_size + 1):
            for _ in range(2):
                noises.append(torch.randn(1, 1, 2**i, 2**i, device=self.device))
        return noises

    def fixed_noise(self) -> list[torch.Tensor]:
        """The stored noise buffers `noises.noise_i`."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    @torch.no_grad()
    def mean_latent(self, n_latent: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of `n_latent` mapped N(0, I) samples -> [1, style_dim]."""
        z = torch.randn(n_latent, self.style_dim, device=self.device, generator=generator)
        return self.style(z).mean(0, keepdim=True)

    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Mapping network z [B, D] -> w [B, D]."""
        return self.style(z)

    # ------------------------------------------------------------------ HyperStyle slots
    def layer_slots(self) -> list[LayerSlot]:
        """The len(convs) + len(to_rgbs) + 2 modulated layers in HyperStyle's `weights_deltas` order."""
        def slot(idx: int, name: str, conv: ModulatedConv2d, rgb: bool) -> LayerSlot:
            return LayerSlot(idx, name, conv.out_channel, conv.in_channel, conv.kernel_size, rgb)

        slots = [slot(0, "conv1", self.conv1.conv, False), slot(1, "to_rgb1", self.to_rgb1.conv, True)]
        for j, rgb in enumerate(self.to_rgbs):
            slots.append(slot(2 + 3 * j, f"convs.{2 * j}", self.convs[2 * j].conv, False))
            slots.append(slot(3 + 3 * j, f"convs.{2 * j + 1}", self.convs[2 * j + 1].conv, False))
            slots.append(slot(4 + 3 * j, f"to_rgbs.{j}", rgb.conv, True))
        return slots

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        styles: Sequence[torch.Tensor],
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
        weights_deltas: Sequence[torch.Tensor | None] | None = None,
        style_offsets: Sequence[torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Render images.

        styles: list of one or two tensors: z [B, D] (mapped unless `input_is_latent`), w [B, D] or W+ [B, n_latent, D].
        Two styles mix at `inject_index` (random in [1, n_latent-1] when None).
        truncation: t + psi * (style - t) for every style (W+ included) when psi < 1.
        noise: explicit list indexed like `noises.noise_i`; else stored buffers (randomize_noise=False) or fresh N(0,1).
        weights_deltas: HyperStyle offsets, list of len(layer_slots()) entries, None or [B|1, out, in, k|1, k|1].
        style_offsets: StyleSpace edits, list of len(layer_slots()) entries, None or [B|1, in] added to the S codes.
        """
        if not isinstance(styles, (list, tuple)):
            raise TypeError("styles must be a list of tensors, e.g. G([w], input_is_latent=True)")
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        for s in styles:
            if s.shape[-1] != self.style_dim or s.ndim not in (2, 3) or (s.ndim == 3 and s.shape[1] != self.n_latent):
                raise ValueError(
                    f"style of shape {tuple(s.shape)} does not fit this generator: expected [B, {self.style_dim}] "
                    f"or [B, {self.n_latent}, {self.style_dim}]"
                )
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.fixed_noise()
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent (e.g. G.mean_latent(4096) or latent_avg)")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) < 2:
            s = styles[0]
            latent = s.unsqueeze(1).repeat(1, self.n_latent, 1) if s.ndim < 3 else s
        else:
            if inject_index is None:
                inject_index = random.randint(1, self.n_latent - 1)
            s1, s2 = styles[0], styles[1]
            l1 = s1[:, :inject_index] if s1.ndim == 3 else s1.unsqueeze(1).repeat(1, inject_index, 1)
            l2 = s2[:, inject_index:] if s2.ndim == 3 else s2.unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
            latent = torch.cat([l1, l2], 1)
        image = self.synthesis(latent, noise, weights_deltas, style_offsets)
        return image, (latent if return_latents else None)

    def _per_slot(self, values: Sequence[torch.Tensor | None] | None, what: str) -> list[torch.Tensor | None]:
        n = len(self.convs) + len(self.to_rgbs) + 2
        out = list(values) if values is not None else [None] * n
        if len(out) != n:
            raise ValueError(f"{what} needs {n} entries (one per layer slot), got {len(out)}")
        return out

    def slot_latent_index(self) -> list[int]:
        """For each layer slot (layer_slots() order) the W+ index whose style it reads."""
        idx = [0, 1]
        for j in range(len(self.to_rgbs)):
            idx += [1 + 2 * j, 2 + 2 * j, 3 + 2 * j]
        return idx

    def style_codes(self, latent: torch.Tensor) -> list[torch.Tensor]:
        """StyleSpace: the S code of every layer slot, [B, in_channels] each, for W+ latents [B, n_latent, D]."""
        mods = [self.conv1.conv, self.to_rgb1.conv]
        for j, to_rgb in enumerate(self.to_rgbs):
            mods += [self.convs[2 * j].conv, self.convs[2 * j + 1].conv, to_rgb.conv]
        return [m.modulation(latent[:, i]) for m, i in zip(mods, self.slot_latent_index())]

    def synthesis(
        self, latent: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None,
        weights_deltas: Sequence[torch.Tensor | None] | None = None,
        style_offsets: Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """W+ latent [B, n_latent, D] -> image [B, 3, size, size]."""
        if noise is None:
            noise = [None] * self.num_layers
        d = self._per_slot(weights_deltas, "weights_deltas")
        o = self._per_slot(style_offsets, "style_offsets")
        out = self.input(latent)
        out = self.conv1(out, latent[:, 0], noise=noise[0], delta=d[0], style_offset=o[0])
        skip = self.to_rgb1(out, latent[:, 1], delta=d[1], style_offset=o[1])
        i = 1
        for j, to_rgb in enumerate(self.to_rgbs):
            conv_up, conv = self.convs[2 * j], self.convs[2 * j + 1]
            k = 2 + 3 * j
            out = conv_up(out, latent[:, i], noise=noise[2 * j + 1], delta=d[k], style_offset=o[k])
            out = conv(out, latent[:, i + 1], noise=noise[2 * j + 2], delta=d[k + 1], style_offset=o[k + 1])
            skip = to_rgb(out, latent[:, i + 2], skip, delta=d[k + 2], style_offset=o[k + 2])
            i += 2
        return skip
