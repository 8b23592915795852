"""Weights files of the small configurations: fp16 safetensors + the `EncoderConfig` as metadata.

Layout (as the official checkpoints, minus the decoder): `encoder.*` (or `hypernet.*` for HyperStyle) fp16 tensors,
`latent_avg` [n_styles, w_dim] float32; one metadata entry `zoo_encoder` = sorted JSON {format, config (the
EncoderConfig), training (steps, seed, wall time, validation metrics, generator / W-encoder sha256)}, so that the
file (and its sha256) is reproducible. HyperStyle's shared hypernet appears once (safetensors refuses aliased
tensors); its aliases `refinement_blocks.{L}.hypernet.*` are restored on load, as `zoo.encoders.official` does for
official files. Loading goes through `zoo.checkpoint_io` like every other loader: keys saved from DataParallel
(`module.`) are accepted with a note, errors name the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from zoo.checkpoint_io import strip_module_prefix
from zoo.encoders.official import _fill_aliases, load_strict
from zoo.errors import CheckpointError
from zoo.stylegan2 import LayerSlot

from .configs import EncoderConfig, build_module

FORMAT = "zoo-encoder/1"


def _prefix(cfg: EncoderConfig) -> str:
    return "hypernet" if cfg.method == "hyperstyle" else "encoder"


def unique_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict without aliased entries (first name of every tensor kept), detached on the CPU."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in module.state_dict(keep_vars=True).items():
        if id(v) in seen:
            continue
        seen.add(id(v))
        out[k] = v.detach().cpu()
    return out


def save_encoder_file(path: str | Path, module: nn.Module, cfg: EncoderConfig, latent_avg: torch.Tensor,
                      training: dict[str, Any] | None = None, half: bool = True) -> Path:
    """Write `module` (fp16 unless half=False) + latent_avg + config metadata atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    p = _prefix(cfg)
    tensors = {f"{p}.{k}": (v.half() if half and v.is_floating_point() else v).contiguous()
               for k, v in unique_state_dict(module).items()}
    tensors["latent_avg"] = latent_avg.detach().cpu().float().reshape(cfg.n_styles, cfg.style_dim).contiguous()
    # one metadata entry: safetensors writes its metadata map in a random order, and the file's sha256 must be
    # reproducible (HyperStyle records its W-encoder's sha256; bench cache keys use them)
    meta = {"zoo_encoder": json.dumps({"format": FORMAT, "config": json.loads(cfg.to_json()), "training": training or {}},
                                      sort_keys=True, default=str)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


@dataclass
class EncoderFile:
    """A loaded small-configuration file: module (eval mode, frozen), its config, latent_avg [n_styles, w_dim]."""

    module: nn.Module
    config: EncoderConfig
    latent_avg: torch.Tensor
    training: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def read_metadata(path: str | Path) -> tuple[EncoderConfig, dict[str, Any]]:
    """(config, training facts) from the file's metadata.

    Raises CheckpointError naming the file when it is missing, not safetensors, or has no zoo-encoder metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"encoder file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a safetensors encoder file ({first}); retrain or re-export it "
                              "(`zoo train <method> --install`)") from None
    try:
        info = json.loads(meta["zoo_encoder"])
        if info.get("format") != FORMAT:
            raise ValueError(info.get("format"))
    except (KeyError, ValueError, TypeError, AttributeError):
        raise CheckpointError(f"{path}: not a zoo encoder file (no '{FORMAT}' metadata); official .pt checkpoints "
                              "go to the `weights=PATH` option") from None
    return EncoderConfig.from_json(info["config"]), dict(info.get("training") or {})


def load_encoder_file(path: str | Path, layer_slots: list[LayerSlot] | None = None,
                      device: str | torch.device = "cpu", expect_method: str | None = None) -> EncoderFile:
    """Rebuild the module from the stored config and assign the weights strictly (float32, on `device`).

    A DataParallel `module.` prefix (before or after `encoder.` / `hypernet.`) is stripped with one note.
    Raises CheckpointError naming the file: unreadable, another method than `expect_method`, no latent_avg, or
    weights that do not fit the stored config (first missing / unexpected keys).
    """
    path = Path(path)
    cfg, training = read_metadata(path)
    if expect_method is not None and cfg.method != expect_method:
        raise CheckpointError(f"{path} holds a {cfg.method} model, not {expect_method}")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    except Exception as exc:  # noqa: BLE001 - a truncated file has readable metadata but not its tensors
        raise CheckpointError(f"{path}: tensors unreadable ({type(exc).__name__}; truncated?); retrain or "
                              "re-export it") from None
    tensors = strip_module_prefix(tensors, str(path), keep=("latent_avg",))
    p = _prefix(cfg) + "."
    sd = {k[len(p):]: (v.float() if v.is_floating_point() else v).to(device) for k, v in tensors.items()
          if k.startswith(p)}
    sd = strip_module_prefix(sd, str(path))  # `encoder.module.*`: only the encoder was wrapped
    if "latent_avg" not in tensors:
        raise CheckpointError(f"{path} has no latent_avg; retrain or re-export it (`zoo train {cfg.method}`)")
    with torch.random.fork_rng(devices=[]):  # the throw-away init must not move the caller's RNG
        module = build_module(cfg, layer_slots)  # small: a CPU init is cheaper than importing the meta kernels
    sd = _fill_aliases(module, sd)
    load_strict(module, sd, str(path), f"config: {cfg.encoder_type}, {cfg.n_styles} styles x {cfg.style_dim}")
    module.to(device).eval().requires_grad_(False)
    return EncoderFile(module, cfg, tensors["latent_avg"].float().to(device), training, path)
