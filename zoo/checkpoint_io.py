"""Reading weights files and fitting their state dicts to modules: the one place every loader goes through.

* `torch_load(path)`: `torch.load(weights_only=True)` with torch's warnings silenced; every failure is a one-line
  CheckpointError that names the file and says what to do (empty file, HTML/text page, truncated or corrupt download,
  a pickle holding Python objects or code -- which is never loaded nor run).
* `strip_module_prefix(sd, source)`: keys saved from `nn.DataParallel` / DDP (every key starts with `module.`)
  lose that prefix (one note).
* `fit_state_dict(module, sd, source)`: missing *non-learned* buffers are filled -- StyleGAN2 noise maps
  (`noise_<i>`) are regenerated N(0, 1) from a seeded generator, BatchNorm counters set to 0, constant buffers (blur
  kernels) taken from the module's own construction; missing learned parameters and BatchNorm running statistics stay
  missing (an error naming the file and the first missing keys).
* `load_checked(module, sd, what)`: strip + fit + strict load, with one-line errors and one note per fix-up.
* `note(message)`: one informational line (`note: ...` on stderr, or the `zoo` logger when logging is configured).
"""

from __future__ import annotations

import logging
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .errors import CheckpointError

logger = logging.getLogger("zoo")

T = TypeVar("T")

MODULE_PREFIX = "module."
NOISE_SEED = 0
DEFAULT_FIX = "download it again from its original source"

_NOISE_KEY = re.compile(r"(?:^|\.)noise_\d+$")
_STATISTICS = ("running_mean", "running_var")  # estimated from data: as required as learned parameters
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
# pickled *data* objects (not weights) that old checkpoints carry, e.g. opts as an argparse.Namespace with paths
_DATA_MODULES = ("argparse", "pathlib", "collections", "datetime", "enum", "numpy", "typing", "decimal", "fractions")
# modules whose globals in a pickle can only mean "run code"
_CODE_MODULES = ("os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "shutil", "socket", "importlib",
                 "runpy", "pty", "code", "webbrowser", "ctypes", "multiprocessing", "pickle", "marshal", "types")


# --------------------------------------------------------------------------------------------- notes
def note(message: str) -> None:
    """Print one informational line: `note: <message>` on stderr, or an INFO record of the `zoo` logger when the
    application configured logging (handlers on `zoo` or the root logger). `logging.getLogger('zoo').setLevel(
    logging.WARNING)` (or `zoo -q`) silences notes. Never raises."""
    from .log import note as log_note

    log_note(message)


# --------------------------------------------------------------------------------------------- files
def sniff_format(path: str | Path) -> str:
    """'zip' (torch.save), 'pickle' (NVlabs .pkl or legacy torch) or 'unknown' (empty file, HTML page, ...)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    if zipfile.is_zipfile(path):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def unreadable_reason(path: str | Path) -> str:
    """Why a file of format 'unknown' is not a checkpoint, as a phrase (empty, HTML/text, unknown header)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return ("is empty (0 bytes), neither a torch checkpoint nor a pickle (an interrupted download or save, or an "
                "HTML download-quota page?)")
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04"):
        return ("is a truncated or corrupt torch checkpoint (an incomplete zip archive: an interrupted download or "
                "save)")
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in text:
        return "is an HTML page, not a torch checkpoint (a download-quota or login page?)"
    try:
        head.decode("utf-8")
        return "is a text file, neither a torch checkpoint nor a pickle (an HTML download-quota page or an error text?)"
    except UnicodeDecodeError:
        return f"is neither a torch checkpoint nor a pickle (unrecognised header {head[:8]!r}; an HTML download?)"


def check_file(path: str | Path, *, what: str = "checkpoint", fix: str = DEFAULT_FIX) -> str:
    """`sniff_format(path)` after checking the file exists and is a zip or pickle.

    Raises CheckpointError (naming the file and `fix`) when it is missing, empty, HTML/text or of unknown format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    fmt = sniff_format(path)
    if fmt == "unknown":
        raise CheckpointError(f"{path} {unreadable_reason(path)}; {fix}")
    return fmt


def refused_global(exc: BaseException) -> str | None:
    """The `module.name` of the global that weights-only unpickling refused, if the error names one."""
    found = _GLOBAL_RE.search(str(exc))
    if found is None:
        return None
    name = found.group(1)
    return name if "." in name else f"builtins.{name}"


def refused_objects_message(path: str | Path, names: Sequence[str], fix: str = DEFAULT_FIX,
                            objects_fix: str | None = None) -> str:
    """One line: `path` holds pickled objects or code (`names`) that were not loaded (nor run)."""
    shown = ", ".join(dict.fromkeys(names)) or "a non-builtin Python object"
    roots = {n.split(".", 1)[0] for n in names}
    if roots and roots <= set(_DATA_MODULES):
        return (f"{path}: its pickle holds Python objects ({shown}) that are not loaded (weights-only loading runs "
                f"nothing from a file); {objects_fix or fix}")
    kind = "code" if roots & set(_CODE_MODULES) else "Python objects or code"
    return (f"{path}: its pickle holds {kind} ({shown}) that is not loaded and was not run: it is not a plain weights "
            f"file; {fix}")


def _torch_error(path: Path, exc: BaseException, fix: str, objects_fix: str | None) -> CheckpointError:
    if isinstance(exc, pickle.UnpicklingError):
        name = refused_global(exc)
        if name is not None:
            return CheckpointError(refused_objects_message(path, [name], fix, objects_fix))
        return CheckpointError(f"{path}: not a weights-only torch checkpoint (its pickle holds data that "
                               f"weights-only loading does not read); {fix}")
    if isinstance(exc, EOFError):
        return CheckpointError(f"{path} is truncated (it ends in the middle of its data: an interrupted download "
                               f"or save); {fix}")
    msg = str(exc).strip()
    if isinstance(exc, RuntimeError) and ("PytorchStreamReader" in msg or "zip" in msg.lower()):
        return CheckpointError(f"{path} is corrupt or truncated (not a complete torch zip archive: an interrupted "
                               f"download or save); {fix}")
    first = msg.splitlines()[0][:200] if msg else type(exc).__name__
    return CheckpointError(f"{path}: cannot be read as a torch checkpoint ({first}); {fix}")


def torch_load(path: str | Path, *, what: str = "checkpoint", fix: str = DEFAULT_FIX,
               objects_fix: str | None = None, allowed_globals: Iterable[Any] = ()) -> Any:
    """`torch.load(path, map_location='cpu', weights_only=True)` without torch's warnings, executing nothing.

    `allowed_globals`: extra plain-data classes to accept (e.g. argparse.Namespace). `fix` ends every error (what the
    user should do); `objects_fix` replaces it when the pickle only holds plain data objects (Namespace, Path, ...).
    Raises CheckpointError naming the file: not found, empty / HTML / unknown format, truncated or corrupt, or a pickle
    holding objects or code (never loaded nor run).
    """
    path = Path(path)
    check_file(path, what=what, fix=fix)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(list(allowed_globals)):
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line naming the file
        raise _torch_error(path, exc, fix, objects_fix) from None


# --------------------------------------------------------------------------------------------- state dicts
def strip_module_prefix(sd: Mapping[str, T], source: str, *, keep: Sequence[str] = (),
                        notify: bool = True) -> dict[str, T]:
    """Remove the `module.` prefix (nn.DataParallel / DistributedDataParallel) when every key carries it (repeatedly,
    for nested wrappers); keys listed in `keep` (e.g. a top-level `latent_avg`) need not carry it. One note when
    `notify`. Keys are otherwise left alone."""
    out = dict(sd)
    stripped = 0
    while True:
        keys = [k for k in out if k not in keep]
        if not keys or not all(isinstance(k, str) and k.startswith(MODULE_PREFIX) for k in keys):
            break
        out = {(k[len(MODULE_PREFIX):] if k not in keep else k): v for k, v in out.items()}
        stripped += 1
    if stripped and notify:
        note(f"{source}: keys saved from DataParallel: stripped the '{MODULE_PREFIX * stripped}' prefix")
    return out


def has_module_prefix(sd: Mapping[str, Any], keep: Sequence[str] = ()) -> bool:
    """Whether every key (but `keep`) starts with `module.`."""
    keys = [k for k in sd if k not in keep]
    return bool(keys) and all(isinstance(k, str) and k.startswith(MODULE_PREFIX) for k in keys)


def is_noise_buffer(key: str) -> bool:
    """StyleGAN2 noise maps `noises.noise_<i>` (fixed N(0, 1) samples, not learned)."""
    return bool(_NOISE_KEY.search(key))


def fit_state_dict(module: nn.Module, sd: Mapping[str, torch.Tensor], *, seed: int = NOISE_SEED
                   ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Fill the non-learned buffers of `module` that `sd` lacks; returns (state dict, filled keys, missing keys).

    Filled: noise maps regenerated N(0, 1) with `torch.Generator().manual_seed(seed)` in state-dict order (so a given
    file always gets the same noise), BatchNorm `num_batches_tracked` = 0, other buffers = the module's own value
    (e.g. blur kernels; impossible on the meta device -> reported missing). Missing: learned parameters, BatchNorm
    running statistics and unfillable buffers, in state-dict order.
    """
    params = {n for n, _ in module.named_parameters(remove_duplicate=False)}
    expected = module.state_dict(keep_vars=True)
    out = dict(sd)
    filled: list[str] = []
    missing: list[str] = []
    device = next((v.device for v in sd.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
    gen: torch.Generator | None = None
    for key, ref in expected.items():
        if key in out:
            continue
        if key in params or key.endswith(_STATISTICS):
            missing.append(key)
        elif is_noise_buffer(key):
            gen = gen or torch.Generator().manual_seed(seed)
            out[key] = torch.randn(tuple(ref.shape), generator=gen, dtype=torch.float32).to(device)
            filled.append(key)
        elif key.endswith("num_batches_tracked"):
            out[key] = torch.zeros((), dtype=torch.long, device=device)
            filled.append(key)
        elif not ref.is_meta:
            out[key] = ref.detach().clone().to(device)
            filled.append(key)
        else:
            missing.append(key)
    return out, filled, missing


def filled_note(source: str, filled: Sequence[str], seed: int = NOISE_SEED) -> str:
    """One line describing the buffers `fit_state_dict` filled."""
    noise = [k for k in filled if is_noise_buffer(k)]
    other = [k for k in filled if not is_noise_buffer(k)]
    parts = []
    if noise:
        parts.append(f"{len(noise)} noise buffer(s) missing (not learned; e.g. {noise[0]!r}): regenerated from "
                     f"N(0, 1) with seed {seed}")
    if other:
        parts.append(f"{len(other)} other non-learned buffer(s) missing (e.g. {other[0]!r}): set to their defaults")
    return f"{source}: " + "; ".join(parts)


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _examples(keys: Sequence[str], n: int = 3) -> str:
    more = ", ..." if len(keys) > n else ""
    return ", ".join(repr(k) for k in keys[:n]) + more


def load_checked(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str, hint: str = "", *,
                 assign: bool = False, seed: int = NOISE_SEED, problem: str = "does not fit") -> None:
    """Strictly load `sd` into `module` after stripping a DataParallel prefix and filling missing non-learned buffers
    (see `fit_state_dict`); one note per fix-up, printed once the load succeeded.

    `what` names the file (and part) in messages; `hint` is appended to errors; `assign=True` assigns the tensors
    (modules built on the meta device). Raises CheckpointError `<what> does not fit: N missing key(s) (e.g. ...);
    M unexpected key(s) ...; size mismatch for ...` when learned tensors are missing, unexpected or of another shape,
    or when an entry is not a tensor.
    """
    tail = f" ({hint})" if hint else ""
    bad = next((k for k, v in sd.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointError(f"{what} {problem}: entry {bad!r} is a {type(sd[bad]).__name__}, not a tensor{tail}")
    prefixed = has_module_prefix(sd)
    sd = strip_module_prefix(sd, what, notify=False)
    sd, filled, missing = fit_state_dict(module, sd, seed=seed)
    expected = module.state_dict()
    unexpected = [k for k in sd if k not in expected]
    mismatched = [k for k in expected if k in sd and _shape(sd[k]) != _shape(expected[k])]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {_examples(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {_examples(unexpected)})")
        if mismatched:
            k = mismatched[0]
            parts.append(f"size mismatch for {k!r}: checkpoint {_shape(sd[k])} vs model {_shape(expected[k])}")
        raise CheckpointError(f"{what} {problem}: {'; '.join(parts)}{tail}")
    try:
        module.load_state_dict(dict(sd), strict=True, assign=assign)
    except RuntimeError as exc:  # rare (e.g. a dtype the module refuses): keys and shapes are checked above
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{what} {problem}: {' '.join(s.strip() for s in first[:3])[:300]}{tail}") from None
    if prefixed:
        note(f"{what}: keys saved from DataParallel: stripped the '{MODULE_PREFIX}' prefix")
    if filled:
        note(filled_note(what, filled, seed))


__all__ = ["DEFAULT_FIX", "NOISE_SEED", "check_file", "fit_state_dict", "has_module_prefix", "is_noise_buffer",
           "load_checked", "note", "refused_global", "refused_objects_message", "sniff_format", "strip_module_prefix",
           "torch_load", "unreadable_reason"]
