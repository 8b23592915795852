"""Encoder architectures of pSp, e4e, ReStyle and HyperStyle with the official state-dict layouts.

Every module is constructible on CPU (or the meta device) in its official configuration (the defaults) and in small
configurations (channel table / units per stage / input size / style_dim), e.g. for a 32x32 generator with
style_dim 64:

    from zoo.encoders import GradualStyleEncoder, IRSEConfig
    enc = GradualStyleEncoder(n_styles=G.n_latent, style_dim=64, input_size=32,
                              backbone=IRSEConfig(channels=(16, 32, 64, 128), units=(1, 1, 1, 1)))

Images are [B, C, H, W] in [-1, 1]; codes are [B, n_styles, style_dim] (residuals / before latent_avg).
`official.load_official(path)` loads the released `.pt` checkpoints (StyleGAN2 decoders, and the stylegan3-editing
ReStyle checkpoints with StyleGAN3 decoders). n_styles comes from the generator (`G.n_latent`: StyleGAN2
2*log2(size) - 2, StyleGAN3 num_ws = 16); `generators.render_aligned` renders codes the way the encoders see them.
"""

from .backbones import (
    BottleneckIR,
    GradualStyleBlock,
    IRSEBackbone,
    IRSEConfig,
    ResNetBackbone,
    ResNetConfig,
    SEModule,
    load_pretrained_irse,
    load_pretrained_resnet34,
)
from .generators import generator_family, render_aligned
from .hyperstyle import (
    DEFAULT_LAYERS_TO_TUNE,
    OFFICIAL_SHARED_LAYERS,
    HyperRefinementBlock,
    HyperStyleResult,
    HyperStyleStep,
    RefinementBlock,
    SharedWeightsHypernet,
    SharedWeightsHyperNetResNet,
    accumulate_deltas,
    expand_deltas,
    hyperstyle_steps,
    initial_inversion,
    parameters_table,
    parse_layers_to_tune,
    run_hyperstyle,
)
from .psp import (
    BackboneEncoderUsingLastLayerIntoW,
    BackboneEncoderUsingLastLayerIntoWPlus,
    Encoder4Editing,
    GradualStyleEncoder,
    ProgressiveStage,
    WEncoder,
)
from .restyle import (
    BackboneEncoder,
    ProgressiveBackboneEncoder,
    ReStyleResult,
    ReStyleStep,
    ResNetBackboneEncoder,
    ResNetGradualStyleEncoder,
    ResNetProgressiveBackboneEncoder,
    average_image,
    pool_to,
    restyle_steps,
    run_restyle,
)

__all__ = [
    "BackboneEncoder", "BackboneEncoderUsingLastLayerIntoW", "BackboneEncoderUsingLastLayerIntoWPlus", "BottleneckIR",
    "DEFAULT_LAYERS_TO_TUNE", "Encoder4Editing", "GradualStyleBlock", "GradualStyleEncoder", "HyperRefinementBlock",
    "HyperStyleResult", "HyperStyleStep", "IRSEBackbone", "IRSEConfig", "OFFICIAL_SHARED_LAYERS",
    "ProgressiveBackboneEncoder", "ProgressiveStage", "ReStyleResult", "ReStyleStep", "RefinementBlock",
    "ResNetBackbone", "ResNetBackboneEncoder", "ResNetConfig", "ResNetGradualStyleEncoder",
    "ResNetProgressiveBackboneEncoder", "SEModule", "SharedWeightsHyperNetResNet", "SharedWeightsHypernet",
    "WEncoder", "accumulate_deltas", "average_image", "expand_deltas", "generator_family", "hyperstyle_steps",
    "initial_inversion", "render_aligned",
    "load_pretrained_irse", "load_pretrained_resnet34", "parameters_table", "parse_layers_to_tune", "pool_to",
    "restyle_steps", "run_hyperstyle", "run_restyle",
]
