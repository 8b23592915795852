"""StyleGAN3 resampling ops with the semantics of NVlabs' pure-PyTorch reference paths.

Source: NVlabs/stylegan3 @ c233a919 `torch_utils/ops/upfirdn2d.py:_upfirdn2d_ref`, `bias_act.py:_bias_act_ref` and
`filtered_lrelu.py:_filtered_lrelu_ref` (semantics restated in `shared/reference/sg3/README.md` §4 and
`anchors-wave2.md` §1.6). No official code is copied.

* `upfirdn2d(x, f, up, down, padding, gain)`: zero-insertion upsampling, pad (negative = crop), *true* convolution
  with `f` (the filter is flipped, as the reference does without `flip_filter`), keep every `down`-th sample. A 1-D
  `f` [K] is applied separably (x, then y), scaled by `gain ** 0.5` per pass; a 2-D `f` [K, K] by `gain`.
* `filtered_lrelu(...)`: bias -> upfirdn2d(fu, up, padding, gain=up**2) -> leaky ReLU * gain -> clamp ->
  upfirdn2d(fd, down). Two implementations with the same maths: `impl="conv"` (depthwise convolutions, like the
  reference) and `impl="matmul"` (each separable 1-D resampling folded into one dense [n_in, n_out] matrix, built by
  running the 1-D reference on an identity; exact up to float32 summation order and 2-3x faster on a CPU for maps of
  up to a few hundred samples). `impl="auto"` takes matmul for maps <= `MATMUL_MAX_SIZE` samples.
* `design_lowpass_filter(...)`: the official filter design (Kaiser-windowed `scipy.signal.firwin`, or the radial
  jinc x outer-Kaiser window of config R); used only when a new network is constructed -- loaded networks keep their
  stored buffers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

ResampleImpl = Literal["auto", "matmul", "conv"]
MATMUL_MAX_SIZE = 320  # above this many (upsampled) samples per axis, dense matrices cost more than convolutions


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
                          ) -> torch.Tensor | None:
    """Low-pass FIR taps [numtaps] (separable) or [numtaps, numtaps] (radial), float32; None when numtaps == 1.

    Separable: `scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)` (Kaiser window). Radial (StyleGAN3-R,
    non-critically-sampled layers): jinc J1(2 pi cutoff r) / (pi r) on the tap grid (r in units of 1/fs) times the
    outer product of two Kaiser windows whose beta follows from the same attenuation formula, normalised to sum 1.
    Source: NVlabs `networks_stylegan3.py:SynthesisLayer.design_lowpass_filter`.
    """
    import scipy.signal
    import scipy.special

    assert numtaps >= 1
    if numtaps == 1:
        return None
    if not radial:
        f = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return torch.as_tensor(f, dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    w = np.kaiser(numtaps, beta)
    f *= np.outer(w, w)
    f /= np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)


# --------------------------------------------------------------------------------------------- reference path
def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
              padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Reference upfirdn2d on x [B, C, H, W] with padding (x0, x1, y0, y1); f None = no filtering (1x1 tap)."""
    batch, channels, in_h, in_w = x.shape
    px0, px1, py0, py1 = (int(p) for p in padding)
    if up > 1:
        x = x.reshape(batch, channels, in_h, 1, in_w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, in_h * up, in_w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    if f is None:  # a single tap of value 1 (times gain)
        x = x * gain if gain != 1 else x
    elif f.ndim == 2:
        f = (f * gain).to(x.dtype).flip([0, 1])
        x = F.conv2d(x, f[None, None].repeat(channels, 1, 1, 1), groups=channels)
    else:
        f = (f * gain ** 0.5).to(x.dtype).flip([0])
        kernel = f[None, None].repeat(channels, 1, 1)  # [C, 1, K]
        x = F.conv2d(x, kernel.unsqueeze(2), groups=channels)
        x = F.conv2d(x, kernel.unsqueeze(3), groups=channels)
    return x[:, :, ::down, ::down]


def resample_matrix(n_in: int, f: torch.Tensor | None, up: int, down: int, pad: tuple[int, int], gain: float
                    ) -> torch.Tensor:
    """Dense [n_in, n_out] matrix M with `x @ M` = the 1-D upfirdn (zero-insert `up`, pad, convolve with 1-D `f`
    scaled by `gain`, decimate by `down`) along the last axis. Built on the CPU in float64 (callers move it) by running
    the 1-D reference pass on an identity.
    """
    x = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, 1, n_in)
    f1 = f.detach().double().cpu() if f is not None else torch.ones(1, dtype=torch.float64)
    # only the x pass: a [1, K] 2-D filter, scaled by gain (= one 1-D pass of the separable reference)
    out = upfirdn2d_1d(x, f1, up, down, pad, gain)
    return out.reshape(n_in, -1)


def upfirdn2d_1d(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad: tuple[int, int], gain: float
                 ) -> torch.Tensor:
    """One separable pass of the reference along the last axis of x [N, C, 1, W] (f [K], scaled by `gain`)."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, w, 1), [0, up - 1]).reshape(n, c, h, w * up)
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0)])
    x = x[..., max(-p0, 0): x.shape[-1] - max(-p1, 0)]
    k = (f * gain).flip(0).to(x.dtype)
    x = F.conv2d(x, k.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return x[..., ::down]


# --------------------------------------------------------------------------------------------- filtered lrelu
def leaky_relu_clamp_(x: torch.Tensor, slope: float, gain: float, clamp: float | None) -> torch.Tensor:
    """In place: clamp(leaky_relu(x, slope) * gain, -clamp, clamp) (NVlabs `bias_act` 'lrelu' with gain and clamp)."""
    if slope != 1.0:
        F.leaky_relu_(x, slope)
    if gain != 1.0:
        x.mul_(gain)
    if clamp is not None:
        x.clamp_(-clamp, clamp)
    return x


class FilteredLReLU:
    """Filtered leaky ReLU of one synthesis layer (fixed up/down factors, padding and output size).

    `__call__(x, fu, fd, bias)` -> [B, C, out_h, out_w]. The matmul path caches its matrices per (device, dtype,
    filter storage and version), so a state-dict load (which bumps the buffers' version) rebuilds them.
    """

    def __init__(self, up: int, down: int, padding: Sequence[int], gain: float, slope: float,
                 clamp: float | None, impl: ResampleImpl = "auto") -> None:
        self.up, self.down = int(up), int(down)
        self.padding = [int(p) for p in padding]
        self.gain, self.slope, self.clamp = float(gain), float(slope), clamp
        self.impl: ResampleImpl = impl
        self._cache: dict[tuple, torch.Tensor] = {}

    def _activate(self, x: torch.Tensor, apply_gain: bool = True) -> torch.Tensor:
        """leaky ReLU (slope) x gain (unless already folded into the up-sampling), then clamp; in place on the fresh
        tensor x when autograd does not need it (a fused autograd Function measured slower than torch's kernels)."""
        gain = self.gain if apply_gain else 1.0
        clamp = self.clamp if self.clamp is not None and self.clamp >= 0 else None
        if self.slope == 1.0 and gain == 1.0 and clamp is None:
            return x
        if not (torch.is_grad_enabled() and x.requires_grad):
            return leaky_relu_clamp_(x, self.slope, gain, clamp)
        if self.slope != 1.0:
            x = F.leaky_relu(x, self.slope)
        if gain != 1.0:
            x = x * gain
        if clamp is not None:
            # the clamp (256) rarely triggers; when nothing exceeds it, it is the identity for values and gradients,
            # and one read-only min/max pass is cheaper than clamp + its masked backward (~20 % of a training step)
            lo, hi = torch.aminmax(x.detach())
            if float(lo) < -clamp or float(hi) > clamp:
                x = x.clamp(-clamp, clamp)
        return x

    def _use_matmul(self, x: torch.Tensor) -> bool:
        if self.impl != "auto":
            return self.impl == "matmul"
        return max(x.shape[-1], x.shape[-2]) * self.up <= MATMUL_MAX_SIZE

    def __call__(self, x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None,
                 bias: torch.Tensor | None) -> torch.Tensor:
        if bias is not None:
            x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
        matmul = self._use_matmul(x)
        # the activation gain (> 0) commutes with the leaky ReLU: the matmul path folds it into the x-axis matrix
        fold = matmul and self.gain > 0
        if matmul:
            h, w = x.shape[-2], x.shape[-1]
            px0, px1, py0, py1 = self.padding
            ux = self._matrix(w, fu, self.up, 1, (px0, px1), self.up * (self.gain if fold else 1.0), x)
            uy_t = self._matrix(h, fu, self.up, 1, (py0, py1), float(self.up), x).t()
            x = torch.matmul(uy_t, torch.matmul(x, ux))
        else:
            x = upfirdn2d(x, fu, up=self.up, padding=self.padding, gain=self.up ** 2)
        x = self._activate(x, apply_gain=not fold)
        if matmul and (fd is None or fd.ndim == 1):
            dx = self._matrix(x.shape[-1], fd, 1, self.down, (0, 0), 1.0, x)
            dy_t = self._matrix(x.shape[-2], fd, 1, self.down, (0, 0), 1.0, x).t()
            return torch.matmul(dy_t, torch.matmul(x, dx))
        return downsample2d(x, fd, self.down)

    def _matrix(self, n: int, f: torch.Tensor | None, up: int, down: int, pad: tuple[int, int], gain: float,
                like: torch.Tensor) -> torch.Tensor:
        """The cached [n, n_out] matrix of one separable 1-D resampling pass (dtype/device of `like`)."""
        fkey = None if f is None else (f.data_ptr(), f._version, tuple(f.shape))
        key = (n, up, down, pad, gain, like.dtype, like.device, fkey)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 32:
                self._cache.clear()
            hit = resample_matrix(n, f, up, down, pad, gain).to(device=like.device, dtype=like.dtype)
            self._cache[key] = hit
        return hit


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down: int) -> torch.Tensor:
    """`upfirdn2d(x, f, down=down)` (no padding, gain 1) with strided convolutions: the same sums, only the kept
    samples are computed."""
    if f is None:
        return x[:, :, ::down, ::down]
    channels = x.shape[1]
    if f.ndim == 2:
        k = f.to(x.dtype).flip([0, 1])[None, None].repeat(channels, 1, 1, 1)
        return F.conv2d(x, k, stride=down, groups=channels)
    k = f.to(x.dtype).flip([0])[None, None].repeat(channels, 1, 1)
    x = F.conv2d(x, k.unsqueeze(2), stride=(1, down), groups=channels)
    return F.conv2d(x, k.unsqueeze(3), stride=(down, 1), groups=channels)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, padding: int, demodulate: bool,
                     input_gain: torch.Tensor | None = None, weight_delta: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN3 modulated convolution (NVlabs `networks_stylegan3.py:modulated_conv2d`).

    x [B, in, H, W]; weight [out, in, k, k]; styles [B, in]; padding k - 1 ("full" conv). With `demodulate`, the
    weight is RMS-normalised per output channel and the styles by their RMS over the whole [B, in] tensor, then
    w_b = W s_b is demodulated with rsqrt(sum w_b^2 + 1e-8); the (scalar) `input_gain` multiplies afterwards.
    `weight_delta` (HyperStyle): None or broadcastable to [B, out, in, k, k]; the weight becomes W * (1 + delta).
    Without a delta the batched path modulates activations (conv(x * s) * dcoef), mathematically equal to the grouped
    per-sample conv. Returns [B, out, H + 2 padding - k + 1, ...].
    """
    batch, in_ch = styles.shape
    if weight_delta is not None:
        w = weight.unsqueeze(0) * (1 + weight_delta)  # [B|1, out, in, k, k]
        if demodulate:
            w = w * w.square().mean([2, 3, 4], keepdim=True).rsqrt()
            styles = styles * styles.square().mean().rsqrt()
        w = w * styles.reshape(batch, 1, in_ch, 1, 1)
        if demodulate:
            w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
        if input_gain is not None:
            w = w * input_gain
        out_ch, k = w.shape[1], w.shape[-1]
        out = F.conv2d(x.reshape(1, batch * in_ch, *x.shape[2:]), w.reshape(batch * out_ch, in_ch, k, k).to(x.dtype),
                       padding=padding, groups=batch)
        return out.reshape(batch, out_ch, *out.shape[2:])
    w = weight
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    out = F.conv2d(x * styles.reshape(batch, in_ch, 1, 1).to(x.dtype), w.to(x.dtype), padding=padding)
    if demodulate:
        dcoefs = (styles.square() @ w.square().sum([2, 3]).t() + 1e-8).rsqrt()  # [B, out]
        if input_gain is not None:
            dcoefs = dcoefs * input_gain
        return out * dcoefs.reshape(batch, -1, 1, 1).to(x.dtype)
    if input_gain is not None:
        out = out * input_gain
    return out


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """a + t (b - a) (torch.lerp), as NVlabs' truncation `w_avg.lerp(w, psi)`."""
    return torch.lerp(a, b, t)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x * rsqrt(mean(x^2, dim) + eps)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


SQRT2 = math.sqrt(2.0)
