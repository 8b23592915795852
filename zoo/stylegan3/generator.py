"""StyleGAN3 generator (configs T and R) with NVlabs' module tree, so `state_dict()` keys and shapes equal the official
`G_ema.state_dict()`, and the zoo's StyleGAN2 generator interface (`zoo.stylegan2.Generator`), so inverters and
editors can drive either.

Source: NVlabs/stylegan3 @ c233a919 `training/networks_stylegan3.py` (`SynthesisNetwork`, `Generator`), band-limit
schedule in `shared/reference/sg3/README.md` §4 / `anchors-wave2.md` §1.3; per-sample transforms, styles override and
input freezing as in yuval-alaluf/stylegan3-editing (`models/stylegan3/networks_stylegan3.py`, PTI scripts).

Interface shared with the StyleGAN2 generator:
* `G([w], input_is_latent=True, ...)` -> (image [B, C, R, R], latent or None); `G([z])` maps first; W [B, D] or
  W+ [B, num_ws, D]; two styles mix at `inject_index`; `truncation` / `truncation_latent` (default `mapping.w_avg`).
* `G.synthesis(ws, noise=None, weights_deltas=None, style_offsets=None, transform=None, styles=None, ...)`.
* `G.style(z)` / `G.get_latent(z)` -> w [B, D]; `n_latent` (= num_ws = 16 for every official model), `style_dim`,
  `size`, `device`, `layer_slots()`, `slot_latent_index()`, `style_codes(ws)`, `fixed_noise()` / `make_noise()`
  (empty: StyleGAN3 has no noise inputs), `mean_latent(n)`.
* NVlabs calls also work: `G(z, c, truncation_psi=..., truncation_cutoff=...)` when the first argument is a tensor,
  `G.mapping(z, c, ...)`.

User transforms (`transform=`): a tensor [3, 3] or [B, 3, 3] has buffer semantics -- the *inverse* of the image motion,
exactly what NVlabs stores in `synthesis.input.transform`; a tuple `(r_degrees, tx, ty)` of floats or [B] tensors is
the image motion itself (`make_transform` of stylegan3-editing) and is inverted here. Images are raw outputs
(x output_scale 0.25, no tanh/clamp).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..stylegan2.generator import LayerSlot
from .layers import MappingNetwork, SynthesisInput, SynthesisLayer
from .ops import ResampleImpl
from .transforms import TransformLike, as_generator_transform

NVLABS_LAYER_NAME = r"^L(\d+)_(\d+)_(\d+)$"


@dataclass(frozen=True)
class LayerSpec:
    """Derived numbers of one synthesis layer (index `idx`; the input uses index 0)."""

    idx: int
    size: int
    channels: int
    sampling_rate: float
    cutoff: float
    stopband: float
    half_width: float


def band_limit_schedule(img_resolution: int, img_channels: int, channel_base: int = 32768, channel_max: int = 512,
                        num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                        first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3,
                        margin_size: int = 10) -> list[LayerSpec]:
    """The num_layers + 1 specs of NVlabs `SynthesisNetwork.__init__` (cutoffs, stopbands, sampling rates,
    half-widths, sizes, channels with numpy's round-half-to-even)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return [LayerSpec(i, int(sizes[i]), int(channels[i]), float(sampling_rates[i]), float(cutoffs[i]),
                      float(stopbands[i]), float(half_widths[i])) for i in range(num_layers + 1)]


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, img_channels, R, R]; children `input` and `L{idx}_{size}_{channels}`."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, design_filters: bool = True,
                 resample_impl: ResampleImpl = "auto", **layer_kwargs: Any) -> None:
        super().__init__()
        self.w_dim, self.num_ws = w_dim, num_layers + 2
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.num_layers, self.num_critical, self.margin_size = num_layers, num_critical, margin_size
        self.output_scale, self.num_fp16_res = output_scale, num_fp16_res
        specs = band_limit_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                                    first_cutoff, first_stopband, last_stopband_rel, margin_size)
        self.specs = specs
        s0 = specs[0]
        self.input = SynthesisInput(w_dim, s0.channels, s0.size, s0.sampling_rate, s0.cutoff)
        self.layer_names: list[str] = []
        for spec in specs:
            prev = specs[max(spec.idx - 1, 0)]
            layer = SynthesisLayer(
                w_dim, is_torgb=spec.idx == num_layers, is_critically_sampled=spec.idx >= num_layers - num_critical,
                use_fp16=bool(spec.sampling_rate * (2 ** num_fp16_res) > img_resolution),
                in_channels=prev.channels, out_channels=spec.channels, in_size=prev.size, out_size=spec.size,
                in_sampling_rate=int(prev.sampling_rate), out_sampling_rate=int(spec.sampling_rate),
                in_cutoff=prev.cutoff, out_cutoff=spec.cutoff, in_half_width=prev.half_width,
                out_half_width=spec.half_width, design_filters=design_filters, resample_impl=resample_impl,
                **layer_kwargs)
            name = f"L{spec.idx}_{spec.size}_{spec.channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    @property
    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, n) for n in self.layer_names]

    def _per_layer(self, values: Sequence[torch.Tensor | None] | None, what: str) -> list[torch.Tensor | None]:
        n = len(self.layer_names)
        out = list(values) if values is not None else [None] * n
        if len(out) != n:
            raise ValueError(f"{what} needs {n} entries (one per synthesis layer), got {len(out)}")
        return out

    def forward(self, ws: torch.Tensor | None, noise: Sequence[Any] | None = None,
                weights_deltas: Sequence[torch.Tensor | None] | None = None,
                style_offsets: Sequence[torch.Tensor | None] | None = None, transform: TransformLike = None,
                styles: Sequence[torch.Tensor | None] | None = None, input_code: torch.Tensor | None = None,
                update_emas: bool = False, **ignored: Any) -> torch.Tensor:
        """Render ws [B, num_ws, w_dim] (or W [B, w_dim], broadcast) -> [B, img_channels, R, R].

        noise: accepted for interface compatibility, must be None or empty (StyleGAN3 has no noise inputs);
        weights_deltas: per layer None or broadcastable to [B, out, in, k, k] (HyperStyle W * (1 + delta));
        style_offsets: per layer None or [B|1, in] added to the layer's S code;
        transform: see module docstring (None = the `input.transform` buffer, [3, 3] or a batched [B, 3, 3]);
        styles: per layer None or a precomputed S code [B, in] (stylegan3-editing's `all_s`); ws may then be None
        when `input_code` [B, 4] (the normalised input affine output) is given too.
        `noise_mode`, `force_fp32` and other NVlabs keywords are accepted and ignored (float32 everywhere).
        """
        if noise is not None and len(noise) > 0:
            raise ValueError("StyleGAN3 has no noise inputs: pass noise=None")
        unknown = set(ignored) - {"noise_mode", "force_fp32", "randomize_noise"}
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}")
        deltas = self._per_layer(weights_deltas, "weights_deltas")
        offsets = self._per_layer(style_offsets, "style_offsets")
        given = self._per_layer(styles, "styles")
        if ws is not None:
            if ws.ndim == 2:
                ws = ws.unsqueeze(1).repeat(1, self.num_ws, 1)
            if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
                raise ValueError(f"ws of shape {tuple(ws.shape)} does not fit: expected [B, {self.num_ws}, "
                                 f"{self.w_dim}] or [B, {self.w_dim}]")
            ws = ws.float()
        elif input_code is None or any(s is None for s in given):
            raise ValueError("ws=None needs input_code and every layer's styles")
        device = (ws if ws is not None else input_code).device
        user = as_generator_transform(transform, device=device)
        x = self.input(ws[:, 0] if ws is not None else None, transform=user, t=input_code)
        for i, layer in enumerate(self.layers):
            w = ws[:, i + 1] if ws is not None else None
            x = layer(x, w, styles=given[i], style_offset=offsets[i], weight_delta=deltas[i], update_emas=update_emas)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x


class Generator(nn.Module):
    """StyleGAN3 generator: `synthesis` (SynthesisNetwork) + `mapping` (MappingNetwork), NVlabs constructor.

    Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={num_layers, lr_multiplier,
    w_avg_beta}, channel_base, channel_max, num_layers=14, ..., conv_kernel (3 = T, 1 = R), use_radial_filters,
    filter_size, lrelu_upsampling, conv_clamp=256, magnitude_ema_beta). `init_kwargs` keeps the arguments (what
    NVlabs pickles store). Extra: `design_filters=False` skips scipy (placeholders to be loaded), `resample_impl`.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, **synthesis_kwargs: Any) -> None:
        super().__init__()
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}),
                                **{k: v for k, v in synthesis_kwargs.items()
                                   if k not in ("design_filters", "resample_impl")})
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    # ------------------------------------------------------------------ StyleGAN2-interface attributes
    @property
    def n_latent(self) -> int:
        return self.num_ws

    @property
    def style_dim(self) -> int:
        return self.w_dim

    @property
    def size(self) -> int:
        return self.img_resolution

    @property
    def device(self) -> torch.device:
        return self.synthesis.input.weight.device

    @property
    def latent_avg(self) -> torch.Tensor:
        """The tracked average w `mapping.w_avg` [w_dim]."""
        return self.mapping.w_avg

    def get_latent(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Mapping network z [B, z_dim] -> w [B, w_dim] (no truncation)."""
        return self.mapping.map_w(z, c)

    @property
    def style(self):  # noqa: ANN201 - a callable z -> w, like the StyleGAN2 generator's `style` MLP
        """z [B, z_dim] -> w [B, w_dim] (the mapping without broadcast/truncation)."""
        return self.get_latent

    def fixed_noise(self) -> list[torch.Tensor]:
        """StyleGAN3 has no noise inputs: []."""
        return []

    def make_noise(self) -> list[torch.Tensor]:
        """StyleGAN3 has no noise inputs: []."""
        return []

    @torch.no_grad()
    def mean_latent(self, n_latent: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of `n_latent` mapped N(0, I) samples -> [1, w_dim]."""
        z = torch.randn(n_latent, self.z_dim, generator=generator).to(self.device)
        return self.get_latent(z).mean(0, keepdim=True)

    def layer_slots(self) -> list[LayerSlot]:
        """One slot per synthesis layer L0 ... L{num_layers} (the last is ToRGB), in forward order."""
        return [LayerSlot(i, name, layer.out_channels, layer.in_channels, layer.conv_kernel, layer.is_torgb)
                for i, (name, layer) in enumerate(zip(self.synthesis.layer_names, self.synthesis.layers))]

    def slot_latent_index(self) -> list[int]:
        """For each layer slot the W+ index it reads: layer i reads ws[:, i + 1] (ws[:, 0] drives the input)."""
        return [i + 1 for i in range(len(self.synthesis.layer_names))]

    def style_codes(self, latent: torch.Tensor) -> list[torch.Tensor]:
        """StyleSpace: the S code affine(ws[:, i + 1]) [B, in] of every layer slot (ToRGB before its weight gain)."""
        return [layer.styles(latent[:, i + 1]) for i, layer in enumerate(self.synthesis.layers)]

    def input_code(self, latent: torch.Tensor) -> torch.Tensor:
        """The input layer's code: normalised affine(ws[:, 0]) [B, 4] (rotation cos/sin, translation)."""
        return self.synthesis.input.affine_code(latent[:, 0])

    def tuning_parameters(self) -> dict[str, nn.Parameter]:
        """What pivotal tuning (PTI) changes: every synthesis parameter except the Fourier input layer's, named as in
        `named_parameters()` -- stylegan3-editing tunes `list(G.synthesis.parameters())[3:]` and leaves the mapping."""
        return {f"synthesis.{k}": p for k, p in self.synthesis.named_parameters() if not k.startswith("input.")}

    def input_parameters(self) -> list[nn.Parameter]:
        """The Fourier-feature input layer's parameters (input.weight, input.affine.*): the first three of
        `synthesis.parameters()`, which stylegan3-editing's PTI leaves frozen."""
        return list(self.synthesis.input.parameters())

    # ------------------------------------------------------------------ forward
    def forward(self, styles: Sequence[torch.Tensor] | torch.Tensor, *args: Any, return_latents: bool = False,
                inject_index: int | None = None, truncation: float = 1.0,
                truncation_latent: torch.Tensor | None = None, input_is_latent: bool = False,
                noise: Sequence[Any] | None = None, randomize_noise: bool = True,
                weights_deltas: Sequence[torch.Tensor | None] | None = None,
                style_offsets: Sequence[torch.Tensor | None] | None = None, transform: TransformLike = None,
                **kwargs: Any) -> Any:
        """StyleGAN2 interface (list of styles) -> (image, latent or None); NVlabs interface (z tensor, c, ...) ->
        image, with `truncation_psi`, `truncation_cutoff`, `update_emas` and synthesis keywords."""
        if isinstance(styles, torch.Tensor):
            c = args[0] if args else kwargs.pop("c", None)
            psi = kwargs.pop("truncation_psi", 1)
            cutoff = kwargs.pop("truncation_cutoff", None)
            update_emas = kwargs.pop("update_emas", False)
            ws = self.mapping(styles, c, truncation_psi=psi, truncation_cutoff=cutoff, update_emas=update_emas)
            return self.synthesis(ws, weights_deltas=weights_deltas, style_offsets=style_offsets,
                                  transform=transform, update_emas=update_emas, **kwargs)
        if args:
            raise TypeError("pass options of the StyleGAN2 interface as keywords")
        if not isinstance(styles, (list, tuple)):
            raise TypeError("styles must be a list of tensors, e.g. G([w], input_is_latent=True)")
        if not input_is_latent:
            styles = [self.get_latent(s) for s in styles]
        for s in styles:
            if s.shape[-1] != self.w_dim or s.ndim not in (2, 3) or (s.ndim == 3 and s.shape[1] != self.num_ws):
                raise ValueError(f"style of shape {tuple(s.shape)} does not fit this generator: expected "
                                 f"[B, {self.w_dim}] or [B, {self.num_ws}, {self.w_dim}]")
        if truncation < 1:
            t = self.mapping.w_avg if truncation_latent is None else truncation_latent
            styles = [t + truncation * (s - t) for s in styles]
        if len(styles) < 2:
            s = styles[0]
            latent = s.unsqueeze(1).repeat(1, self.num_ws, 1) if s.ndim < 3 else s
        else:
            if inject_index is None:
                inject_index = random.randint(1, self.num_ws - 1)
            s1, s2 = styles[0], styles[1]
            l1 = s1[:, :inject_index] if s1.ndim == 3 else s1.unsqueeze(1).repeat(1, inject_index, 1)
            l2 = s2[:, inject_index:] if s2.ndim == 3 else s2.unsqueeze(1).repeat(1, self.num_ws - inject_index, 1)
            latent = torch.cat([l1, l2], 1)
        image = self.synthesis(latent, noise, weights_deltas=weights_deltas, style_offsets=style_offsets,
                               transform=transform, **kwargs)
        return image, (latent if return_latents else None)
