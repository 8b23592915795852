"""Write shipped weights of the lorelei domain (file, model card, sha256 in `weights/manifest.json`) with the peeps
exporter pointed at the lorelei weights folder."""

from __future__ import annotations

from pathlib import Path

import torch

from zoo_peeps import export as peeps_export

from .domain import WEIGHTS_DIR


def save_small_net(net: torch.nn.Module, filename: str) -> Path:
    """fp16 safetensors of a state dict in the lorelei weights folder."""
    return peeps_export.save_small_net(net, filename, weights_dir=WEIGHTS_DIR)


def register_weights(role: str, src: Path, *, command: str, card: dict, filename: str | None = None) -> dict:
    """Copy `src` into the lorelei weights folder, write its model card, record its sha256 in the manifest."""
    return peeps_export.register_weights(role, src, command=command, card=card, filename=filename,
                                         weights_dir=WEIGHTS_DIR, domain="lorelei")
