"""Load and save StyleGAN2 generators.

Accepted inputs:
* rosinality `.pt` (`{'g_ema', 'latent_avg'}` from convert_weight.py, or a train.py checkpoint without latent_avg),
  with size, style_dim, n_mlp and the channel table inferred from the keys;
* NVlabs stylegan2-ada-pytorch `.pkl` (read by a code-free unpickler, converted to the rosinality layout);
* zoo's own files: the rosinality layout plus a `config` dict (possibly fp16 tensors).
All `.pt` reads go through `zoo.checkpoint_io.torch_load` (`torch.load(weights_only=True)`, nothing from the file is
run); keys saved from DataParallel (`module.*`) are accepted, missing noise buffers (not learned) are regenerated
(seeded) and a missing latent_avg is computed (seeded), each with one note; every error names the file.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint_io import check_file, load_checked, note, sniff_format, strip_module_prefix, torch_load
from ..errors import CheckpointError
from .generator import Generator, GeneratorConfig, default_channels
from .nvlabs import nvlabs_to_rosinality, read_nvlabs_pickle

__all__ = ["LoadedGenerator", "build_generator", "infer_config", "load_generator", "save_generator", "sniff_format"]

MEAN_LATENT_SEED = 0


@dataclass
class LoadedGenerator:
    """A generator with its average latent `latent_avg` [style_dim] and where it came from."""

    generator: Generator
    latent_avg: torch.Tensor
    source_format: str  # "rosinality" | "nvlabs" | "zoo"
    latent_avg_computed: bool = False


def infer_config(sd: dict[str, torch.Tensor], source: str | None = None) -> GeneratorConfig:
    """Infer size, style_dim, n_mlp and channels from rosinality state-dict keys.

    Raises CheckpointError (prefixed with `source`, the file, when given) if a key the layout needs is absent.
    """
    try:
        rgb_idx = [int(m.group(1)) for k in sd if (m := re.match(r"^to_rgbs\.(\d+)\.conv\.weight$", k))]
        size = 2 ** (max(rgb_idx) + 3) if rgb_idx else 4
        n_mlp = len([k for k in sd if re.match(r"^style\.\d+\.weight$", k)])
        style_dim = sd["conv1.conv.modulation.weight"].shape[1]
        channels = {4: int(sd["input.input"].shape[1])}
        for j in range(len(rgb_idx)):
            channels[2 ** (j + 3)] = int(sd[f"convs.{2 * j}.conv.weight"].shape[1])
    except KeyError as exc:
        where = f"{source}: " if source else ""
        raise CheckpointError(f"{where}not a StyleGAN2 generator state dict: missing key {exc} (a generator "
                              "needs the rosinality keys of g_ema)") from None
    for cm in (2, 1):
        table = default_channels(cm)
        if all(table[r] == c for r, c in channels.items()):
            return GeneratorConfig(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=cm)
    return GeneratorConfig(size=size, style_dim=style_dim, n_mlp=n_mlp, channels=channels)


def build_generator(sd: dict[str, torch.Tensor], config: GeneratorConfig | None = None,
                    source: str | None = None) -> Generator:
    """Construct a Generator for `sd` and load it strictly (float32).

    `source` (the file) prefixes every message. A `module.` (DataParallel) prefix is stripped and missing noise
    buffers (not learned) are regenerated with a fixed seed, each with one note. Raises CheckpointError when learned
    weights are missing, unexpected or of another shape (naming the first keys).
    """
    what = source or "generator"
    sd = strip_module_prefix(sd, what)
    config = config or infer_config(sd, source)
    g = Generator(**{k: v for k, v in config.__dict__.items()})
    sd = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in sd.items()}
    load_checked(g, sd, f"{source}: generator weights" if source else "generator weights",
                 "expected the complete g_ema of a rosinality / zoo StyleGAN2 generator; download it again",
                 problem="do not fit the inferred architecture")
    return g.eval()


def _torch_load(path: Path) -> object:
    """A generator `.pt` read weights-only (argparse.Namespace args of rosinality train.py checkpoints allowed)."""
    return torch_load(path, what="generator file", allowed_globals=[argparse.Namespace])


def load_generator(path: str | Path, device: str | torch.device = "cpu", n_mean_latent: int = 10_000) -> LoadedGenerator:
    """Load a generator file of any supported format; compute latent_avg (seeded) when the file lacks it.

    Notes (one line each): DataParallel prefix stripped, noise buffers regenerated, latent_avg computed.
    Raises CheckpointError naming the file: missing, empty / HTML / truncated, pickled objects or code (never run),
    no 'g_ema', weights that do not fit, or a latent_avg of the wrong width.
    """
    path = Path(path)
    fmt = check_file(path, what="generator file", fix="download it again")
    source = "rosinality"
    if path.suffix == ".pkl" and fmt == "pickle":
        with open(path, "rb") as f:
            try:
                nv_sd, _ = read_nvlabs_pickle(f)
            except CheckpointError as exc:
                raise CheckpointError(f"{path}: {exc}") from None
        try:
            sd, latent_avg = nvlabs_to_rosinality(nv_sd)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        source, config = "nvlabs", None
    else:
        ckpt = _torch_load(path)
        if not isinstance(ckpt, dict) or "g_ema" not in ckpt:
            keys = list(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
            raise CheckpointError(
                f"{path} has no 'g_ema' generator (top-level: {keys}); expected a rosinality/zoo generator .pt "
                "(encoder checkpoints go to `zoo invert --weights`)"
            )
        sd = ckpt["g_ema"]
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: 'g_ema' is a {type(sd).__name__}, not a state dict; expected a "
                                  "rosinality/zoo generator .pt")
        latent_avg = ckpt.get("latent_avg")
        try:
            config = GeneratorConfig.from_dict(ckpt["config"]) if "config" in ckpt else None
        except (TypeError, ValueError, KeyError, AttributeError):
            raise CheckpointError(f"{path}: its 'config' is not a zoo GeneratorConfig; re-save it with "
                                  "zoo.stylegan2.checkpoints.save_generator (or drop 'config' to infer it)") from None
        source = "zoo" if config is not None else "rosinality"
    g = build_generator(sd, config, str(path)).to(device)
    computed = latent_avg is None
    if computed:
        gen = torch.Generator(device="cpu").manual_seed(MEAN_LATENT_SEED)
        with torch.no_grad():
            z = torch.randn(n_mean_latent, g.style_dim, generator=gen).to(device)
            latent_avg = g.style(z).mean(0)
        note(f"{path}: no latent_avg in the file: computed as the mean of {n_mean_latent} mapped z samples "
             f"(seed {MEAN_LATENT_SEED})")
    if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1:] != (g.style_dim,):
        got = list(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
        raise CheckpointError(f"{path}: latent_avg is {got} but the generator's w has {g.style_dim} dims; re-save "
                              "the file with the latent_avg of this generator (or without one to compute it)")
    latent_avg = latent_avg.float().reshape(-1, g.style_dim)[0].to(device)
    return LoadedGenerator(g, latent_avg, source, computed)


def save_generator(
    path: str | Path, g: Generator, latent_avg: torch.Tensor, *, half: bool = False, extra: dict | None = None
) -> None:
    """Save in the rosinality layout (`g_ema`, `latent_avg` [style_dim]) plus `config`; optionally fp16 storage."""
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone() for k, v in g.state_dict().items()}
    payload = {"g_ema": sd, "latent_avg": latent_avg.detach().cpu().float().reshape(-1), "config": g.config.to_dict()}
    if extra:
        payload.update(extra)
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
