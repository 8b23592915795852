"""Load official pSp / e4e / ReStyle / HyperStyle / W-encoder `.pt` checkpoints into zoo modules.

Checkpoint = `{'state_dict': {'encoder.*' | 'hypernet.*', 'decoder.*'}, 'opts': dict, ['latent_avg'], ...}`.
* read with `zoo.checkpoint_io.torch_load` (`torch.load(weights_only=True)`, torch's warnings silenced): plain
  `opts` dicts of builtins load; pathlib paths (stylegan3-editing's `dataclasses.asdict(opts)` holds
  `PosixPath` / `WindowsPath` objects) are read as plain strings by stand-ins that only join the path parts; other
  types (argparse.Namespace, ...) and code (os.system, eval, ...) are never loaded nor run and raise a
  CheckpointError naming the file;
* keys saved from DataParallel (`module.` before or after the `encoder.`/`decoder.` prefix) are accepted and
  missing noise buffers of the decoder (not learned) regenerated (seeded), each with one note;
* method from `opts['encoder_type']` (key layout as fallback), `opts` read as the official loaders do:
  pSp/ReStyle/HyperStyle size = `output_size` (absent -> 1024), e4e size = `stylegan_size`, n_styles =
  2*log2(size) - 2, `input_nc` (e4e and W-encoders: hard-coded 3), `learn_in_w` absent -> False,
  `start_from_latent_avg`, HyperStyle `layers_to_tune`;
* StyleGAN3 decoders (stylegan3-editing `restyle_pSp_ffhq.pt` / `restyle_e4e_ffhq.pt`: `decoder.*` = NVlabs
  StyleGAN3 keys, `latent_avg` [512]): the decoder is built by `zoo.stylegan3.checkpoints.build_generator`
  (constructor arguments inferred from the key shapes), n_styles = its num_ws (16 for every official model,
  `psp3.py` / `e4e3.py`), a missing `synthesis.input.transform` (the editing repo drops it) is the identity, and
  ReStyle runs 3 iterations by default (`n_iters_per_batch` 3 of the editing repo's train and test options);
* prefixes stripped with `k[len(name)+1:]` for keys starting with `name + '.'`;
* encoder / hypernet and decoder loaded STRICTLY (HyperStyle: the duplicated shared-hypernet keys
  `refinement_blocks.{L}.hypernet.*` are required, as officially; missing duplicates are filled from their alias);
* modules are built on the meta device and the checkpoint tensors assigned (no random init, no double memory);
  `device='meta'` checks a layout without real weights;
* `latent_avg` returned as [n_styles, 512]; when absent it is computed as the mean of 10,000 mapped z (seeded, one
  note).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import torch
from torch import nn

from ..checkpoint_io import load_checked, note, strip_module_prefix, torch_load
from ..errors import CheckpointError
from ..stylegan2 import Generator, LayerSlot
from ..stylegan2.checkpoints import infer_config
from ..stylegan3.checkpoints import build_generator as build_stylegan3, is_stylegan3_state_dict
from .generators import STYLEGAN2, STYLEGAN3, generator_family, render_aligned, z_dim
from .hyperstyle import DEFAULT_LAYERS_TO_TUNE_STR, SharedWeightsHyperNetResNet, run_hyperstyle
from .psp import (
    BackboneEncoderUsingLastLayerIntoW,
    BackboneEncoderUsingLastLayerIntoWPlus,
    Encoder4Editing,
    GradualStyleEncoder,
    WEncoder,
)
from .restyle import (
    BackboneEncoder,
    ProgressiveBackboneEncoder,
    ResNetBackboneEncoder,
    ResNetGradualStyleEncoder,
    ResNetProgressiveBackboneEncoder,
    latent_avg_wplus,
    run_restyle,
)

# encoder_type -> (method, module class)
ENCODER_TYPES: dict[str, tuple[str, type[nn.Module]]] = {
    "GradualStyleEncoder": ("psp", GradualStyleEncoder),
    "BackboneEncoderUsingLastLayerIntoW": ("psp", BackboneEncoderUsingLastLayerIntoW),
    "BackboneEncoderUsingLastLayerIntoWPlus": ("psp", BackboneEncoderUsingLastLayerIntoWPlus),
    "Encoder4Editing": ("e4e", Encoder4Editing),
    "SingleStyleCodeEncoder": ("w_encoder", WEncoder),
    "WEncoder": ("w_encoder", WEncoder),
    "BackboneEncoder": ("restyle_psp", BackboneEncoder),
    "ResNetBackboneEncoder": ("restyle_psp", ResNetBackboneEncoder),
    "ResNetGradualStyleEncoder": ("restyle_psp", ResNetGradualStyleEncoder),
    "ProgressiveBackboneEncoder": ("restyle_e4e", ProgressiveBackboneEncoder),
    "ResNetProgressiveBackboneEncoder": ("restyle_e4e", ResNetProgressiveBackboneEncoder),
    "SharedWeightsHyperNetResNet": ("hyperstyle", SharedWeightsHyperNetResNet),
}
UNSUPPORTED_TYPES = {
    "SharedWeightsHyperNetResNetSeparable": "HyperStyle's separable-hypernet ablation is not implemented",
}
DEFAULT_INPUT_NC = {"psp": 3, "e4e": 3, "w_encoder": 3, "restyle_psp": 6, "restyle_e4e": 6, "hyperstyle": 6}
ITERATIVE = ("restyle_psp", "restyle_e4e", "hyperstyle")
SG3_METHODS = ("psp", "e4e", "restyle_psp", "restyle_e4e")  # encoders that run on a StyleGAN3 decoder
DEFAULT_N_ITERS = {STYLEGAN2: 5, STYLEGAN3: 3}  # ReStyle inference: restyle-encoder 5, stylegan3-editing 3


def n_styles_for(size: int) -> int:
    """Every encoder repo: n_styles = int(log2(size)) * 2 - 2 (1024 -> 18, 512 -> 16, 256 -> 14)."""
    return int(math.log(size, 2)) * 2 - 2


def build_encoder(
    encoder_type: str, *, n_styles: int = 18, input_nc: int | None = None, style_dim: int = 512,
    layer_slots: Sequence[LayerSlot] | None = None, layers_to_tune: str | Sequence[int] | None = None,
) -> nn.Module:
    """An encoder / hypernet in its official configuration (IR-SE50 or ResNet34, 256 input).

    HyperStyle needs `layer_slots` (the generator's `layer_slots()`); `layers_to_tune` None = the released default.
    Construct under `with torch.device('meta'):` to get the layout without allocating weights.
    """
    if encoder_type in UNSUPPORTED_TYPES:
        raise CheckpointError(f"encoder_type {encoder_type!r}: {UNSUPPORTED_TYPES[encoder_type]}")
    if encoder_type not in ENCODER_TYPES:
        raise CheckpointError(f"unknown encoder_type {encoder_type!r} (known: {', '.join(sorted(ENCODER_TYPES))})")
    method, cls = ENCODER_TYPES[encoder_type]
    nc = DEFAULT_INPUT_NC[method] if input_nc is None else input_nc
    if method == "hyperstyle":
        if layer_slots is None:
            raise ValueError("the HyperStyle hypernet needs the generator's layer_slots()")
        return SharedWeightsHyperNetResNet(layer_slots, layers_to_tune, input_nc=nc)
    if encoder_type == "BackboneEncoderUsingLastLayerIntoW":
        return BackboneEncoderUsingLastLayerIntoW(None, nc, style_dim)
    return cls(n_styles, nc, style_dim)  # type: ignore[call-arg]


@dataclass
class OfficialModel:
    """A loaded official checkpoint.

    encoder: the encoder (pSp/e4e/ReStyle/W-encoder) or hypernetwork (HyperStyle); generator: the decoder;
    latent_avg [n_styles, 512]; opts: the checkpoint's opts dict; method: 'psp' | 'e4e' | 'restyle_psp' |
    'restyle_e4e' | 'hyperstyle' | 'w_encoder'. HyperStyle also needs `w_encoder` (loaded from a separate file).
    StyleGAN3 decoders (stylegan3-editing): n_styles 16, latent_avg [16, 512] (the stored [512] repeated),
    n_iters 3; images are rendered in the aligned frame (identity transform).
    """

    method: str
    encoder_type: str
    encoder: nn.Module
    generator: Any  # zoo.stylegan2.Generator or zoo.stylegan3.Generator (see generator_family)
    latent_avg: torch.Tensor
    opts: dict[str, Any]
    n_styles: int
    output_size: int
    input_nc: int
    start_from_latent_avg: bool
    learn_in_w: bool = False
    n_iters: int = 1
    latent_avg_computed: bool = False
    detected_by: str = "opts"  # 'opts' (encoder_type) or 'keys'
    w_encoder: nn.Module | None = None
    notes: list[str] = field(default_factory=list)
    generator_family: str = STYLEGAN2  # 'stylegan2' | 'stylegan3' (the decoder's)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Single-pass methods: images [B, 3, 256, 256] in [-1, 1] -> codes [B, n_styles, 512] (as the official
        forward: + latent_avg when start_from_latent_avg; a `learn_in_w` w is broadcast to all styles)."""
        if self.method in ITERATIVE:
            raise ValueError(f"{self.method} is iterative: use invert(x) (or run_restyle / run_hyperstyle)")
        codes = self.encoder(x)
        if codes.ndim == 2:
            codes = codes.unsqueeze(1).repeat(1, self.n_styles, 1)
        if self.start_from_latent_avg or self.method == "w_encoder":
            codes = codes + self.latent_avg.unsqueeze(0).to(codes)
        return codes

    def invert(self, x: torch.Tensor, n_iters: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list | None]:
        """Images [B, 3, 256, 256] in [-1, 1] -> (codes [B, n_styles, 512], image [B, 3, G, G], weights_deltas|None)
        with the official inference settings (randomize_noise=False; ReStyle/HyperStyle: n_iters iterations)."""
        n = n_iters or self.n_iters
        if self.method in ("restyle_psp", "restyle_e4e"):
            res = run_restyle(self.encoder, self.generator, self.latent_avg, x, n)
            return res.codes[-1], res.images[-1], None
        if self.method == "hyperstyle":
            if self.w_encoder is None:
                raise CheckpointError("HyperStyle needs its W-encoder: pass w_encoder=<faces_w_encoder.pt> to load")
            hs = run_hyperstyle(self.encoder, self.generator, x, n, w_encoder=self.w_encoder,
                                latent_avg=self.latent_avg)
            return hs.codes, hs.images[-1], hs.weights_deltas
        codes = self.encode(x)
        return codes, render_aligned(self.generator, codes), None


# --------------------------------------------------------------------------------------------- reading
OPTS_FIX = ("e.g. opts saved as an argparse.Namespace: re-save it with `opts` as a plain dict of "
            "str/int/float/bool/None")


def _path_reader(flavour: type) -> Any:
    def read_path(*parts: Any) -> str:
        if not all(isinstance(p, str) for p in parts):
            raise TypeError("a pickled path holds non-string parts")
        return str(flavour(*parts))

    return read_path


_READ_POSIX, _READ_WINDOWS = _path_reader(PurePosixPath), _path_reader(PureWindowsPath)
# pathlib classes as the weights-only unpickler sees them (python <= 3.12: `pathlib.X`, 3.13+: `pathlib._local.X`),
# each read by a stand-in that only joins the pickled string parts into a str: nothing else is constructed or run
PATH_AS_STRING: list[tuple[Any, str]] = [
    (_READ_WINDOWS if "Windows" in name else _READ_POSIX, f"{module}.{name}")
    for module in ("pathlib", "pathlib._local")
    for name in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path", "PurePath")
]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A `.pt` checkpoint dict read weights-only (nothing from the file is run).

    pathlib paths in `opts` (stylegan3-editing) come back as strings. Raises CheckpointError naming the file: not
    found, empty / HTML / truncated, pickled objects (opts as a Namespace: re-save opts as a dict) or code (never
    loaded nor run), or not a dict.
    """
    path = Path(path)
    ckpt = torch_load(path, what="checkpoint", fix="download it again from its original source",
                      objects_fix=OPTS_FIX, allowed_globals=PATH_AS_STRING)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


def strip_prefix(sd: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Official `get_keys`: keys starting with `name + '.'`, with that prefix removed (`k[len(name)+1:]`)."""
    p = name + "."
    return {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}


def _unwrapped_keys(sd: Mapping[str, Any]) -> dict[str, Any]:
    """`sd` with `encoder.module.*` / `decoder.module.*` (a DataParallel-wrapped part) read as `encoder.*` ...,
    for detecting the layout (the loaders strip the inner prefix themselves, with a note)."""
    out = {}
    for k, v in sd.items():
        head, sep, rest = k.partition(".")
        out[f"{head}.{rest[len('module.'):]}" if sep and rest.startswith("module.") else k] = v
    return out


def _looks_e4e(opts: Mapping[str, Any]) -> bool:
    return any(k in opts for k in ("w_discriminator_lambda", "progressive_start", "delta_norm_lambda"))


def detect_method(opts: Mapping[str, Any], sd: Mapping[str, torch.Tensor], what: str = "checkpoint"
                  ) -> tuple[str, str, str]:
    """(method, encoder_type, detected_by) from opts['encoder_type'], else from the key layout (anchors §10).

    `what` (the file) starts every message. Raises CheckpointError for an unsupported encoder_type or a layout that
    is none of the known encoders.
    """
    etype = opts.get("encoder_type")
    if isinstance(etype, str) and etype in UNSUPPORTED_TYPES:
        raise CheckpointError(f"{what}: encoder_type {etype!r}: {UNSUPPORTED_TYPES[etype]}")
    if isinstance(etype, str) and etype in ENCODER_TYPES:
        method = ENCODER_TYPES[etype][0]
        if etype == "GradualStyleEncoder" and ("n_iters_per_batch" in opts or opts.get("input_nc") == 6):
            method = "restyle_psp"  # ReStyle's selectable FPN encoder
        return method, etype, "opts"
    keys = set(sd)
    if any(k.startswith("hypernet.") for k in keys):
        etype = "SharedWeightsHyperNetResNet"
    elif "encoder.latlayer1.weight" in keys:
        if "encoder.conv1.weight" in keys:
            etype = "ResNetGradualStyleEncoder"
        elif "stylegan_size" in opts and "output_size" not in opts:
            etype = "Encoder4Editing"
        else:
            etype = "GradualStyleEncoder"
    elif "encoder.conv1.weight" in keys and "encoder.styles.0.linear.weight" in keys:
        etype = "ResNetProgressiveBackboneEncoder" if _looks_e4e(opts) else "ResNetBackboneEncoder"
    elif "encoder.styles.0.linear.weight" in keys:
        etype = "ProgressiveBackboneEncoder" if _looks_e4e(opts) else "BackboneEncoder"
    elif "encoder.output_layer_2.0.weight" in keys:
        etype = "BackboneEncoderUsingLastLayerIntoWPlus"
    elif "encoder.linear.weight" in keys:
        etype = "BackboneEncoderUsingLastLayerIntoW" if opts.get("learn_in_w") else "WEncoder"
    else:
        raise CheckpointError(
            f"{what}: cannot tell which encoder this is: no known opts['encoder_type'] "
            f"({opts.get('encoder_type')!r}) and no encoder./hypernet. keys in state_dict (first keys: "
            f"{list(sd)[:3]}); give a pSp / e4e / ReStyle / HyperStyle / W-encoder checkpoint"
        )
    method, _ = ENCODER_TYPES[etype]
    if etype == "GradualStyleEncoder" and ("n_iters_per_batch" in opts or opts.get("input_nc") == 6):
        method = "restyle_psp"
    return method, etype, "keys"


# --------------------------------------------------------------------------------------------- strict loading
def _fill_aliases(module: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys that name the same tensor in `module` (shared submodules): fill the absent ones from a present one."""
    groups: dict[int, list[str]] = {}
    for k, v in module.state_dict(keep_vars=True).items():
        groups.setdefault(id(v), []).append(k)
    out = dict(sd)
    for names in groups.values():
        if len(names) < 2:
            continue
        present = [n for n in names if n in out]
        if present:
            for n in names:
                out.setdefault(n, out[present[0]])
    return out


def load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str, hint: str = "") -> None:
    """Strict load by assignment (module may live on the meta device) through `zoo.checkpoint_io.load_checked`:
    a DataParallel `module.` prefix is stripped and missing non-learned buffers (noise maps: seeded) filled, with one
    note each. Raises CheckpointError `<what> does not fit: ...` naming the first missing / unexpected / mismatched
    keys (+ `hint`)."""
    load_checked(module, sd, what, hint, assign=True)


def _prepare(sd: Mapping[str, torch.Tensor], device: torch.device, what: str = "checkpoint"
             ) -> dict[str, torch.Tensor]:
    out, seen = {}, {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{what}: state_dict entry {k!r} is a {type(v).__name__}, not a tensor")
        key = id(v)
        if key not in seen:  # keep aliased tensors aliased
            t = v.float() if v.is_floating_point() else v
            seen[key] = t.to(device)
        out[k] = seen[key]
    return out


def _build_decoder(sd: dict[str, torch.Tensor], size: int, device: torch.device, what: str) -> Any:
    """The checkpoint's decoder: a StyleGAN2 (rosinality keys) or a StyleGAN3 (NVlabs keys, stylegan3-editing)
    generator, loaded strictly, in eval mode. Raises CheckpointError when absent, of another size than `size`
    (the opts'), or incomplete."""
    if not sd:
        raise CheckpointError(f"{what}: state_dict has no 'decoder.*' keys (an encoder checkpoint holds its "
                              "StyleGAN2 / StyleGAN3 decoder); give the full pSp / e4e / ReStyle / HyperStyle "
                              "checkpoint")
    sd = strip_module_prefix(sd, what)  # `decoder.module.*`: only the decoder was wrapped in DataParallel
    if is_stylegan3_state_dict(sd):
        if "synthesis.input.transform" not in sd:  # stylegan3-editing drops it when loading: NVlabs' identity
            sd = {**sd, "synthesis.input.transform": torch.eye(3, device=device)}
        g3, _, _ = build_stylegan3(sd, None, f"{what} decoder", device)
        if g3.img_resolution != size:
            raise CheckpointError(f"{what}: opts say the generator is {size}x{size} but the StyleGAN3 decoder "
                                  f"weights are {g3.img_resolution}x{g3.img_resolution}")
        return g3.requires_grad_(False)
    cfg = infer_config(sd, f"{what} decoder")
    if cfg.size != size:
        raise CheckpointError(
            f"{what}: opts say the generator is {size}x{size} but the decoder weights are {cfg.size}x{cfg.size}"
        )
    with torch.device("meta"):
        g = Generator(**cfg.__dict__)
    load_strict(g, sd, f"{what} decoder", "the checkpoint's StyleGAN2 decoder is incomplete; download it again")
    return g.to(device).eval()


@torch.no_grad()
def compute_latent_avg(generator: Any, n: int = 10_000, seed: int = 0) -> torch.Tensor:
    """Mean of `n` mapped z ~ N(0, I) (seeded) -> [style_dim] (the encoder repos use mean_latent(10000));
    a StyleGAN3 generator's tracked `mapping.w_avg` (what stylegan3-editing's coaches use when latent_avg is None)."""
    if generator_family(generator) == STYLEGAN3:
        return generator.mapping.w_avg.detach().clone()
    if generator.device.type == "meta":
        return torch.zeros(generator.style_dim, device="meta")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(n, z_dim(generator), generator=gen).to(generator.device)
    return generator.style(z).mean(0)


# --------------------------------------------------------------------------------------------- main entry
def _as_checkpoint(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "checkpoint"
    return read_checkpoint(source), str(source)


def _opts_dict(ckpt: Mapping[str, Any], what: str) -> dict[str, Any]:
    opts = ckpt.get("opts", {})
    if opts is None:
        return {}
    if isinstance(opts, Mapping):
        return dict(opts)
    if hasattr(opts, "__dict__"):  # an argparse.Namespace given directly (files with one are refused when read)
        return dict(vars(opts))
    raise CheckpointError(f"{what}: 'opts' is a {type(opts).__name__}, expected a dict")


def load_official(
    source: str | Path | Mapping[str, Any], *, device: str | torch.device = "cpu",
    w_encoder: str | Path | Mapping[str, Any] | None = None, n_mean_latent: int = 10_000,
) -> OfficialModel:
    """Load an official pSp / e4e / ReStyle / HyperStyle / W-encoder checkpoint (path or already-loaded dict).

    w_encoder: HyperStyle's W-encoder checkpoint (official `w_encoder_checkpoint_path`); when None, the path stored in
    the HyperStyle opts is used if that file exists, else the model is returned without it (see `notes`).
    """
    device = torch.device(device)
    ckpt, what = _as_checkpoint(source)
    if "g_ema" in ckpt and "state_dict" not in ckpt:
        raise CheckpointError(f"{what} is a StyleGAN2 generator file (g_ema), not an encoder checkpoint: give it as "
                              "the domain's generator; encoder inverters take a pSp / e4e / ReStyle / HyperStyle .pt")
    sd_all = ckpt.get("state_dict")
    if not isinstance(sd_all, Mapping):
        raise CheckpointError(f"{what} has no 'state_dict' (top-level keys: {sorted(map(str, ckpt))[:8]}); expected "
                              "an official pSp / e4e / ReStyle / HyperStyle checkpoint")
    sd_all = strip_module_prefix(sd_all, what)  # `module.encoder.*`: the whole net was wrapped in DataParallel
    opts = _opts_dict(ckpt, what)
    method, etype, detected_by = detect_method(opts, _unwrapped_keys(sd_all), what)
    notes: list[str] = []

    size_key = "stylegan_size" if method == "e4e" or etype == "SingleStyleCodeEncoder" else "output_size"
    size = int(opts.get(size_key) or 1024)
    if size_key not in opts:
        notes.append(f"opts has no {size_key}: assumed 1024 (as the official inference scripts do)")
    if method in ("e4e", "w_encoder"):
        input_nc = 3  # hard-coded in Encoder4Editing / WEncoder / SingleStyleCodeEncoder
    else:
        input_nc = int(opts.get("input_nc", DEFAULT_INPUT_NC[method]))
    learn_in_w = bool(opts.get("learn_in_w", False))
    start_from_avg = method in ITERATIVE or method == "w_encoder" or bool(opts.get("start_from_latent_avg", False))

    sd = _prepare(sd_all, device, what)
    generator = _build_decoder(strip_prefix(sd, "decoder"), size, device, what)
    family = generator_family(generator)
    if family == STYLEGAN3 and method not in SG3_METHODS:
        raise CheckpointError(f"{what}: a {method} checkpoint with a StyleGAN3 decoder is not supported (StyleGAN3 "
                              f"runs {', '.join(SG3_METHODS)})")
    n_styles = generator.n_latent  # = 2*log2(size) - 2 for StyleGAN2 (size checked above); StyleGAN3: num_ws (16)
    prefix = "hypernet" if method == "hyperstyle" else "encoder"
    layers_to_tune = opts.get("layers_to_tune", DEFAULT_LAYERS_TO_TUNE_STR) if method == "hyperstyle" else None
    with torch.device("meta"):
        encoder = build_encoder(etype, n_styles=n_styles, input_nc=input_nc, style_dim=generator.style_dim,
                                layer_slots=generator.layer_slots(), layers_to_tune=layers_to_tune)
    enc_sd = strip_module_prefix(strip_prefix(sd, prefix), what)  # `encoder.module.*`: only it was wrapped
    if method == "hyperstyle":
        enc_sd = _fill_aliases(encoder, enc_sd)
    hint = (f"opts: encoder_type={etype}, {size_key}={size} -> {n_styles} styles ({family} decoder), "
            f"input_nc={input_nc}")
    load_strict(encoder, enc_sd, f"{what} {prefix}", hint)
    encoder.eval()

    latent_avg = ckpt.get("latent_avg")
    computed = latent_avg is None
    if computed:
        latent_avg = compute_latent_avg(generator, n_mean_latent)
        how = ("the decoder's mapping.w_avg" if family == STYLEGAN3
               else f"the mean of {n_mean_latent} mapped z samples (seed 0)")
        notes.append(f"checkpoint has no latent_avg: {how}")
        note(f"{what}: no latent_avg in the checkpoint: using {how}")
    if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1] != generator.style_dim:
        raise CheckpointError(f"{what}: latent_avg must be a [n_styles, {generator.style_dim}] or "
                              f"[{generator.style_dim}] tensor")
    try:
        latent_avg = latent_avg_wplus(latent_avg.float().to(device), n_styles).clone()
    except ValueError as exc:
        raise CheckpointError(f"{what}: {exc}") from None

    model = OfficialModel(
        method=method, encoder_type=etype, encoder=encoder, generator=generator, latent_avg=latent_avg, opts=opts,
        n_styles=n_styles, output_size=size, input_nc=input_nc, start_from_latent_avg=start_from_avg,
        learn_in_w=learn_in_w, n_iters=_default_n_iters(method, family, opts), latent_avg_computed=computed,
        detected_by=detected_by, notes=notes, generator_family=family,
    )
    if method == "hyperstyle":
        _attach_w_encoder(model, w_encoder, device)
    return model


def _default_n_iters(method: str, family: str, opts: Mapping[str, Any]) -> int:
    """Inference iterations: 1 for single-pass methods; ReStyle / HyperStyle 5 (official inference scripts);
    StyleGAN3 ReStyle the checkpoint's `n_iters_per_batch` (stylegan3-editing trains and tests with 3)."""
    if method not in ITERATIVE:
        return 1
    if family == STYLEGAN3:
        stored = opts.get("n_iters_per_batch")
        return int(stored) if isinstance(stored, int) and stored >= 1 else DEFAULT_N_ITERS[STYLEGAN3]
    return DEFAULT_N_ITERS[STYLEGAN2]


def load_w_encoder(
    source: str | Path | Mapping[str, Any], *, encoder_type: str = "WEncoder", output_size: int = 1024,
    device: str | torch.device = "cpu", style_dim: int = 512,
) -> nn.Module:
    """HyperStyle's W-encoder as the official code builds it: `encoder_type` (opts.w_encoder_type) with input_nc 3
    and the HyperStyle output_size, whatever the file's own opts say; `encoder.*` keys loaded strictly."""
    device = torch.device(device)
    ckpt, what = _as_checkpoint(source)
    sd_all = ckpt.get("state_dict")
    if not isinstance(sd_all, Mapping):
        raise CheckpointError(f"W-encoder {what} has no 'state_dict' (top-level keys: {sorted(map(str, ckpt))[:8]}); "
                              "expected HyperStyle's W-encoder checkpoint (e.g. faces_w_encoder.pt)")
    sd_all = strip_module_prefix(sd_all, f"W-encoder {what}")
    with torch.device("meta"):
        enc = build_encoder(encoder_type, n_styles=n_styles_for(output_size), input_nc=3, style_dim=style_dim)
    hint = "a W-encoder checkpoint (e.g. faces_w_encoder.pt) is needed, not an e4e/pSp one"
    load_strict(enc, strip_prefix(_prepare(sd_all, device, what), "encoder"), f"W-encoder {what}", hint)
    return enc.eval()


def _attach_w_encoder(model: OfficialModel, source: str | Path | Mapping[str, Any] | None,
                      device: torch.device) -> None:
    if source is None:
        stored = model.opts.get("w_encoder_checkpoint_path")
        if isinstance(stored, str) and Path(stored).is_file():
            source = stored
        else:
            model.notes.append(f"W-encoder not loaded (opts path {stored!r} not found): pass w_encoder=...")
            return
    etype = model.opts.get("w_encoder_type") or "WEncoder"
    model.w_encoder = load_w_encoder(source, encoder_type=etype, output_size=model.output_size, device=device,
                                     style_dim=model.generator.style_dim)
