"""Tiny files in the official formats, written into a test's temporary folder: a 64-px rosinality generator `.pt`,
the same generator as an NVlabs stylegan2-ada-pytorch `.pkl` (persistent-object pickle, as NVlabs writes it), pSp /
e4e checkpoints in the official layout with that decoder, InterFaceGAN boundaries and a GANSpace PCA file.

Encoder checkpoints keep the official modules and keys (IR-SE50 at 256 input) but every tensor of one shape shares
one random storage, so a 150 M-parameter encoder is a file of a few MB; the numbers are meaningless, the layout and
the code paths are the official ones.
"""

from __future__ import annotations

import math
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from zoo.encoders.official import build_encoder
from zoo.stylegan2 import Generator

SIZE, STYLE_DIM = 64, 512
CHANNELS = {4: 32, 8: 32, 16: 32, 32: 16, 64: 16}


def tiny_generator(seed: int = 0) -> Generator:
    """A 64x64 StyleGAN2 (style_dim 512 as the official encoders expect, 2 mapping layers, narrow convs)."""
    torch.manual_seed(seed)
    return Generator(SIZE, STYLE_DIM, 2, channels=dict(CHANNELS)).eval()


def latent_avg(g: Generator) -> torch.Tensor:
    """Mean of 512 mapped z (seeded: the same tensor every call) -> [512]."""
    with torch.no_grad():
        return g.style(torch.randn(512, STYLE_DIM, generator=torch.Generator().manual_seed(11))).mean(0)


def save_rosinality(g: Generator, path: Path, *, with_latent_avg: bool = True) -> Path:
    """rosinality convert_weight.py layout: {'g_ema': state_dict, 'latent_avg': [512]}."""
    payload: dict[str, Any] = {"g_ema": g.state_dict()}
    if with_latent_avg:
        payload["latent_avg"] = latent_avg(g)
    torch.save(payload, path)
    return path


def rosinality_to_nvlabs(sd: dict[str, torch.Tensor], w_avg: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inverse of `zoo.stylegan2.nvlabs.nvlabs_to_rosinality` (rename and squeeze, no flips)."""
    out: dict[str, torch.Tensor] = {"mapping.w_avg": w_avg.clone()}
    n_rgb = len([k for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight")])
    for key, t in sd.items():
        parts = key.split(".")
        if parts[0] == "style":
            out[f"mapping.fc{int(parts[1]) - 1}.{parts[2]}"] = t
        elif key == "input.input":
            out["synthesis.b4.const"] = t[0]
        elif parts[0] == "noises":
            idx = int(parts[1].split("_")[1])
            res = 4 if idx == 0 else 2 ** ((idx + 5) // 2)
            layer = "conv1" if idx == 0 or idx % 2 == 0 else "conv0"
            out[f"synthesis.b{res}.{layer}.noise_const"] = t[0, 0]
        elif parts[0] in ("conv1", "convs"):
            if parts[0] == "conv1":
                res, layer, rest = 4, "conv1", parts[1:]
            else:
                i = int(parts[1])
                res, layer, rest = 2 ** (i // 2 + 3), ("conv0" if i % 2 == 0 else "conv1"), parts[2:]
            name = ".".join(rest)
            prefix = f"synthesis.b{res}.{layer}"
            if name == "conv.weight":
                out[f"{prefix}.weight"] = t[0]
            elif name == "activate.bias":
                out[f"{prefix}.bias"] = t
            elif name.startswith("conv.modulation."):
                out[f"{prefix}.affine.{rest[-1]}"] = t
            elif name == "noise.weight":
                out[f"{prefix}.noise_strength"] = t.reshape(())
            elif name == "conv.blur.kernel":
                out[f"{prefix}.resample_filter"] = t / 4
        elif parts[0] in ("to_rgb1", "to_rgbs"):
            res = 4 if parts[0] == "to_rgb1" else 2 ** (int(parts[1]) + 3)
            name = ".".join(parts[1:] if parts[0] == "to_rgb1" else parts[2:])
            prefix = f"synthesis.b{res}.torgb"
            if name == "conv.weight":
                out[f"{prefix}.weight"] = t[0]
            elif name == "bias":
                out[f"{prefix}.bias"] = t.reshape(-1)
            elif name.startswith("conv.modulation."):
                out[f"{prefix}.affine.{name.rsplit('.', 1)[1]}"] = t
            elif name == "upsample.kernel":
                out[f"synthesis.b{res}.resample_filter"] = t / 4
    assert n_rgb == int(math.log2(SIZE)) - 2
    return out


class _Persistent:
    """Pickles as NVlabs' `torch_utils.persistence` objects do: a reconstructor call with source code and state."""

    def __init__(self, reconstruct: Any, class_name: str, params: dict, modules: dict, kwargs: dict) -> None:
        self.reconstruct = reconstruct
        self.meta = {"type": "class", "version": 6, "class_name": class_name,
                     "module_src": "import os\nos.system('touch SHOULD_NOT_EXIST')\n",
                     "state": {"_parameters": params, "_buffers": {}, "_modules": modules, "_init_kwargs": kwargs,
                               "training": False}}

    def __reduce__(self) -> tuple:
        return (self.reconstruct, (self.meta,))


def save_nvlabs_pkl(g: Generator, path: Path) -> Path:
    """The generator as an NVlabs network pickle {'G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe'}."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: Any) -> Any:  # pragma: no cover - the zoo's reader never calls it
        raise AssertionError("code from the pickle ran")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    pkg = types.ModuleType("torch_utils")
    pkg.persistence = persistence  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": pkg, "torch_utils.persistence": persistence})
    try:
        tree: dict = {}
        for key, t in rosinality_to_nvlabs(g.state_dict(), latent_avg(g)).items():
            node = tree
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = t

        def build(name: str, node: dict) -> _Persistent:
            params = {k: torch.nn.Parameter(v.clone(), requires_grad=False) for k, v in node.items()
                      if isinstance(v, torch.Tensor)}
            mods = {k: build(k, v) for k, v in node.items() if isinstance(v, dict)}
            return _Persistent(_reconstruct_persistent_obj, name, params, mods, {})

        g_ema = build("Generator", tree)
        g_ema.meta["state"]["_init_kwargs"] = {"z_dim": STYLE_DIM, "w_dim": STYLE_DIM, "img_resolution": SIZE}
        with open(path, "wb") as f:
            pickle.dump({"G": None, "D": None, "G_ema": g_ema, "training_set_kwargs": {}, "augment_pipe": None}, f)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


ENCODER_TYPES = {"psp": "GradualStyleEncoder", "e4e": "Encoder4Editing"}


def save_encoder_checkpoint(method: str, g: Generator, path: Path, *, seed: int = 1) -> Path:
    """An official-layout pSp / e4e checkpoint {'state_dict': encoder.* + decoder.*, 'opts', 'latent_avg'
    [n_styles, 512]} for decoder `g`; encoder tensors of one shape share storage (small file)."""
    with torch.device("meta"):
        enc = build_encoder(ENCODER_TYPES[method], n_styles=g.n_latent, style_dim=STYLE_DIM)
    gen = torch.Generator().manual_seed(seed)
    shared: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
    sd: dict[str, torch.Tensor] = {}
    for key, t in enc.state_dict(keep_vars=True).items():
        shape = tuple(t.shape)
        kind = ("running_var" if key.endswith("running_var") else "running_mean" if key.endswith("running_mean")
                else "count" if key.endswith("num_batches_tracked") else "bn_w" if _is_norm_weight(enc, key)
                else "bias" if key.endswith("bias") else "weight")
        if (kind, shape) not in shared:
            if kind == "count":
                v = torch.tensor(0)
            elif kind in ("running_var", "bn_w"):
                v = torch.ones(shape)
            elif kind in ("running_mean", "bias"):
                v = torch.zeros(shape)
            else:
                fan_in = max(1, int(np.prod(shape[1:]))) if len(shape) > 1 else 1
                v = torch.randn(shape, generator=gen) * (0.5 / math.sqrt(fan_in))
            shared[(kind, shape)] = v
        sd[f"encoder.{key}"] = shared[(kind, shape)]
    sd.update({f"decoder.{k}": v for k, v in g.state_dict().items()})
    size_key = "stylegan_size" if method == "e4e" else "output_size"
    opts = {"encoder_type": ENCODER_TYPES[method], size_key: SIZE, "start_from_latent_avg": True,
            "learn_in_w": False, "input_nc": 3, "dataset_type": "ffhq_encode"}
    if method == "e4e":
        opts.update(progressive_start=20000, w_discriminator_lambda=0.1)
    torch.save({"state_dict": sd, "opts": opts, "latent_avg": latent_avg(g)[None].repeat(g.n_latent, 1)}, path)
    return path


def _is_norm_weight(module: torch.nn.Module, key: str) -> bool:
    owner = module.get_submodule(key.rsplit(".", 1)[0]) if "." in key else module
    return isinstance(owner, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.PReLU)) and key.endswith("weight")


def save_interfacegan(path: Path, shape: tuple[int, ...] = (1, STYLE_DIM), seed: int = 2) -> Path:
    """An InterFaceGAN boundary: a unit vector [1, 512] (`.pt`) or any shape; `.npy` when path says so."""
    d = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    d = d / d.norm(dim=-1, keepdim=True)
    if path.suffix == ".npy":
        np.save(path, d.numpy())
    else:
        torch.save(d, path)
    return path


def save_ganspace(g: Generator, path: Path, n: int = 8) -> Path:
    """A GANSpace PCA file like HyperStyle's `ffhq_pca.pt`: {'comp' [n, 512], 'mean' [1, 512], 'std' [n]}."""
    with torch.no_grad():
        w = g.style(torch.randn(2000, STYLE_DIM, generator=torch.Generator().manual_seed(3)))
    mean = w.mean(0, keepdim=True)
    _, s, v = torch.linalg.svd(w - mean, full_matrices=False)
    torch.save({"comp": v[:n].contiguous(), "mean": mean, "std": s[:n] / math.sqrt(len(w) - 1)}, path)
    return path


def write_images(folder: Path, g: Generator, n: int = 5) -> list[Path]:
    """Generator samples as files of mixed formats and sizes (PNG 64, JPEG 80x80, RGBA PNG 96, grayscale 64)."""
    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        x = g([torch.randn(n, STYLE_DIM, generator=torch.Generator().manual_seed(4))], randomize_noise=False)[0]
    arrs = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    out = []
    for i, a in enumerate(arrs):
        im = Image.fromarray(a)
        kind = i % 4
        if kind == 0:
            p = folder / f"face_{i}.png"
            im.save(p)
        elif kind == 1:
            p = folder / f"face_{i}.jpg"
            im.resize((80, 80), Image.Resampling.BILINEAR).save(p, quality=95)
        elif kind == 2:
            p = folder / f"face_{i}.png"
            im.resize((96, 96)).convert("RGBA").save(p)
        else:
            p = folder / f"face_{i}.png"
            im.convert("L").save(p)
        out.append(p)
    return out


def write_domain(tmp: Path, *, methods: bool = True, identity: str = "dlib") -> Path:
    """Every file above plus a `domain.toml` that uses them (paths relative to the file); returns its path."""
    g = tiny_generator()
    files = tmp / "files"
    files.mkdir(parents=True, exist_ok=True)
    save_rosinality(g, files / "generator.pt")
    write_images(tmp / "photos" / "test", g, 5)
    write_images(tmp / "photos" / "ood", tiny_generator(seed=9), 3)
    save_interfacegan(files / "smile.pt")
    save_interfacegan(files / "age.npy", (1, STYLE_DIM), seed=5)
    save_ganspace(g, files / "pca.pt")
    text = f'''name = "tinyfaces"
title = "tiny official-format files"
face = false
identity = "{identity}"

[generator]
path = "files/generator.pt"

[images]
test = "photos/test"
ood = "photos/ood/*.png"

[directions.interfacegan]
smile = "files/smile.pt"
age = "files/age.npy"

[directions.ganspace]
file = "files/pca.pt"
edits = {{ pose = [0, 0, 4, 2.0] }}

[directions.stylespace]
brow = "s3_5"

[metrics]
size = 256
'''
    if methods:
        save_encoder_checkpoint("psp", g, files / "psp_ffhq_encode.pt")
        save_encoder_checkpoint("e4e", g, files / "e4e_ffhq_encode.pt")
        text += '''
[methods.psp]
weights = "files/psp_ffhq_encode.pt"

[methods.e4e]
weights = "files/e4e_ffhq_encode.pt"
'''
    path = tmp / "domain.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------- StyleGAN3
SG3_SIZE, SG3_Z_DIM = 16, 16
SG3_LAYER_CLASSES = {"synthesis": "SynthesisNetwork", "mapping": "MappingNetwork", "input": "SynthesisInput",
                     "affine": "FullyConnectedLayer"}


def tiny_sg3_generator(seed: int = 0, config: str = "T") -> Any:
    """A freshly constructed 16 px StyleGAN3 (config "T" or "R"; 4 layers, <= 16 channels, margin 4, w_dim 16, 2
    mapping layers; filters designed as NVlabs does) with `mapping.w_avg` set to the mean of 1000 mapped z and the
    ToRGB layer's `magnitude_ema` chosen so that its renders stay well inside [-1, 1] (a buffer: every format keeps
    it)."""
    from zoo.stylegan3 import Generator as SG3Generator

    kw: dict[str, Any] = dict(z_dim=SG3_Z_DIM, c_dim=0, w_dim=SG3_Z_DIM, img_resolution=SG3_SIZE, img_channels=3,
                              mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=16, num_layers=4,
                              margin_size=4)
    if config == "R":
        kw.update(conv_kernel=1, use_radial_filters=True, channel_base=512, channel_max=32)
    torch.manual_seed(seed)
    g = SG3Generator(**kw).eval()
    with torch.no_grad():
        z = torch.randn(1000, SG3_Z_DIM, generator=torch.Generator().manual_seed(seed + 1))
        g.mapping.w_avg.copy_(g.get_latent(z).mean(0))
        w = g.get_latent(z[:16]).unsqueeze(1).repeat(1, g.num_ws, 1)
        peak = float(g.synthesis(w).abs().max())
        torgb = g.synthesis.layers[-1]  # its gain 1/sqrt(magnitude_ema) scales the (bias-free) output linearly
        torgb.magnitude_ema.mul_((peak / 0.6) ** 2)
    return g.requires_grad_(False)


def save_sg3_nvlabs_pkl(g: Any, path: Path) -> Path:
    """A StyleGAN3 generator as an NVlabs network pickle {'G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe'}:
    persistent objects per module (class name, `module_src` that would run `os.system` if executed, `_parameters`,
    `_buffers`, `_modules`, `_init_kwargs`), as `torch_utils.persistence` writes them."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: Any) -> Any:  # pragma: no cover - the zoo's reader never calls it
        raise AssertionError("code from the pickle ran")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    pkg = types.ModuleType("torch_utils")
    pkg.persistence = persistence  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": pkg, "torch_utils.persistence": persistence})
    try:
        def build(name: str, module: torch.nn.Module) -> _Persistent:
            params = {k: torch.nn.Parameter(v.detach().clone(), requires_grad=False)
                      for k, v in module._parameters.items() if v is not None}
            obj = _Persistent(_reconstruct_persistent_obj, name, params,
                              {k: build(SG3_LAYER_CLASSES.get(k, "SynthesisLayer" if k.startswith("L")
                                                              else "FullyConnectedLayer"), m)
                               for k, m in module._modules.items()}, {})
            obj.meta["state"]["_buffers"] = {k: v.detach().clone() for k, v in module._buffers.items()
                                             if v is not None}
            return obj

        g_ema = build("Generator", g)
        g_ema.meta["state"]["_init_kwargs"] = json_plain(g.init_kwargs)
        with open(path, "wb") as f:
            pickle.dump({"G": None, "D": None, "G_ema": g_ema, "training_set_kwargs": {}, "augment_pipe": None}, f)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


def json_plain(kwargs: dict) -> dict:
    """Constructor arguments as plain Python values (dicts, ints, floats, bools)."""
    return {k: json_plain(v) if isinstance(v, dict) else v for k, v in kwargs.items()}


def save_sg3_editing_pt(g: Any, path: Path, *, batched_transform: int = 0) -> Path:
    """A stylegan3-editing `.pt` generator: the bare state dict with NVlabs keys (`sg3-r-ffhq-1024.pt`); with
    `batched_transform` = B > 0 its `synthesis.input.transform` holds B per-sample matrices, as the editing repo's
    generators do after an inference run."""
    sd = {k: v.detach().clone() for k, v in g.state_dict().items()}
    if batched_transform:
        sd["synthesis.input.transform"] = torch.eye(3).repeat(batched_transform, 1, 1)
    torch.save(sd, path)
    return path


def write_sg3_images(folder: Path, g: Any, n: int = 3, seed: int = 4) -> list[Path]:
    """n renders of the SG3 generator as 16 px PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        w = g.get_latent(torch.randn(n, SG3_Z_DIM, generator=torch.Generator().manual_seed(seed)))
        x = g([w], input_is_latent=True)[0]
    arrs = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    out = []
    for i, a in enumerate(arrs):
        p = folder / f"sample_{i}.png"
        Image.fromarray(a).save(p)
        out.append(p)
    return out


def write_sg3_domain(tmp: Path, *, kind: str = "pkl", config: str = "T") -> Path:
    """A domain file whose generator is a tiny StyleGAN3 as an NVlabs pickle (`kind="pkl"`) or a stylegan3-editing
    `.pt` (`kind="pt"`), with 3 of its renders as the test split; returns the TOML's path."""
    g = tiny_sg3_generator(config=config)
    files = tmp / "files"
    files.mkdir(parents=True, exist_ok=True)
    name = "stylegan3-t-tiny.pkl" if kind == "pkl" else "sg3-t-tiny.pt"
    if kind == "pkl":
        save_sg3_nvlabs_pkl(g, files / name)
    else:
        save_sg3_editing_pt(g, files / name)
    write_sg3_images(tmp / "photos", g, 3)
    path = tmp / "domain.toml"
    path.write_text(f'''name = "tinysg3"
title = "tiny StyleGAN3 files in the official formats"
face = false
identity = "none"

[generator]
path = "files/{name}"

[images]
test = "photos"

[metrics]
size = 32
''')
    return path
