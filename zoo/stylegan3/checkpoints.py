"""Load and save StyleGAN3 generators, executing nothing from the files.

Accepted inputs:
* NVlabs `.pkl` (`stylegan3-*.pkl`, `network-snapshot-*.pkl`; `G_ema` is used): read by the code-free
  `zoo.stylegan2.nvlabs.read_nvlabs_pickle` (the embedded module source is never executed); the generator is built
  from the pickle's `_init_kwargs` and loaded strictly, filters taken from the stored buffers;
* stylegan3-editing `.pt` generators (`sg3-r-ffhq-1024.pt`, ...): plain state dicts with NVlabs keys, possibly with a
  `module.` prefix and a batched `synthesis.input.transform` [B, 3, 3] (kept apart as `LoadedGenerator.transform`,
  the buffer reset to the identity); the constructor arguments are inferred from the keys and shapes;
* zoo's own files (`save_generator`): `{'format': 'zoo_stylegan3_v1', 'G_ema': state dict, 'init_kwargs': {...}}`.
Every error is one CheckpointError line naming the file.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint_io import check_file, load_checked, note, strip_module_prefix, torch_load
from ..errors import CheckpointError
from ..stylegan2.nvlabs import read_nvlabs_pickle
from .generator import Generator, band_limit_schedule

__all__ = ["LoadedGenerator", "build_generator", "infer_init_kwargs", "is_stylegan3_state_dict", "is_stylegan3_file",
           "load_any_generator", "load_generator", "save_generator"]

ZOO_FORMAT = "zoo_stylegan3_v1"
EDITING_MAGNITUDE_EMA_BETA = 0.5 ** (32 / 20000)  # stylegan3-editing's constructor (irrelevant at inference)
_LAYER_KEY = re.compile(r"^synthesis\.(L(\d+)_(\d+)_(\d+))\.")
_INIT_KEYS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "channel_base",
              "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband", "last_stopband_rel",
              "margin_size", "output_scale", "num_fp16_res", "conv_kernel", "filter_size", "lrelu_upsampling",
              "use_radial_filters", "conv_clamp", "magnitude_ema_beta"}


@dataclass
class LoadedGenerator:
    """A StyleGAN3 generator, its average latent (`mapping.w_avg` [w_dim]) and where it came from.

    `transform`: a batched [B, 3, 3] `synthesis.input.transform` found in the file (stylegan3-editing writes per-sample
    matrices into the buffer), else None; pass it explicitly as `transform=` to render with it.
    """

    generator: Generator
    latent_avg: torch.Tensor
    source_format: str  # "nvlabs" | "stylegan3-editing" | "zoo"
    init_kwargs: dict
    transform: torch.Tensor | None = None
    latent_avg_computed: bool = False  # always False: `mapping.w_avg` is part of every StyleGAN3 file


def is_stylegan3_state_dict(sd: dict[str, Any]) -> bool:
    """NVlabs StyleGAN3 generator keys: `synthesis.input.freqs` and layers named `L{idx}_{size}_{channels}`."""
    keys = [k[7:] if k.startswith("module.") else k for k in sd]
    return "synthesis.input.freqs" in keys and any(_LAYER_KEY.match(k) for k in keys)


def _layer_names(sd: dict[str, torch.Tensor]) -> list[tuple[int, int, int, str]]:
    return sorted({(int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(1))
                   for k in sd if (m := _LAYER_KEY.match(k))})


def infer_init_kwargs(sd: dict[str, torch.Tensor], source: str = "generator") -> dict:
    """Constructor arguments of the NVlabs Generator that produced `sd` (no `_init_kwargs` available).

    z/c/w dims and mapping depth come from the mapping shapes; resolution, image channels, number of layers, kernel
    (T: 3, R: 1), radial filters and filter size from the layer names and shapes; channel_base / channel_max /
    margin are searched so that the band-limit schedule reproduces every layer name. Raises CheckpointError when
    no standard configuration does.
    """
    try:
        w_dim = int(sd["mapping.w_avg"].shape[0])
        n_map = len([k for k in sd if re.match(r"^mapping\.fc\d+\.weight$", k)])
        c_dim = int(sd["mapping.embed.weight"].shape[1]) if "mapping.embed.weight" in sd else 0
        z_dim = int(sd["mapping.fc0.weight"].shape[1]) - (w_dim if c_dim else 0)
        layers = _layer_names(sd)
        if not layers or [idx for idx, *_ in layers] != list(range(len(layers))):
            raise KeyError("synthesis.L{idx}_{size}_{channels}.* (a complete layer sequence)")
        first = layers[0][3]
        conv_kernel = int(sd[f"synthesis.{first}.weight"].shape[-1])
        down = sd.get(f"synthesis.{first}.down_filter")
        up = sd.get(f"synthesis.{first}.up_filter")
        in_size = int(sd["synthesis.input.weight"].shape[0])
    except KeyError as exc:
        raise CheckpointError(f"{source}: not a StyleGAN3 generator state dict: missing key {exc}") from None
    radial = down is not None and down.ndim == 2
    filter_size = int(up.shape[0]) // 2 if up is not None else 6
    res, img_channels = layers[-1][1], layers[-1][2]
    names = [n for *_, n in layers]
    channel_max = max(c for _, _, c, _ in layers[:-1])
    margin = (layers[0][1] - band_limit_schedule(res, img_channels, margin_size=0, num_layers=len(layers) - 1)[0].size)
    base = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=res, img_channels=img_channels,
                mapping_kwargs={"num_layers": n_map})
    del in_size
    n_layers = len(layers) - 1
    for num_critical in (2, 1, 3, 4):
        cutoffs = [spec.cutoff for spec in band_limit_schedule(res, img_channels, num_layers=n_layers,
                                                                num_critical=num_critical, margin_size=margin // 2)]
        channel_base = _channel_base(cutoffs, [c for _, _, c, _ in layers], channel_max)
        if channel_base is None:
            continue
        specs = band_limit_schedule(res, img_channels, channel_base, channel_max, n_layers, num_critical,
                                    margin_size=margin // 2)
        if [f"L{s.idx}_{s.size}_{s.channels}" for s in specs] == names:
            kw = dict(base, channel_base=channel_base, channel_max=channel_max,
                      magnitude_ema_beta=EDITING_MAGNITUDE_EMA_BETA)
            if n_layers != 14:
                kw["num_layers"] = n_layers
            if num_critical != 2:
                kw["num_critical"] = num_critical
            if margin // 2 != 10:
                kw["margin_size"] = margin // 2
            if conv_kernel != 3:
                kw["conv_kernel"] = conv_kernel
            if radial:
                kw["use_radial_filters"] = True
            if filter_size != 6:
                kw["filter_size"] = filter_size
            return kw
    raise CheckpointError(f"{source}: no StyleGAN3 configuration reproduces its layer names ({names[0]} ... "
                          f"{names[-1]}); give the NVlabs .pkl (it stores the constructor arguments)")


def _channel_base(cutoffs: list[float], channels: list[int], channel_max: int) -> int | None:
    """The "roundest" channel_base with rint(min(channel_base / 2 / cutoff_i, channel_max)) == channels_i for every
    non-ToRGB layer (largest power-of-two factor), or None."""
    lo, hi = 0.0, float("inf")
    for f, c in zip(cutoffs[:-1], channels[:-1]):
        if c < channel_max:  # unsaturated: channel_base / 2 in [(c - 0.5) f, (c + 0.5) f]
            lo, hi = max(lo, 2 * (c - 0.5) * f), min(hi, 2 * (c + 0.5) * f)
        else:  # saturated: channel_base / 2 / f >= channel_max - 0.5
            lo = max(lo, 2 * (channel_max - 0.5) * f)
    if hi == float("inf"):
        hi = max(lo, 1.0) * 2
    for step in (2 ** k for k in range(24, -1, -1)):
        first = int(-(-lo // step) * step)
        if first <= hi and first > 0:
            return first
    return None


def _plain(v: Any) -> bool:
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return v is None or isinstance(v, (bool, int, float, str))


def build_generator(sd: dict[str, torch.Tensor], init_kwargs: dict | None = None, source: str = "generator",
                    device: torch.device | str = "cpu") -> tuple[Generator, dict, torch.Tensor | None]:
    """Construct a Generator for `sd` (from `init_kwargs`, else inferred) and load it strictly, float32.

    The filters are the stored buffers (no redesign). A `module.` prefix is stripped (one note); a batched
    `synthesis.input.transform` is returned apart and replaced by the identity (one note); a missing one is the
    identity (stylegan3-editing drops it). Returns (generator in
    eval mode, the init kwargs used, batched transform or None). Raises CheckpointError naming `source`.
    """
    sd = strip_module_prefix(dict(sd), source)
    if not is_stylegan3_state_dict(sd):
        raise CheckpointError(f"{source}: not a StyleGAN3 generator (no 'synthesis.input.freqs' / "
                              "'synthesis.L<i>_<size>_<ch>.*' keys)")
    batched = None
    tr = sd.get("synthesis.input.transform")
    if tr is None:  # a non-learned buffer stylegan3-editing drops when it loads its decoder: NVlabs' identity
        sd["synthesis.input.transform"] = torch.eye(3)
    elif isinstance(tr, torch.Tensor) and tr.ndim == 3:
        batched = tr.float().clone()
        sd["synthesis.input.transform"] = torch.eye(3)
        note(f"{source}: synthesis.input.transform holds {tr.shape[0]} per-sample matrices (written by "
             "stylegan3-editing): loaded with the identity, the matrices are kept apart (LoadedGenerator.transform)")
    if init_kwargs:
        unknown = set(init_kwargs) - _INIT_KEYS
        if unknown:
            raise CheckpointError(f"{source}: unsupported StyleGAN3 constructor argument(s) {sorted(unknown)}")
        kwargs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in init_kwargs.items()}
        odd = sorted(k for k, v in kwargs.items() if not _plain(v))
        if odd:  # e.g. numpy scalars, which the code-free unpickler leaves as inert placeholders
            inferred = infer_init_kwargs(sd, source)
            kwargs = {k: inferred.get(k) if k in odd else v for k, v in kwargs.items()
                      if k not in odd or k in inferred}
            note(f"{source}: constructor argument(s) {odd} are not plain values: taken from the weights' shapes")
    else:
        kwargs = infer_init_kwargs(sd, source)
    try:
        with torch.device("meta"):
            g = Generator(**kwargs, design_filters=False)
    except (TypeError, ValueError, AssertionError) as exc:
        raise CheckpointError(f"{source}: cannot build a StyleGAN3 generator from its arguments ({exc})") from None
    expected = [n for *_, n in _layer_names(sd)]
    if g.synthesis.layer_names != expected:
        ours = g.synthesis.layer_names
        i = next((i for i, (a, b) in enumerate(zip(expected, ours)) if a != b), min(len(expected), len(ours)))
        got = expected[i] if i < len(expected) else "nothing"
        want = ours[i] if i < len(ours) else "nothing"
        raise CheckpointError(f"{source}: its layer {i} is {got} but its constructor arguments give {want}: "
                              "not the G_ema of these arguments")
    sd = {k: v.to(torch.float32, copy=True) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
          for k, v in sd.items()}
    load_checked(g, sd, f"{source}: generator weights", "expected the complete G_ema of an NVlabs StyleGAN3 generator",
                 assign=True)
    return g.to(device).eval(), kwargs, batched


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> LoadedGenerator:
    """Load a StyleGAN3 generator file of any supported format (see module docstring).

    Raises CheckpointError naming the file: missing, empty / HTML / truncated, pickled code (never run), not a
    StyleGAN3 generator, or weights that do not fit.
    """
    path = Path(path)
    fmt = check_file(path, what="generator file", fix="download it again")
    init_kwargs: dict | None = None
    if fmt == "pickle" and path.suffix == ".pkl":
        with open(path, "rb") as f:
            try:
                sd, init_kwargs = read_nvlabs_pickle(f)
            except CheckpointError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
        source = "nvlabs"
    else:
        obj = torch_load(path, what="generator file")
        source = "stylegan3-editing"
        if isinstance(obj, dict) and obj.get("format") == ZOO_FORMAT:
            sd, init_kwargs, source = obj.get("G_ema"), obj.get("init_kwargs"), "zoo"
        elif isinstance(obj, dict) and isinstance(obj.get("G_ema"), dict):
            sd = obj["G_ema"]
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            sd = obj["state_dict"]
        else:
            sd = obj
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: holds a {type(sd).__name__}, not a StyleGAN3 generator state dict")
    g, kwargs, batched = build_generator(sd, init_kwargs, str(path), device)
    return LoadedGenerator(g, g.mapping.w_avg.detach().clone(), source, kwargs, batched)


def is_stylegan3_file(path: str | Path) -> bool:
    """Whether a generator file (NVlabs .pkl, stylegan3-editing / zoo .pt) holds a StyleGAN3 generator; reads it
    code-free. Raises CheckpointError (naming the file) for unreadable files."""
    path = Path(path)
    fmt = check_file(path, what="generator file", fix="download it again")
    if fmt == "pickle" and path.suffix == ".pkl":
        with open(path, "rb") as f:
            try:
                sd, _ = read_nvlabs_pickle(f)
            except CheckpointError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
        return is_stylegan3_state_dict(sd)
    from ..encoders.official import PATH_AS_STRING  # stylegan3-editing opts hold pathlib paths (read as str)

    obj = torch_load(path, what="generator file", allowed_globals=[argparse.Namespace, *PATH_AS_STRING])
    if isinstance(obj, dict) and obj.get("format") == ZOO_FORMAT:
        return True
    for key in ("G_ema", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    return isinstance(obj, dict) and is_stylegan3_state_dict(obj)


def load_any_generator(path: str | Path, device: torch.device | str = "cpu") -> Any:
    """A StyleGAN3 `LoadedGenerator` for StyleGAN3 files, else `zoo.stylegan2.checkpoints.load_generator(path)`
    (both expose the same generator interface). Raises CheckpointError naming the file."""
    if is_stylegan3_file(path):
        return load_generator(path, device)
    from ..stylegan2.checkpoints import load_generator as load_stylegan2

    return load_stylegan2(path, device)


def save_generator(path: str | Path, g: Generator, *, extra: dict | None = None) -> None:
    """Save `{'format', 'G_ema' (state dict, NVlabs keys), 'init_kwargs'}` (atomic replace)."""
    payload = {"format": ZOO_FORMAT, "G_ema": {k: v.detach().cpu().clone() for k, v in g.state_dict().items()},
               "init_kwargs": g.init_kwargs}
    if extra:
        payload.update(extra)
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
