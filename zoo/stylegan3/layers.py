"""StyleGAN3 building blocks with NVlabs' module layout and parameter names (state-dict keys equal the official ones).

Source: NVlabs/stylegan3 @ c233a919 `training/networks_stylegan3.py` (`FullyConnectedLayer`, `MappingNetwork`,
`SynthesisInput`, `SynthesisLayer`); semantics in `shared/reference/sg3/README.md` §4 and `anchors-wave2.md` §1.1-1.4.
Parameters are stored raw and rescaled at run time (equalised learning rate). Everything runs in float32 (the
official fp16 layers only exist on CUDA; this equals `force_fp32=True`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .ops import SQRT2, FilteredLReLU, ResampleImpl, design_lowpass_filter, modulated_conv2d, normalize_2nd_moment


class FullyConnectedLayer(nn.Module):
    """y = act(x (W lr/sqrt(in))^T + b lr); `weight` [out, in], `bias` [out]; act 'linear' or 'lrelu' (0.2, x sqrt 2).

    `weight_init` scales the N(0, 1) init; `bias_init` is a scalar or an [out] sequence (stored / lr_multiplier).
    """

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", bias: bool = True,
                 lr_multiplier: float = 1.0, weight_init: float = 1.0,
                 bias_init: float | Sequence[float] = 0.0) -> None:
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * (weight_init / lr_multiplier))
        b = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = nn.Parameter(torch.from_numpy(b / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        if b is not None:
            x = x + b
        if self.activation == "lrelu":
            x = F.leaky_relu(x, 0.2) * SQRT2
        return x

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class MappingNetwork(nn.Module):
    """z [B, z_dim] (+ label c [B, c_dim]) -> ws [B, num_ws, w_dim]; buffer `w_avg` [w_dim]; `fc{i}` lrelu, lr 0.01.

    z is normalised by its RMS; a label goes through `embed` and is normalised the same way and concatenated.
    Truncation: rows [0, cutoff) become w_avg.lerp(w, psi) (cutoff None = all rows).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 2,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx, (i, o) in enumerate(zip(features[:-1], features[1:])):
            setattr(self, f"fc{idx}", FullyConnectedLayer(i, o, activation="lrelu", lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def map_w(self, z: torch.Tensor | None, c: torch.Tensor | None = None, update_emas: bool = False) -> torch.Tensor:
        """z [B, z_dim] (and c) -> w [B, w_dim] (no broadcast, no truncation)."""
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [B, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.float())
        if self.c_dim > 0:
            if c is None or c.shape[-1] != self.c_dim:
                raise ValueError(f"this conditional generator needs a label c [B, {self.c_dim}]")
            y = normalize_2nd_moment(self.embed(c.float()))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return x

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        x = self.map_w(z, c, update_emas).unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = x.clone()
            x[:, :cut] = self.w_avg.lerp(x[:, :cut], truncation_psi)
        return x


class SynthesisInput(nn.Module):
    """Fourier-feature input: w [B, w_dim] -> [B, C, size, size].

    Buffers `freqs` [C, 2], `phases` [C], `transform` [3, 3] (the *inverse* user transform, identity at init);
    parameter `weight` [C, C] (channel mix, / sqrt C); `affine` FC(w_dim -> 4), weight init 0, bias (1, 0, 0, 0).
    A per-call `transform` [3, 3] or [B, 3, 3] (same inverse semantics) replaces the buffer; `t` [B, 4] replaces the
    normalised affine output (StyleSpace of the input layer).
    """

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.size = np.broadcast_to(np.asarray(size), [2])
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def affine_code(self, w: torch.Tensor) -> torch.Tensor:
        """t = affine(w) / |(t0, t1)| -> [B, 4] (rotation cos/sin, translation), the input layer's style code."""
        t = self.affine(w)
        return t / t[:, :2].norm(dim=1, keepdim=True)

    def forward(self, w: torch.Tensor | None, transform: torch.Tensor | None = None,
                t: torch.Tensor | None = None) -> torch.Tensor:
        if t is None:
            t = self.affine_code(w)
        batch = t.shape[0]
        user = self.transform if transform is None else transform.to(t.device, t.dtype)
        if user.ndim == 2:
            user = user.unsqueeze(0)
        if user.shape[-2:] != (3, 3) or user.shape[0] not in (1, batch):
            raise ValueError(f"transform must be [3, 3] or [{batch}, 3, 3], got {tuple(user.shape)}")
        eye = torch.eye(3, device=t.device, dtype=t.dtype)
        m_r = eye.unsqueeze(0).repeat([batch, 1, 1])
        m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        m_t = eye.unsqueeze(0).repeat([batch, 1, 1])
        m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = m_r @ m_t @ user
        freqs, phases = self.freqs.unsqueeze(0), self.phases.unsqueeze(0)
        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=t.device, dtype=t.dtype)
        theta[0, 0] = 0.5 * int(self.size[0]) / self.sampling_rate
        theta[1, 1] = 0.5 * int(self.size[1]) / self.sampling_rate
        grids = F.affine_grid(theta.unsqueeze(0), [1, 1, int(self.size[1]), int(self.size[0])], align_corners=False)
        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [B, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (math.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SynthesisLayer(nn.Module):
    """One StyleGAN3 layer: modulated conv (full padding k-1) -> filtered leaky ReLU; or ToRGB (1x1, no demod,
    linear). Parameters `weight` [out, in, k, k], `bias` [out]; buffers `magnitude_ema` [] (its rsqrt is the input
    gain), `up_filter` / `down_filter` (absent when the factor is 1); `affine` FC(w_dim -> in, bias init 1).

    Resampling constants follow NVlabs `SynthesisLayer.__init__` (README §4 "Per-layer resampling constants").
    `design_filters=False` registers zero placeholders of the right shape (for meta-device / to-be-loaded builds).
    """

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool, in_channels: int,
                 out_channels: int, in_size: int, out_size: int, in_sampling_rate: float, out_sampling_rate: float,
                 in_cutoff: float, out_cutoff: float, in_half_width: float, out_half_width: float,
                 conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                 use_radial_filters: bool = False, conv_clamp: float | None = 256, magnitude_ema_beta: float = 0.999,
                 design_filters: bool = True, resample_impl: ResampleImpl = "auto") -> None:
        super().__init__()
        self.w_dim, self.is_torgb, self.is_critically_sampled = w_dim, is_torgb, is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.in_sampling_rate, self.out_sampling_rate = float(in_sampling_rate), float(out_sampling_rate)
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = float(in_cutoff), float(out_cutoff)
        self.in_half_width, self.out_half_width = float(in_half_width), float(out_half_width)
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp, self.magnitude_ema_beta = conv_clamp, magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        assert in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        assert out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled

        def design(numtaps: int, cutoff: float, width: float, radial: bool) -> torch.Tensor | None:
            if numtaps == 1:
                return None
            if design_filters:
                return design_lowpass_filter(numtaps, cutoff, width, self.tmp_sampling_rate, radial)
            return torch.zeros([numtaps, numtaps] if radial else [numtaps])

        self.register_buffer("up_filter", design(self.up_taps, self.in_cutoff, self.in_half_width * 2, False))
        self.register_buffer("down_filter", design(self.down_taps, self.out_cutoff, self.out_half_width * 2,
                                                   self.down_radial))

        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]
        self.act = FilteredLReLU(self.up_factor, self.down_factor, self.padding, gain=1 if is_torgb else SQRT2,
                                 slope=1 if is_torgb else 0.2, clamp=conv_clamp, impl=resample_impl)

    def styles(self, w: torch.Tensor) -> torch.Tensor:
        """The layer's StyleSpace code s = affine(w) [B, in] (before ToRGB's 1/sqrt(in k^2) gain)."""
        return self.affine(w)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None, styles: torch.Tensor | None = None,
                style_offset: torch.Tensor | None = None, weight_delta: torch.Tensor | None = None,
                update_emas: bool = False) -> torch.Tensor:
        """x [B, in, in_size, in_size] -> [B, out, out_size, out_size]; `styles` replaces affine(w)."""
        if update_emas:
            with torch.no_grad():
                cur = x.detach().float().square().mean()
                self.magnitude_ema.copy_(cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()
        s = self.affine(w) if styles is None else styles
        if style_offset is not None:
            s = s + style_offset
        if self.is_torgb:
            s = s * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        x = modulated_conv2d(x.float(), self.weight, s, padding=self.conv_kernel - 1, demodulate=not self.is_torgb,
                             input_gain=input_gain, weight_delta=weight_delta)
        x = self.act(x, self.up_filter, self.down_filter, self.bias)
        expected = (x.shape[0], self.out_channels, int(self.out_size[1]), int(self.out_size[0]))
        assert tuple(x.shape) == expected, f"{tuple(x.shape)} != {expected}"
        return x

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, in={self.in_channels}, out={self.out_channels}, "
                f"in_size={list(self.in_size)}, out_size={list(self.out_size)}, up={self.up_factor}, "
                f"down={self.down_factor}, kernel={self.conv_kernel}, padding={self.padding}")
