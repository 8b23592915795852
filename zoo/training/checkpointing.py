"""Atomic, resumable training checkpoints (torch.save of plain containers; loaded with weights_only=True).

Resuming reads a run directory's `state.pt` through `load_training_state`: an empty, HTML, truncated, foreign (a dict
without the trainer's keys, a generator file, ...) or malicious file (a pickle naming code: never loaded nor run) is a
one-line CheckpointError that names the file and says to move it away or pass a fresh --out; `restoring(...)` turns
failures while restoring its contents into the same kind of error. The file is never modified nor deleted.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint_io import torch_load
from ..errors import CheckpointError, InputError, ZooError

RESTART_HINT = "move it away or pass a fresh --out to start over"


class ResumeMismatchError(InputError, ValueError):
    """A run directory's state.pt was made with other settings (also a ValueError, as it was before)."""


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
    """A training state read weights-only (nothing from the file is run). Raises CheckpointError naming the file when
    it is missing, unreadable, holds objects or code, or is not a dict."""
    st = torch_load(path, what="training state", fix=RESTART_HINT)
    if not isinstance(st, dict):
        raise CheckpointError(f"{path} is not a training state (it holds a {type(st).__name__}); {RESTART_HINT}")
    return st


def _looks_like(st: dict[str, Any]) -> str:
    keys = set(map(str, st))
    if "g_ema" in keys and "g_optim" not in keys:
        return "; it looks like a generator file"
    if "state_dict" in keys:
        return "; it looks like an encoder checkpoint"
    if "trainer" in keys and "method" in keys:
        return f"; it is the state of a {st.get('method')} encoder run"
    if {"g", "d", "g_ema"} <= keys:
        return "; it is the state of a generator run"
    if "encoder" in keys and "discriminator" in keys:
        return "; it is the state of an IDInvert run"
    return ""


def load_training_state(path: str | Path, required: Sequence[str], kind: str) -> dict[str, Any]:
    """The `state.pt` of a run training `kind` (e.g. 'the psp encoder', 'the generator'), checked to hold the
    `required` keys.

    Raises CheckpointError naming the file, what is wrong and `RESTART_HINT`: empty / HTML / truncated file, a pickle
    with objects or code (not loaded, nothing run), not a dict, or a dict without the keys of a `kind` run.
    """
    path = Path(path)
    st = torch_load(path, what=f"training state of {kind}", fix=RESTART_HINT)
    if not isinstance(st, dict):
        raise CheckpointError(f"{path} is not a training state of {kind} (it holds a {type(st).__name__}); "
                              f"{RESTART_HINT}")
    missing = [k for k in required if k not in st]
    if missing:
        top = sorted(map(str, st))[:6]
        raise CheckpointError(f"{path} is not a training state of {kind} (no {', '.join(map(repr, missing[:3]))}; "
                              f"top-level keys {top}{_looks_like(st)}); {RESTART_HINT}")
    return st


@contextmanager
def restoring(path: str | Path, kind: str) -> Iterator[None]:
    """Around restoring a loaded state: a KeyError / shape mismatch / bad type inside it becomes a CheckpointError
    naming `path` with `RESTART_HINT` (ZooErrors, e.g. a settings mismatch, pass through unchanged)."""
    try:
        yield
    except ZooError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        msg = " ".join(str(exc).split())[:200] or type(exc).__name__
        what = f"missing entry {msg}" if isinstance(exc, KeyError) else msg
        raise CheckpointError(f"{path}: cannot resume training {kind} from this state ({what}); "
                              f"{RESTART_HINT}") from None


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


class StopRequest:
    """Ctrl-C / SIGTERM turned into a flag checked between training steps, so a stopped run saves a consistent
    state (end of the last finished step) instead of dying mid-step; a second Ctrl-C interrupts at once.

    Use as a context manager in the main thread (elsewhere it only watches nothing: signals go to the main thread);
    `requested` is True once a signal arrived. Previous handlers are restored on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # second signal: the old behaviour
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
