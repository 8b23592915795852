"""HyperStyle hypernetwork (yuval-alaluf/hyperstyle `models/hypernetworks/*`) and the HyperStyle iteration.

`SharedWeightsHyperNetResNet`: ResNet34 backbone (6-channel input concat(x, y_prev), final map [B, C, S/16, S/16]),
then one refinement block per generator layer slot (HyperStyle's `weights_deltas` order = `Generator.layer_slots()`):
* shared layers (officially 0,2,3,5,6,8,9,11,12: the 3x3 512->512 convs): `HyperRefinementBlock` -> code z
  [B, z_dim] -> the ONE `SharedWeightsHypernet` -> full per-tap offsets [B, out, in, 3, 3];
* other tuned layers: `RefinementBlock` -> channel-wise offsets. Officially [B, out, in] repeated to
  [B, out, in, k, k]; here returned compactly as [B, out, in, 1, 1] by default (`compact_deltas=True`): zoo's
  Generator broadcasts them against W [1, out, in, k, k], which gives bit-identical images. Use
  `expand_deltas` (or compact_deltas=False) for the official shapes. toRGB slots (only if tuned): [B, 3, in, 1, 1];
* untuned layers: None.
The generator applies W' = W * (1 + delta) before modulation/demodulation.

The `PARAMETERS` table (slot -> [k, in, out]) is derived from the generator's `layer_slots()`, so any channel table
works; for a 1024 config-f generator it equals the official hard-coded table.

Iteration (`hyperstyle_steps` / `run_hyperstyle`): codes = W-encoder(x) + latent_avg (frozen, no grad),
y_0 = pool(G(codes)); delta_t = delta_{t-1} + H(cat(x, y_{t-1})); y_t = G(codes, weights_deltas=delta_t).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..stylegan2.generator import Generator, LayerSlot
from ..stylegan2.layers import EqualLinear
from .backbones import TOTAL_STRIDE, ResNetBackbone, ResNetConfig, check_input, check_input_size
from .restyle import Feedback, latent_avg_wplus, pool_to

OFFICIAL_SHARED_LAYERS = (0, 2, 3, 5, 6, 8, 9, 11, 12)
DEFAULT_LAYERS_TO_TUNE = (0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24)  # all non-toRGB convs (1024)
DEFAULT_LAYERS_TO_TUNE_STR = ",".join(str(i) for i in DEFAULT_LAYERS_TO_TUNE)

Deltas = list[torch.Tensor | None]


def _init(*shape: int) -> torch.Tensor:
    """Official init fmod(randn / 40, 2) on the current default device (meta tensors hold no values: no fmod, whose
    meta implementation imports torch._refs and costs seconds)."""
    w = torch.randn(*shape) / 40
    return w if w.device.type == "meta" else torch.fmod(w, 2)


class SharedWeightsHypernet(nn.Module):
    """Ha et al. hypernetwork: code z [B, z_dim] -> kernel offsets [B, out_size, in_size, f, f].

    w2 [z_dim, in*z_dim], b2 [in*z_dim], w1 [z_dim, out*f*f], b1 [out*f*f];
    h = (z @ w2 + b2).view(B, in, z_dim);  kernel = (h @ w1 + b1).view(B, out, in, f, f)   (plain views).
    Init: fmod(randn / 40, 2) for all four (officially created on CUDA; here on the current default device).
    mode 'delta_per_channel': f = 1 and the kernel is repeated to 3x3 (unused by the released models).
    """

    def __init__(self, f_size: int = 3, z_dim: int = 512, out_size: int = 512, in_size: int = 512,
                 mode: str | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.z_dim = z_dim
        self.f_size = 1 if mode == "delta_per_channel" else f_size
        self.out_size = out_size
        self.in_size = in_size
        f = self.f_size
        self.w1 = nn.Parameter(_init(z_dim, out_size * f * f))
        self.b1 = nn.Parameter(_init(out_size * f * f))
        self.w2 = nn.Parameter(_init(z_dim, in_size * z_dim))
        self.b2 = nn.Parameter(_init(in_size * z_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0]
        h_in = (torch.matmul(z, self.w2) + self.b2).view(batch, self.in_size, self.z_dim)
        h_final = torch.matmul(h_in, self.w1) + self.b1
        kernel = h_final.view(batch, self.out_size, self.in_size, self.f_size, self.f_size)
        if self.mode == "delta_per_channel":
            kernel = kernel.repeat(1, 1, 1, 3, 3)
        return kernel


class RefinementBlock(nn.Module):
    """Independent (non-shared) refinement head for one generator layer.

    convs: Conv3x3 s2 (n_channels->inner_c) + LeakyReLU, (num_pools-1) x Conv3x3 s2 (inner_c) + LeakyReLU,
    Conv3x3 s2 (inner_c->out_c) + LeakyReLU, with num_pools = log2(spatial) - 1 (- 1 more for k=3).
    k=3 layer: `output` = [AdaptiveAvgPool(1), Conv1x1(out_c -> in*out)] -> [B, out, in] channel-wise offsets,
    returned as [B, out, in, 1, 1] (compact) or repeated to [B, out, in, k, k] (official).
    toRGB layer: `output` = [Conv1x1(out_c -> in*out)] on the 1x1 map -> [B, out, in, 1, 1].
    Input: backbone map [B, n_channels, spatial, spatial] (official 512 x 16 x 16).
    """

    def __init__(
        self, layer_idx: int, kernel_size: int, in_channels: int, out_channels: int, is_torgb: bool,
        n_channels: int = 512, inner_c: int = 256, out_c: int = 512, spatial: int = 16, compact: bool = True,
    ) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.kernel_size, self.in_channels, self.out_channels = kernel_size, in_channels, out_channels
        self.is_torgb = is_torgb
        self.compact = compact
        num_pools = int(math.log2(spatial)) - 1
        if kernel_size == 3:
            num_pools -= 1
        modules: list[nn.Module] = [nn.Conv2d(n_channels, inner_c, 3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            modules += [nn.Conv2d(inner_c, inner_c, 3, stride=2, padding=1), nn.LeakyReLU()]
        modules += [nn.Conv2d(inner_c, out_c, 3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*modules)
        head = nn.Conv2d(out_c, in_channels * out_channels, kernel_size=1, stride=1, padding=0)
        self.output = nn.Sequential(head) if is_torgb else nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.output(self.convs(x))
        if self.is_torgb:
            k = self.kernel_size
            return x.view(-1, self.out_channels, self.in_channels, k, k)
        x = x.view(-1, self.out_channels, self.in_channels, 1, 1)
        if self.compact:
            return x
        return x.repeat(1, 1, 1, self.kernel_size, self.kernel_size)


class HyperRefinementBlock(nn.Module):
    """Shared-layer head: Conv3x3 s1 (n_channels->inner_c), (log2(spatial)-1) x Conv3x3 s2 (inner_c), Conv3x3 s2
    (inner_c->z_dim), LeakyReLU after each; `linear` EqualLinear(z_dim, z_dim) -> z; `hypernet` (shared) -> kernel.

    Input [B, n_channels, spatial, spatial] -> offsets [B, out, in, f, f] of the shared hypernet.
    """

    def __init__(self, hypernet: SharedWeightsHypernet, n_channels: int = 512, inner_c: int = 128,
                 spatial: int = 16) -> None:
        super().__init__()
        self.out_c = hypernet.z_dim
        num_pools = int(math.log2(spatial))
        modules: list[nn.Module] = [nn.Conv2d(n_channels, inner_c, 3, stride=1, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            modules += [nn.Conv2d(inner_c, inner_c, 3, stride=2, padding=1), nn.LeakyReLU()]
        modules += [nn.Conv2d(inner_c, self.out_c, 3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*modules)
        self.linear = EqualLinear(self.out_c, self.out_c, lr_mul=1)
        self.hypernet = hypernet

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        code = self.convs(features).view(-1, self.out_c)
        return self.hypernet(self.linear(code))


def parse_layers_to_tune(layers_to_tune: str | Sequence[int] | None, n_outputs: int) -> list[int]:
    """Official semantics: comma string ('' -> all outputs, toRGB included); None -> the released default
    (all non-toRGB convs). Indices >= n_outputs are ignored."""
    if layers_to_tune is None:
        wanted: list[int] = list(DEFAULT_LAYERS_TO_TUNE)
    elif isinstance(layers_to_tune, str):
        text = layers_to_tune.strip()
        try:
            wanted = list(range(n_outputs)) if not text else [int(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"layers_to_tune must be comma-separated integers, got {layers_to_tune!r}") from None
    else:
        wanted = [int(v) for v in layers_to_tune]
    return sorted({i for i in wanted if 0 <= i < n_outputs})


def parameters_table(slots: Sequence[LayerSlot]) -> dict[int, tuple[int, int, int]]:
    """HyperStyle's PARAMETERS: slot index -> (kernel_size, in_channels, out_channels)."""
    return {s.index: (s.kernel_size, s.in_channels, s.out_channels) for s in slots}


class SharedWeightsHyperNetResNet(ResNetBackbone):
    """HyperStyle hypernetwork: x [B, input_nc, S, S] (concat(image, y_prev), [-1, 1]) -> list of len(slots) deltas.

    Keys (official order): conv1, bn1, relu, body.*, shared_weight_hypernet.{w1,b1,w2,b2},
    refinement_blocks.{L}.* (None entries for untuned L; shared blocks list the shared hypernet again as
    refinement_blocks.{L}.hypernet.*, as the official state_dict does).

    layer_slots: `Generator.layer_slots()` of the target generator. The shared hypernet's in/out sizes are those of
    slot 0 (conv1); `shared_layers` defaults to the official list restricted to 3x3 slots of exactly that shape
    (identical to the official list for config-f generators); other tuned slots get a `RefinementBlock`.
    Small configs: backbone=ResNetConfig(...), input_size, z_dim, refine_inner/refine_out, hyper_inner.
    """

    def __init__(
        self, layer_slots: Sequence[LayerSlot], layers_to_tune: str | Sequence[int] | None = None, input_nc: int = 6,
        input_size: int = 256, backbone: ResNetConfig | None = None, z_dim: int = 512, refine_inner: int = 256,
        refine_out: int = 512, hyper_inner: int = 128, shared_layers: Sequence[int] | None = None,
        compact_deltas: bool = True,
    ) -> None:
        super().__init__(input_nc, backbone)
        check_input_size(input_size)
        slots = list(layer_slots)
        if [s.index for s in slots] != list(range(len(slots))) or not slots:
            raise ValueError("layer_slots must be Generator.layer_slots() (indices 0..n-1 in order)")
        self.input_size = input_size
        self.slots = slots
        self.n_outputs = len(slots)
        self.PARAMETERS = parameters_table(slots)
        self.layers_to_tune = parse_layers_to_tune(layers_to_tune, self.n_outputs)
        shared_in, shared_out = slots[0].in_channels, slots[0].out_channels
        if shared_layers is None:
            shared_layers = [
                i for i in OFFICIAL_SHARED_LAYERS if i < self.n_outputs and not slots[i].is_torgb
                and (slots[i].kernel_size, slots[i].in_channels, slots[i].out_channels) == (3, shared_in, shared_out)
            ]
        self.shared_layers = list(shared_layers)
        for i in self.shared_layers:
            s = slots[i]
            if (s.kernel_size, s.in_channels, s.out_channels) != (3, shared_in, shared_out):
                raise ValueError(f"shared layer {i} ({s.name}) is not a 3x3 {shared_in}->{shared_out} conv")
        self.shared_weight_hypernet = SharedWeightsHypernet(3, z_dim, out_size=shared_out, in_size=shared_in)
        spatial = input_size // TOTAL_STRIDE
        blocks: list[nn.Module | None] = []
        for s in slots:
            if s.index not in self.layers_to_tune:
                blocks.append(None)
            elif s.index in self.shared_layers:
                shared = self.shared_weight_hypernet
                blocks.append(HyperRefinementBlock(shared, self.out_channels, hyper_inner, spatial))
            else:
                blocks.append(RefinementBlock(s.index, s.kernel_size, s.in_channels, s.out_channels, s.is_torgb,
                                              self.out_channels, refine_inner, refine_out, spatial, compact_deltas))
        self.refinement_blocks = nn.ModuleList(blocks)  # type: ignore[arg-type]  (None entries, as official)

    @classmethod
    def for_generator(cls, generator: Generator, **kwargs: object) -> SharedWeightsHyperNetResNet:
        return cls(generator.layer_slots(), **kwargs)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> Deltas:
        check_input(x, self.input_nc, self.input_size, type(self).__name__)
        feat = self.body(self.stem_forward(x))
        return [block(feat) if block is not None else None for block in self.refinement_blocks]


def expand_deltas(deltas: Sequence[torch.Tensor | None], slots: Sequence[LayerSlot]) -> Deltas:
    """Compact [B, out, in, 1, 1] channel-wise offsets -> the official [B, out, in, k, k] (repeated over taps)."""
    out: Deltas = []
    for d, s in zip(deltas, slots):
        if d is not None and d.shape[-1] == 1 and s.kernel_size > 1:
            d = d.repeat(1, 1, 1, s.kernel_size, s.kernel_size)
        out.append(d)
    return out


def accumulate_deltas(previous: Sequence[torch.Tensor | None] | None, new: Sequence[torch.Tensor | None]) -> Deltas:
    """Official accumulation: delta_i <- delta_i + new_i where delta_i is not None, else None."""
    if previous is None:
        return list(new)
    return [p + n if p is not None else None for p, n in zip(previous, new)]


# --------------------------------------------------------------------------------------------- iteration
@dataclass
class HyperStyleStep:
    """One HyperStyle iteration: accumulated deltas, image_t = G(codes, deltas) [B, 3, G, G] and its pooled
    feedback [B, 3, h, w]."""

    index: int
    weights_deltas: Deltas
    image: torch.Tensor
    feedback: torch.Tensor


@dataclass
class HyperStyleResult:
    """codes [B, n_styles, D] (fixed initial W inversion), init_image = G(codes) [B, 3, G, G], per-iteration images
    and the final accumulated weights_deltas."""

    codes: torch.Tensor
    init_image: torch.Tensor
    images: list[torch.Tensor]
    weights_deltas: Deltas


@torch.no_grad()
def initial_inversion(
    w_encoder: nn.Module, generator: Generator, latent_avg: torch.Tensor, x: torch.Tensor,
    feedback: Feedback | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HyperStyle's frozen W inversion: codes = E_w(x) + latent_avg -> (codes [B, n_styles, D], image, pooled image).

    The W-encoder is put in eval mode (as the official code does) and run without gradients.
    """
    if w_encoder.training:
        w_encoder.eval()
    codes = w_encoder(x)
    lat = latent_avg_wplus(latent_avg, generator.n_latent).to(codes)
    codes = codes + lat[0] if codes.ndim == 2 else codes + lat.unsqueeze(0)
    if codes.ndim == 2:
        codes = codes.unsqueeze(1).repeat(1, generator.n_latent, 1)
    image, _ = generator([codes], input_is_latent=True, randomize_noise=False)
    fb = feedback or pool_to(x.shape[-2:])
    return codes, image, fb(image)


def hyperstyle_steps(
    hypernet: nn.Module, generator: Generator, x: torch.Tensor, codes: torch.Tensor, y0: torch.Tensor,
    n_iters: int = 5, *, feedback: Feedback | None = None, randomize_noise: bool = False, detach: bool = True,
) -> Iterator[HyperStyleStep]:
    """Yield HyperStyle iterations for x [B, 3, h, w] in [-1, 1], fixed codes [B, n_styles, D] and y0 [B, 3, h, w]
    (from `initial_inversion` or pre-computed W inversions).

    delta_t = delta_{t-1} + H(cat(x, y_{t-1})) (None kept for untuned layers), y_t = G(codes, weights_deltas=delta_t).
    detach=True detaches y_{t-1} and delta_{t-1} between iterations (official training loop).
    """
    if n_iters < 1:
        raise ValueError(f"n_iters must be >= 1, got {n_iters}")
    fb = feedback or pool_to(x.shape[-2:])
    y_prev = y0
    deltas: Deltas | None = None
    for t in range(n_iters):
        if detach and deltas is not None:
            y_prev = y_prev.detach()
            deltas = [d.detach() if d is not None else None for d in deltas]
        deltas = accumulate_deltas(deltas, hypernet(torch.cat([x, y_prev], dim=1)))
        image, _ = generator([codes], input_is_latent=True, randomize_noise=randomize_noise, weights_deltas=deltas)
        y = fb(image)
        yield HyperStyleStep(t, deltas, image, y)
        y_prev = y


def run_hyperstyle(
    hypernet: nn.Module, generator: Generator, x: torch.Tensor, n_iters: int = 5, *,
    w_encoder: nn.Module | None = None, latent_avg: torch.Tensor | None = None, codes: torch.Tensor | None = None,
    feedback: Feedback | None = None,
) -> HyperStyleResult:
    """Full HyperStyle inversion: the initial W inversion (w_encoder + latent_avg, or given `codes`), then n_iters
    hypernetwork iterations. Returns codes, the initial image, per-iteration images and the final deltas."""
    fb: Callable[[torch.Tensor], torch.Tensor] = feedback or pool_to(x.shape[-2:])
    if codes is None:
        if w_encoder is None or latent_avg is None:
            raise ValueError("run_hyperstyle needs w_encoder and latent_avg, or pre-computed codes")
        codes, init_image, y0 = initial_inversion(w_encoder, generator, latent_avg, x, fb)
    else:
        with torch.no_grad():
            init_image, _ = generator([codes], input_is_latent=True, randomize_noise=False)
        y0 = fb(init_image)
    images: list[torch.Tensor] = []
    deltas: Deltas = []
    for step in hyperstyle_steps(hypernet, generator, x, codes, y0, n_iters, feedback=fb):
        images.append(step.image)
        deltas = step.weights_deltas
    return HyperStyleResult(codes, init_image, images, deltas)
