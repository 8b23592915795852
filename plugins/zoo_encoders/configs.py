"""Small configurations of the encoders (the same `zoo.encoders` classes as the paper configuration, narrower).

Paper configuration (official checkpoints, `weights=PATH`): IR-SE50 / ResNet34 at 256x256 input, style_dim 512,
18 styles; pSp 267 M parameters, ReStyle 205 M, HyperStyle 333 M (+ its IR-SE50 W-encoder) -- see anchors §5-8.

Small configuration for a small domain (peeps: 32x32, n_styles 8, w_dim 128). What is kept and what is scaled:

* Topology is untouched: four backbone stages with total stride 16, so at 32x32 input the stage maps are
  16/8/4/2 px (official at 256: 128/64/32/16). pSp's FPN still taps the ends of stages 2/3/4 (8x8, 4x4, 2x2), the
  coarse/medium/fine split stays 3 / 7 (styles 0-2 read c3, 3-6 read p2, 7 reads p1), map2style blocks still reduce
  their map to 1x1 with log2(spatial) stride-2 convs, ReStyle reads every style from the final 2x2 map, HyperStyle
  keeps shared vs. non-shared refinement blocks and the released `layers_to_tune` (all non-toRGB convs; on the
  32x32 peeps generator: slots 0,2,3,5,6,8,9; shared = 0,2,3, the 3x3 128->128 convs).
* Widths: the official channel table (64, 128, 256, 512) divided by 4 -> (16, 32, 64, 128): the final map then has
  128 channels = w_dim, exactly as officially 512 = w_dim (map2style blocks are C->w_dim convs).
* Depth: IR-SE50 has (3, 4, 14, 3) units per stage; we keep (1, 1, 2, 1) -- at 32x32 the receptive field of the
  2x2 final map already covers the image, and the ~100 x smaller compute budget (90 CPU-minutes vs. ~1 GPU-week)
  is better spent on optimiser steps. ResNet34's (3, 4, 6, 3) becomes (1, 2, 2, 1) for the same reason.
* HyperStyle heads: refinement convs inner 256 -> 64, out 512 -> 128 (= backbone width, as officially), the
  shared-hypernet code z_dim 512 -> 64 (official z_dim = 512 = the shared conv's width; a faithful 128 would make
  the shared hypernet's w2 [z, in*z] 2.1 M parameters alone), HyperRefinementBlock inner 128 -> 32.
* Sizes (parameters, fp16 MB) for peeps: pSp / e4e 2.60 M (5.2 MB) each, ReStyle-pSp / ReStyle-e4e IR-SE 1.70 M
  (3.4 MB) each (ResNet variants 1.72 M, 3.4 MB), W-encoder 0.40 M (0.8 MB), HyperStyle hypernet 3.76 M (7.5 MB).
  The shipped set (pSp, e4e, ReStyle-pSp, ReStyle-e4e with the IR-SE backbone, HyperStyle + its W-encoder) is
  25.5 MB < 30 MB; the ReStyle ResNet34 variants (+6.9 MB) are trainable but not shipped by default. Most
  parameters sit in the map2style heads (C x w_dim x 3 x 3 convs), whose width is fixed by w_dim.
* Compute (one thread, batch 8, encoder + generator + LPIPS@64 + identity, forward and backward): pSp 0.34 s per
  step on a quiet core of the reference box (~0.7-0.8 s when the box is busy), e4e 0.57 s, W-encoder 0.43 s,
  ReStyle 2.3 s and HyperStyle 2.6 s per 5-iteration step, i.e. 7k-16k pSp steps or 1.4k-2.4k ReStyle /
  HyperStyle steps in a 60-90 minute budget.

`small_config(method, n_styles, style_dim, resolution, backbone, generator=...)` derives a config from the domain's
generator, so the same recipe serves any small domain -- StyleGAN2 (n_styles = 2*log2(size) - 2) or StyleGAN3
(n_styles = num_ws = num_layers + 2, 16 for the official configs; ws[0] drives the Fourier input layer). The
map2style split stays coarse 0-2 / medium 3-6 / fine 7+ for any n_styles (every official encoder hard-codes 3 / 7,
also for 16 codes); ReStyle heads read every code from the final map, as stylegan3-editing's `psp3.py` / `e4e3.py`.
`sizes=` swaps the width table (the tests use a tiny one). Every exported weights file stores its `EncoderConfig`
(safetensors metadata, with the generator family), so loading needs no table and builds the right head count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from zoo.encoders import (
    BackboneEncoder,
    Encoder4Editing,
    GradualStyleEncoder,
    IRSEConfig,
    ProgressiveBackboneEncoder,
    ResNetBackboneEncoder,
    ResNetConfig,
    ResNetProgressiveBackboneEncoder,
    SharedWeightsHyperNetResNet,
    WEncoder,
)
from zoo.stylegan2 import LayerSlot

METHODS: tuple[str, ...] = ("psp", "e4e", "restyle_psp", "restyle_e4e", "hyperstyle", "w_encoder")
SG3_METHODS: tuple[str, ...] = ("psp", "e4e", "restyle_psp", "restyle_e4e")  # also for StyleGAN3 generators

# method -> default backbone, input channels (ReStyle / HyperStyle see concat(x, y_prev))
DEFAULT_BACKBONE: dict[str, str] = {"psp": "irse", "e4e": "irse", "restyle_psp": "irse", "restyle_e4e": "irse",
                                    "hyperstyle": "resnet34", "w_encoder": "irse"}
INPUT_NC: dict[str, int] = {"psp": 3, "e4e": 3, "w_encoder": 3, "restyle_psp": 6, "restyle_e4e": 6, "hyperstyle": 6}
ENCODER_TYPE: dict[tuple[str, str], str] = {  # (method, backbone) -> official encoder_type
    ("psp", "irse"): "GradualStyleEncoder",
    ("e4e", "irse"): "Encoder4Editing",
    ("w_encoder", "irse"): "WEncoder",
    ("restyle_psp", "irse"): "BackboneEncoder",
    ("restyle_psp", "resnet34"): "ResNetBackboneEncoder",
    ("restyle_e4e", "irse"): "ProgressiveBackboneEncoder",
    ("restyle_e4e", "resnet34"): "ResNetProgressiveBackboneEncoder",
    ("hyperstyle", "resnet34"): "SharedWeightsHyperNetResNet",
}


@dataclass(frozen=True)
class SmallSizes:
    """Width / depth table of a small configuration (see the module docstring for the reasoning)."""

    irse_channels: tuple[int, int, int, int] = (16, 32, 64, 128)
    irse_units: tuple[int, int, int, int] = (1, 1, 2, 1)
    resnet_channels: tuple[int, int, int, int] = (16, 32, 64, 128)
    resnet_units: tuple[int, int, int, int] = (1, 2, 2, 1)
    hyper_z_dim: int = 64
    hyper_refine_inner: int = 64
    hyper_refine_out: int = 128
    hyper_inner: int = 32


PEEPS_SIZES = SmallSizes()


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild an encoder / hypernetwork (stored as JSON next to its weights).

    `layers_to_tune` None = the released HyperStyle default (all non-toRGB convs, restricted to the generator).
    """

    method: str
    encoder_type: str
    backbone: str  # 'irse' | 'resnet34'
    n_styles: int
    style_dim: int
    input_size: int
    input_nc: int
    channels: tuple[int, ...]
    units: tuple[int, ...]
    hyper: dict[str, Any] = field(default_factory=dict)  # HyperStyle: z_dim, refine_inner, refine_out, hyper_inner,
    #                                                       layers_to_tune (list or None)
    generator: str = "stylegan2"  # family of the generator it was trained for: 'stylegan2' | 'stylegan3'

    def to_json(self) -> str:
        """Sorted JSON; `generator` is written only when not 'stylegan2' (files written before StyleGAN3 support
        keep their bytes, and sha256, when re-exported)."""
        d = asdict(self)
        if d["generator"] == "stylegan2":
            del d["generator"]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> EncoderConfig:
        d = json.loads(text) if isinstance(text, str) else dict(text)
        d["channels"], d["units"] = tuple(d["channels"]), tuple(d["units"])
        return cls(**d)

    @property
    def role_suffix(self) -> str:
        """'' for the default backbone of the method, else '_resnet34' / '_irse'."""
        return "" if self.backbone == DEFAULT_BACKBONE[self.method] else f"_{self.backbone}"


def weight_role(method: str, backbone: str | None = None) -> str:
    """Domain weights role of a trained small configuration: 'encoder/psp', 'encoder/restyle_psp_resnet34', ..."""
    backbone = backbone or DEFAULT_BACKBONE[method]
    suffix = "" if backbone == DEFAULT_BACKBONE[method] else f"_{backbone}"
    return f"encoder/{method}{suffix}"


def small_config(method: str, n_styles: int, style_dim: int, resolution: int, backbone: str | None = None,
                 sizes: SmallSizes = PEEPS_SIZES, layers_to_tune: Sequence[int] | None = None,
                 generator: str = "stylegan2") -> EncoderConfig:
    """The small configuration of `method` for a `generator` ('stylegan2' | 'stylegan3') generator with `n_styles` x
    `style_dim` codes at `resolution`. Raises ValueError for an unknown method / backbone, or a StyleGAN3 generator
    with a method that cannot drive one (HyperStyle and its W-encoder)."""
    if method not in METHODS:
        raise ValueError(f"unknown encoder method {method!r} (one of {', '.join(METHODS)})")
    if generator not in ("stylegan2", "stylegan3"):
        raise ValueError(f"unknown generator family {generator!r} (stylegan2, stylegan3)")
    if generator == "stylegan3" and method not in SG3_METHODS:
        raise ValueError(f"{method} cannot be trained for a StyleGAN3 generator (StyleGAN3: {', '.join(SG3_METHODS)})")
    backbone = backbone or DEFAULT_BACKBONE[method]
    if (method, backbone) not in ENCODER_TYPE:
        ok = sorted(b for m, b in ENCODER_TYPE if m == method)
        raise ValueError(f"{method} has no {backbone!r} backbone (choose {', '.join(ok)})")
    irse = backbone == "irse"
    hyper: dict[str, Any] = {}
    if method == "hyperstyle":
        hyper = {"z_dim": sizes.hyper_z_dim, "refine_inner": sizes.hyper_refine_inner,
                 "refine_out": sizes.hyper_refine_out, "hyper_inner": sizes.hyper_inner,
                 "layers_to_tune": None if layers_to_tune is None else [int(i) for i in layers_to_tune]}
    return EncoderConfig(
        method=method, encoder_type=ENCODER_TYPE[(method, backbone)], backbone=backbone, n_styles=n_styles,
        style_dim=style_dim, input_size=resolution, input_nc=INPUT_NC[method],
        channels=tuple(sizes.irse_channels if irse else sizes.resnet_channels),
        units=tuple(sizes.irse_units if irse else sizes.resnet_units), hyper=hyper, generator=generator,
    )


def build_module(cfg: EncoderConfig, layer_slots: Sequence[LayerSlot] | None = None) -> nn.Module:
    """Instantiate the encoder (or HyperStyle hypernetwork, which needs the generator's `layer_slots()`)."""
    common = dict(n_styles=cfg.n_styles, input_nc=cfg.input_nc, style_dim=cfg.style_dim, input_size=cfg.input_size)
    if cfg.backbone == "irse":
        bb: Any = IRSEConfig(channels=tuple(cfg.channels), units=tuple(cfg.units))  # type: ignore[arg-type]
    else:
        bb = ResNetConfig(channels=tuple(cfg.channels), units=tuple(cfg.units))  # type: ignore[arg-type]
    et = cfg.encoder_type
    if et == "SharedWeightsHyperNetResNet":
        if layer_slots is None:
            raise ValueError("the HyperStyle hypernetwork needs the generator's layer_slots()")
        h = cfg.hyper
        return SharedWeightsHyperNetResNet(
            layer_slots, h.get("layers_to_tune"), input_nc=cfg.input_nc, input_size=cfg.input_size, backbone=bb,
            z_dim=h["z_dim"], refine_inner=h["refine_inner"], refine_out=h["refine_out"], hyper_inner=h["hyper_inner"],
        )
    classes: dict[str, type[nn.Module]] = {
        "GradualStyleEncoder": GradualStyleEncoder, "Encoder4Editing": Encoder4Editing, "WEncoder": WEncoder,
        "BackboneEncoder": BackboneEncoder, "ResNetBackboneEncoder": ResNetBackboneEncoder,
        "ProgressiveBackboneEncoder": ProgressiveBackboneEncoder,
        "ResNetProgressiveBackboneEncoder": ResNetProgressiveBackboneEncoder,
    }
    if et not in classes:
        raise ValueError(f"unknown encoder_type {et!r}")
    return classes[et](backbone=bb, **common)  # type: ignore[call-arg]


def count_parameters(module: nn.Module) -> int:
    """Unique parameters (HyperStyle's shared hypernet counted once)."""
    return sum(p.numel() for p in module.parameters())
