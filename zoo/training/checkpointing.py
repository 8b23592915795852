"""Atomic, resumable training checkpoints (torch.save of plain containers; loaded with weights_only=True)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as weights-only-loadable containers."""
    np_state = np.random.get_state()
    return {
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file then rename, so a kill never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def compact_training_state(src: str | Path, dst: str | Path) -> int:
    """Copy a training `state.pt` with optimiser moments stored in bfloat16 (weights stay fp32), so a resumable
    run fits in a small committed file; torch casts the moments back to fp32 when the optimiser loads them.
    Returns the size in bytes."""

    def shrink(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.to(torch.bfloat16) if obj.is_floating_point() and obj.numel() > 1 else obj
        if isinstance(obj, dict):
            return {k: shrink(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [shrink(v) for v in obj]
        return obj

    st = load_checkpoint(src)
    for key in [k for k in st if k.endswith("_optim")]:
        st[key] = {"state": shrink(st[key]["state"]), "param_groups": st[key]["param_groups"]}
    save_atomic(st, dst)
    return Path(dst).stat().st_size
