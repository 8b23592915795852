"""Load and save StyleGAN2 generators.

Accepted inputs:
* rosinality `.pt` (`{'g_ema', 'latent_avg'}` from convert_weight.py, or a train.py checkpoint without latent_avg),
  with size, style_dim, n_mlp and the channel table inferred from the keys;
* NVlabs stylegan2-ada-pytorch `.pkl` (read by a code-free unpickler, converted to the rosinality layout);
* zoo's own files: the rosinality layout plus a `config` dict (possibly fp16 tensors).
All `.pt` reads use `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import argparse
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from .generator import Generator, GeneratorConfig, default_channels
from .nvlabs import nvlabs_to_rosinality, read_nvlabs_pickle


@dataclass
class LoadedGenerator:
    """A generator with its average latent `latent_avg` [style_dim] and where it came from."""

    generator: Generator
    latent_avg: torch.Tensor
    source_format: str  # "rosinality" | "nvlabs" | "zoo"
    latent_avg_computed: bool = False


def infer_config(sd: dict[str, torch.Tensor]) -> GeneratorConfig:
    """Infer size, style_dim, n_mlp and channels from rosinality state-dict keys."""
    try:
        rgb_idx = [int(m.group(1)) for k in sd if (m := re.match(r"^to_rgbs\.(\d+)\.conv\.weight$", k))]
        size = 2 ** (max(rgb_idx) + 3) if rgb_idx else 4
        n_mlp = len([k for k in sd if re.match(r"^style\.\d+\.weight$", k)])
        style_dim = sd["conv1.conv.modulation.weight"].shape[1]
        channels = {4: int(sd["input.input"].shape[1])}
        for j in range(len(rgb_idx)):
            channels[2 ** (j + 3)] = int(sd[f"convs.{2 * j}.conv.weight"].shape[1])
    except KeyError as exc:
        raise CheckpointError(f"not a StyleGAN2 generator state dict: missing key {exc}") from None
    for cm in (2, 1):
        table = default_channels(cm)
        if all(table[r] == c for r, c in channels.items()):
            return GeneratorConfig(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=cm)
    return GeneratorConfig(size=size, style_dim=style_dim, n_mlp=n_mlp, channels=channels)


def build_generator(sd: dict[str, torch.Tensor], config: GeneratorConfig | None = None) -> Generator:
    """Construct a Generator for `sd` and load it strictly (float32)."""
    config = config or infer_config(sd)
    g = Generator(**{k: v for k, v in config.__dict__.items()})
    sd = {k: v.float() for k, v in sd.items()}
    try:
        g.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:3]) if len(first) > 1 else first[0]
        raise CheckpointError(f"generator weights do not fit the inferred architecture: {detail[:300]}") from None
    return g.eval()


def _torch_load(path: Path) -> object:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).strip().splitlines()[0][:200]
        raise CheckpointError(f"{path}: cannot be read as a weights-only torch checkpoint ({msg})") from None


def sniff_format(path: Path) -> str:
    """'zip' (torch.save), 'pickle' (NVlabs .pkl or legacy torch) or 'unknown' (e.g. an HTML error page)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if zipfile.is_zipfile(path):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def load_generator(path: str | Path, device: str | torch.device = "cpu", n_mean_latent: int = 10_000) -> LoadedGenerator:
    """Load a generator file of any supported format; compute latent_avg (seeded) when the file lacks it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"generator file not found: {path}")
    fmt = sniff_format(path)
    if fmt == "unknown":
        raise CheckpointError(
            f"{path} is neither a torch checkpoint nor a pickle (an HTML download-quota page?); download it again"
        )
    source = "rosinality"
    if path.suffix == ".pkl" and fmt == "pickle":
        with open(path, "rb") as f:
            nv_sd, _ = read_nvlabs_pickle(f)
        sd, latent_avg = nvlabs_to_rosinality(nv_sd)
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
        latent_avg = ckpt.get("latent_avg")
        config = GeneratorConfig.from_dict(ckpt["config"]) if "config" in ckpt else None
        source = "zoo" if config is not None else "rosinality"
    g = build_generator(sd, config).to(device)
    computed = latent_avg is None
    if computed:
        gen = torch.Generator(device="cpu").manual_seed(0)
        with torch.no_grad():
            z = torch.randn(n_mean_latent, g.style_dim, generator=gen).to(device)
            latent_avg = g.style(z).mean(0)
    latent_avg = latent_avg.float().reshape(-1, g.style_dim)[0].to(device) if latent_avg.ndim > 1 else latent_avg.float().to(device)
    if latent_avg.shape[-1] != g.style_dim:
        raise CheckpointError(f"latent_avg has {latent_avg.shape[-1]} dims but the generator's w has {g.style_dim}")
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
