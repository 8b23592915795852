"""Read NVlabs stylegan2-ada-pytorch `.pkl` files without executing anything from them, and convert
their `G_ema` state dict to the rosinality layout (rename/reshape only, no spatial flip).

NVlabs pickles hold `torch_utils.persistence` objects whose unpickling normally exec()s source embedded in the file.
`SafeUnpickler` maps `_reconstruct_persistent_obj` to a stub that keeps only `meta['state']`, turns every
non-allow-listed global into an inert placeholder and rebuilds tensors with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from collections import OrderedDict
from typing import Any, BinaryIO

import torch

from ..errors import CheckpointError


class _Inert:
    """Stand-in for any class or function named in the pickle: records arguments and state, runs nothing."""

    _qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self._qualname}>"


class PersistentObject:
    """What a `torch_utils.persistence` object becomes: its class name and its module `__dict__` state."""

    def __init__(self, meta: dict) -> None:
        self.class_name = meta.get("class_name", "?") if isinstance(meta, dict) else "?"
        self.state = meta.get("state", {}) if isinstance(meta, dict) else {}

    def __setstate__(self, state: Any) -> None:  # pragma: no cover - defensive
        self.state = state


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    return PersistentObject(meta)


def _load_storage_from_bytes(b: bytes) -> Any:
    return torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")


def _inert_global(module: str, name: str) -> type:
    return type(name, (_Inert,), {"_qualname": f"{module}.{name}"})


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    # written instead of _rebuild_parameter by some torch versions (StyleGAN3 pickles, README sg3 §3.4)
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch", "Size"): torch.Size,
}
for _dtype_name in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"):
    _ALLOWED[("torch", _dtype_name)] = getattr(torch, _dtype_name)


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that only resolves allow-listed globals; everything else becomes an inert placeholder.

    `inert` lists the `module.name` of every global replaced (never imported, never called).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inert: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name)
        self.inert.append(f"{module}.{name}")
        return _inert_global(module, name)

    def persistent_load(self, pid: Any) -> Any:  # pragma: no cover - NVlabs pickles use none
        raise pickle.UnpicklingError("persistent ids are not supported in NVlabs pickles")


def module_state_dict(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Walk `_parameters`, `_buffers` and `_modules` of an unpickled module tree -> flat state dict."""
    state = obj.state if isinstance(obj, (PersistentObject, _Inert)) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"pickle object at '{prefix or '<root>'}' is not a torch module")
    out: dict[str, torch.Tensor] = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for k, v in (state.get(group) or {}).items():
            if group == "_buffers" and isinstance(skip, (set, frozenset, list)) and k in skip:
                continue
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v.detach()
    for k, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, prefix + k + "."))
    return out


_NVLABS_MODULES = ("torch_utils.", "dnnlib.", "training.", "numpy.", "torch.", "collections.", "builtins.set")


def _foreign(inert: list[str]) -> str:
    """' (its pickle names X, Y: not loaded, nothing was run)' for globals no NVlabs pickle holds, else ''."""
    names = [n for n in dict.fromkeys(inert) if not n.startswith(_NVLABS_MODULES)]
    if not names:
        return ""
    return f" (its pickle names {', '.join(names[:3])}: objects/code that were not loaded, nothing was run)"


def read_nvlabs_pickle(f: BinaryIO) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (G_ema state dict, init_kwargs) of an NVlabs network pickle, executing nothing from the file.

    Raises CheckpointError (without the file name: callers prefix it) for unreadable, legacy TensorFlow or foreign
    pickles; globals that no NVlabs pickle holds (e.g. os.system) are named as not loaded.
    """
    unpickler = SafeUnpickler(f)
    try:
        data = unpickler.load()
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad file
        msg = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"not a readable NVlabs network pickle ({type(exc).__name__}: {msg})"
                              f"{_foreign(unpickler.inert)}; download it again") from None
    if isinstance(data, tuple):
        raise CheckpointError(
            "this is a legacy TensorFlow StyleGAN pickle (tuple G, D, Gs); convert it with NVlabs' legacy.py first"
        )
    if not isinstance(data, dict) or "G_ema" not in data:
        raise CheckpointError("pickle has no 'G_ema' entry: not an NVlabs stylegan2-ada-pytorch network pickle"
                              f"{_foreign(unpickler.inert)}; give the network-snapshot-*.pkl of stylegan2-ada-pytorch")
    g = data["G_ema"]
    try:
        sd = module_state_dict(g)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{_foreign(unpickler.inert)}: not an NVlabs network pickle; give the "
                              "network-snapshot-*.pkl of stylegan2-ada-pytorch") from None
    kwargs = g.state.get("_init_kwargs", {}) if isinstance(g, PersistentObject) else {}
    return sd, dict(kwargs) if isinstance(kwargs, dict) else {}


_BLOCK = re.compile(r"^synthesis\.b(\d+)\.(.+)$")


def nvlabs_to_rosinality(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Convert an NVlabs `G_ema` state dict to rosinality keys; returns (state_dict, latent_avg [w_dim] or None)."""
    if "synthesis.input.freqs" in sd:  # StyleGAN3 branch: NVlabs keys are kept, see zoo.stylegan3.checkpoints
        raise CheckpointError("this is a StyleGAN3 generator (synthesis.input.freqs): load it with "
                              "zoo.stylegan3.checkpoints.load_generator, not as a StyleGAN2 generator")
    out: dict[str, torch.Tensor] = {}
    latent_avg = None
    unused = 0
    for key, t in sd.items():
        if key == "mapping.w_avg":
            latent_avg = t.clone()
            continue
        m = re.match(r"^mapping\.fc(\d+)\.(weight|bias)$", key)
        if m:
            out[f"style.{int(m.group(1)) + 1}.{m.group(2)}"] = t
            continue
        m = _BLOCK.match(key)
        if not m:
            raise CheckpointError(f"unexpected NVlabs key '{key}' (only StyleGAN2 'skip' generators are supported)")
        res, rest = int(m.group(1)), m.group(2)
        j = int(math.log2(res)) - 3  # block index for res >= 8
        if rest == "const":
            out["input.input"] = t.unsqueeze(0)
            continue
        if rest == "resample_filter":
            if res == 4:
                unused += 1
                continue
            out[f"to_rgbs.{j}.upsample.kernel"] = t * 4
            continue
        layer, _, field = rest.partition(".")
        if layer == "torgb":
            target = "to_rgb1" if res == 4 else f"to_rgbs.{j}"
            if field == "weight":
                out[f"{target}.conv.weight"] = t.unsqueeze(0)
            elif field == "bias":
                out[f"{target}.bias"] = t.view(1, -1, 1, 1)
            elif field.startswith("affine."):
                out[f"{target}.conv.modulation.{field[7:]}"] = t
            else:
                raise CheckpointError(f"unexpected NVlabs key '{key}'")
            continue
        if layer not in ("conv0", "conv1"):
            raise CheckpointError(f"unexpected NVlabs key '{key}'")
        if res == 4:
            target, noise_idx = "conv1", 0
        elif layer == "conv0":
            target, noise_idx = f"convs.{2 * j}", 2 * int(math.log2(res)) - 5
        else:
            target, noise_idx = f"convs.{2 * j + 1}", 2 * int(math.log2(res)) - 4
        if field == "weight":
            out[f"{target}.conv.weight"] = t.unsqueeze(0)
        elif field == "bias":
            out[f"{target}.activate.bias"] = t
        elif field.startswith("affine."):
            out[f"{target}.conv.modulation.{field[7:]}"] = t
        elif field == "noise_strength":
            out[f"{target}.noise.weight"] = t.reshape(1)
        elif field == "noise_const":
            out[f"noises.noise_{noise_idx}"] = t.reshape(1, 1, *t.shape[-2:])
        elif field == "resample_filter":
            if layer == "conv0" and res > 4:
                out[f"{target}.conv.blur.kernel"] = t * 4
        else:
            raise CheckpointError(f"unexpected NVlabs key '{key}'")
    return out, latent_avg
