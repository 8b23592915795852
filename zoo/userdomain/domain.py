"""`FileDomain`: a `Domain` defined by a `domain.toml` (see `zoo.userdomain.spec` for the fields).

The generator comes from a rosinality `.pt`, an NVlabs `.pkl` (code-free unpickler) or the decoder of a pSp / e4e /
ReStyle / HyperStyle checkpoint; resolution, channel multiplier and mapping depth are inferred from its weights.
Images are read from disk per file (`image_files`, `load_images`) so that callers can stream them in batches;
`images(split)` returns a whole split as one tensor for the small cases. Everything is loaded lazily: creating a
FileDomain reads only the TOML file.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..cards import Card, WeightSpec, cache_dir, sha256_file
from ..checkpoint_io import strip_module_prefix, torch_load
from ..domain import Domain
from ..errors import CheckpointError, InputError
from .spec import SPLITS, DomainSpec, parse_domain_file, split_files

if TYPE_CHECKING:
    from ..stylegan2.checkpoints import LoadedGenerator

_SHA: dict[tuple[str, float, int], str] = {}
_SHA_LOCK = threading.Lock()


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per (path, mtime, size) for this process (official checkpoints are large)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    with _SHA_LOCK:
        if key not in _SHA:
            _SHA[key] = sha256_file(path)
        return _SHA[key]


def load_domain_generator(path: Path, device: str | torch.device = "cpu") -> tuple[LoadedGenerator, str]:
    """(generator with latent_avg [w_dim], where it came from) from a rosinality / zoo `.pt`, an NVlabs `.pkl` or
    the `decoder.*` of an encoder checkpoint (its `latent_avg` [n_styles, w_dim] gives row 0). StyleGAN3 files (an
    NVlabs `stylegan3-*.pkl`, a stylegan3-editing `.pt`, a zoo SG3 file) give a `zoo.stylegan3` generator with the
    same interface; the format then reads "stylegan3 (nvlabs | stylegan3-editing | zoo)".

    Raises CheckpointError naming the file when it is none of these.
    """
    from ..encoders.official import read_checkpoint, strip_prefix
    from ..stylegan2.checkpoints import LoadedGenerator, build_generator, load_generator, sniff_format

    if not path.is_file():
        raise CheckpointError(f"generator file not found: {path}")
    from ..stylegan3.checkpoints import is_stylegan3_file
    from ..stylegan3.checkpoints import load_generator as load_stylegan3

    if is_stylegan3_file(path):  # NVlabs stylegan3-*.pkl, stylegan3-editing / zoo .pt (code-free, zoo.stylegan3)
        loaded3 = load_stylegan3(path, device=device)
        return loaded3, f"stylegan3 ({loaded3.source_format})"  # type: ignore[return-value]
    if path.suffix == ".pkl" or sniff_format(path) != "zip":
        return load_generator(path, device=device), "nvlabs" if path.suffix == ".pkl" else "rosinality"
    ckpt = read_checkpoint(path)
    if "g_ema" in ckpt:
        loaded = load_generator(path, device=device)
        return loaded, loaded.source_format
    sd = ckpt.get("state_dict")
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: neither a generator (no 'g_ema') nor an encoder checkpoint (no "
                              "'state_dict'); give a rosinality .pt, an NVlabs .pkl or a pSp/e4e/ReStyle/HyperStyle .pt")
    sd = strip_module_prefix(sd, str(path))
    decoder = strip_prefix(sd, "decoder")
    if not decoder:
        raise CheckpointError(f"{path}: this checkpoint has no 'decoder.*' weights (a W-encoder?); point "
                              "[generator] at the generator file or at a pSp/e4e/ReStyle/HyperStyle checkpoint")
    from ..stylegan3.checkpoints import is_stylegan3_state_dict

    if is_stylegan3_state_dict(decoder):  # a stylegan3-editing ReStyle checkpoint: its SG3 decoder
        from ..stylegan3.checkpoints import LoadedGenerator as Loaded3
        from ..stylegan3.checkpoints import build_generator as build_stylegan3

        g3, kwargs, batched = build_stylegan3(decoder, source=f"{path} (decoder)", device=device)
        g3.requires_grad_(False)
        return Loaded3(g3, g3.mapping.w_avg.detach().clone(), "encoder-decoder", kwargs, batched), \
            "stylegan3 (encoder-decoder)"  # type: ignore[return-value]
    g = build_generator(decoder, source=f"{path} (decoder)").to(device)
    g.requires_grad_(False)
    avg = ckpt.get("latent_avg")
    computed = not isinstance(avg, torch.Tensor)
    if computed:
        from ..encoders.official import compute_latent_avg

        avg = compute_latent_avg(g)
    avg = avg.float().reshape(-1, g.style_dim)[0].to(device)
    return LoadedGenerator(g, avg, "encoder-decoder", computed), "encoder-decoder"


class FileDomain(Domain):
    """A user's domain from a TOML file: generator, image splits, identity model, directions, method weights."""

    embedded = False

    def __init__(self, spec: DomainSpec) -> None:
        super().__init__()
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]
        self.is_face = spec.face
        self.resample = spec.resize  # type: ignore[misc]
        self.card = Card(  # type: ignore[misc]
            title=spec.title or f"{spec.name} (domain file {spec.file.name})", licence=spec.licence,
            notes=(spec.notes + " " if spec.notes else "") + f"Defined by {spec.file}.")
        self.notes: dict[str, list[str]] = {}  # split -> one-line notes about skipped / converted inputs
        self._lock = threading.RLock()
        self._files: dict[str, list[Path]] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> FileDomain:
        """Parse and validate `path` (InputError naming the file and field on the first problem)."""
        return cls(parse_domain_file(path, strict=True))

    # ------------------------------------------------------------------ weights and generator
    @property
    def source(self) -> Path:
        return self.spec.file

    def reference(self) -> str:
        """The domain file's path: `registry.get_domain` loads it again in another process."""
        return str(self.spec.file)

    @cached_property
    def weights(self) -> dict[str, WeightSpec]:  # type: ignore[override]
        out: dict[str, WeightSpec] = {}
        gen = self.spec.generator
        if gen is not None and gen.is_file():
            out["generator"] = WeightSpec(name=f"{self.name}/generator", filename=gen.name, sha256=file_sha256(gen),
                                          path=str(gen))
        ident = self.spec.identity_path
        if ident is not None and ident.is_file():
            out["identity"] = WeightSpec(name=f"{self.name}/identity ({self.spec.identity})", filename=ident.name,
                                         sha256=file_sha256(ident), path=str(ident))
        files = {f"directions/interfacegan/{k}": v for k, v in self.spec.interfacegan.items()}
        if self.spec.ganspace_file is not None:
            files["directions/ganspace"] = self.spec.ganspace_file
        for role, p in files.items():
            if p.is_file():
                out[role] = WeightSpec(name=f"{self.name}/{role}", filename=p.name, sha256=file_sha256(p), path=str(p))
        return out

    def generator(self, device: str | torch.device = "cpu") -> LoadedGenerator:
        """The domain's generator (loaded once per device; sha256 verified when the file gives one)."""
        key = str(torch.device(device))
        with self._lock:
            if key not in self._generators:
                path = self.spec.generator
                if path is None:
                    raise CheckpointError(f"{self.spec.file}: [generator] path is not set")
                if self.spec.generator_sha256 and file_sha256(path) != self.spec.generator_sha256:
                    raise CheckpointError(f"{path}: sha256 {file_sha256(path)[:12]}… does not match "
                                          f"generator.sha256 {self.spec.generator_sha256[:12]}… in {self.spec.file}")
                loaded, _ = load_domain_generator(path, device)
                loaded.generator.eval().requires_grad_(False)
                self._generators[key] = loaded
            return self._generators[key]

    @property
    def resolution(self) -> int:  # type: ignore[override]
        return int(self.generator("cpu").generator.size) if not self._generators else int(
            next(iter(self._generators.values())).generator.size)

    # ------------------------------------------------------------------ images
    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in self.spec.images]

    def _check_split(self, split: str) -> None:
        if split not in self.spec.images:
            raise InputError(f"domain '{self.name}' ({self.spec.file}) has no split '{split}' "
                             f"(splits: {', '.join(self.splits())})")

    def image_files(self, split: str = "test", limit: int | None = None) -> list[Path]:
        """The files of a split in the documented order (FFHQ-aligned crops when `align = "ffhq"`); inputs that
        cannot be used are left out with a one-line note in `self.notes[split]`. `limit` (else the file's
        `images.limit`; 0/None = all) keeps the first files."""
        self._check_split(split)
        with self._lock:
            if split not in self._files:
                files, notes = split_files(self.spec.images[split], self.spec.file.parent)
                if not files:
                    notes.append(f"split '{split}' has no image files")
                if self.spec.align == "ffhq":
                    files = self._aligned(files, notes)
                self._files[split] = files
                self.notes[split] = notes
        limit = limit if limit else self.spec.limit
        files = self._files[split]
        return files[:limit] if limit else list(files)

    def _aligned(self, files: list[Path], notes: list[str]) -> list[Path]:
        out = []
        for f in files:
            crop, note = self.prepare_input(f)
            if crop is None:
                notes.append(f"{f}: {note}")
            else:
                out.append(crop)
        return out

    def prepare_input(self, path: Path) -> tuple[Path | None, str | None]:
        """With `align = "ffhq"`: the cached FFHQ-aligned crop of `path` at the generator's resolution (dlib 68
        landmarks, ffhq-dataset transform), or (None, "no face found; skipped"); else the file itself."""
        if self.spec.align != "ffhq":
            return path, None
        from ..align import aligned_file

        return aligned_file(path, output_size=self.resolution, cache_dir=cache_dir() / "aligned")

    def load_images(self, files: list[Path]) -> torch.Tensor:
        """Images [N, 3, R, R] float32 in [-1, 1] of `files` (resized as `resize` says). InputError names a bad file."""
        from ..bench.inputs import load_image_file

        r = self.resolution
        out = []
        for f in files:
            try:
                x, _ = load_image_file(f, r, self.resample)
            except InputError as exc:
                raise InputError(f"{f}: {exc}") from None
            out.append(x)
        return torch.stack(out) if out else torch.empty(0, 3, r, r)

    def image_set(self, split: str = "test", limit: int | None = None) -> FileImages:
        """A split as a lazy, indexable set of images (decoded from disk per access: memory flat in N)."""
        return FileImages(self, self.image_files(split, limit))

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        """A whole split [N, 3, R, R] in [-1, 1] (for large splits prefer `image_files` + `load_images` batches)."""
        return self.load_images(self.image_files(split, limit))

    # ------------------------------------------------------------------ identity, directions, methods
    @property
    def identity(self) -> tuple[str, Path | None]:
        """(model kind: arcface | curricularface | moco | dlib | none, weights path or None)."""
        return self.spec.identity, self.spec.identity_path

    def identity_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The `identity` of the file as an embedder module images [B, 3, H, W] in [-1, 1] -> unit [B, D] (through
        the registered `id` metric, which owns the crops and preprocessing of each model); used to measure ID kept
        along edits. Not differentiable for MTCNN-aligned face models. Raises CheckpointError when unavailable."""
        from .. import registry

        metric = registry.create_metric("id", device=device)
        reason = metric.unavailable_reason(self)
        if reason is not None:
            raise CheckpointError(f"{self.spec.file}: identity unavailable: {reason}")
        return _MetricEmbedder(metric, self)

    def directions(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """InterFaceGAN boundaries from the files: [w_dim] or [n_styles, w_dim] (a [1, w_dim] file gives [w_dim])."""
        return {name: load_direction(path).to(device) for name, path in self.spec.interfacegan.items()}

    def ganspace(self, device: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The GANSpace PCA of the file ({'comp' [n, w_dim], 'mean' [w_dim], 'std' [n], 'edits'}) or None."""
        if self.spec.ganspace_file is None:
            return None
        pca = load_ganspace(self.spec.ganspace_file)
        return {**{k: v.to(device) for k, v in pca.items()}, "edits": dict(self.spec.ganspace_edits)}

    def stylespace_channels(self) -> dict[str, str]:
        """Named StyleSpace channels, e.g. {'smile': 's6_501'}."""
        return dict(self.spec.stylespace)

    def method_options(self, method: str) -> dict[str, Any]:
        """The options the file gives `method` (paths absolute), e.g. {'weights': '/…/psp_ffhq_encode.pt'}."""
        return dict(self.spec.methods.get(method, {}))

    def metric_size(self) -> int:
        return self.spec.metric_size

    def describe(self) -> dict[str, Any]:
        s = self.spec
        info: dict[str, Any] = {"name": self.name, "file": str(s.file), "card": self.card.to_dict(),
                                "generator": str(s.generator), "face": s.face, "resize": s.resize,
                                "images": s.images, "limit": s.limit, "align": s.align,
                                "identity": f"{s.identity}:{s.identity_path}" if s.identity_path else s.identity,
                                "directions": {"interfacegan": {k: str(v) for k, v in s.interfacegan.items()},
                                               "ganspace": str(s.ganspace_file) if s.ganspace_file else None,
                                               "ganspace_edits": {k: list(vars(v).values())
                                                                  for k, v in s.ganspace_edits.items()},
                                               "stylespace": s.stylespace},
                                "methods": s.methods, "metrics": {"size": s.metric_size, "lpips": s.lpips},
                                "splits": self.splits()}
        try:
            info["resolution"] = self.resolution
            info["weights"] = {k: v.to_dict() for k, v in self.weights.items()}
        except Exception as exc:  # noqa: BLE001 - describing must not fail on a bad generator: check says why
            info["generator_error"] = str(exc)
        return info


def load_direction(path: Path) -> torch.Tensor:
    """An InterFaceGAN boundary: `.pt` (tensor, or a dict with one tensor) or `.npy` (no pickles), shape [w_dim],
    [1, w_dim] or [n_styles, w_dim] -> float32 [w_dim] or [n_styles, w_dim]. CheckpointError names the file."""
    if not path.is_file():
        raise CheckpointError(f"direction file not found: {path}")
    if path.suffix == ".npy":
        try:
            t = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))
        except ValueError as exc:
            raise CheckpointError(f"{path}: not a plain .npy array ({exc})") from None
    else:
        obj: Any = torch_load(path, what="direction file")
        if isinstance(obj, dict):
            tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
            if len(tensors) != 1:
                raise CheckpointError(f"{path}: expected one direction tensor, found keys {list(obj)[:6]}")
            obj = tensors[0]
        if not isinstance(obj, torch.Tensor):
            raise CheckpointError(f"{path}: expected a tensor, got {type(obj).__name__}")
        t = obj.float()
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim not in (1, 2):
        raise CheckpointError(f"{path}: a direction must be [w_dim], [1, w_dim] or [n_styles, w_dim], "
                              f"got {list(t.shape)}")
    return t.contiguous()


def load_ganspace(path: Path) -> dict[str, torch.Tensor]:
    """A GANSpace PCA file as HyperStyle's `ffhq_pca.pt`: {'comp' [n, w_dim] (unit rows), 'mean' [w_dim] or
    [1, w_dim], 'std' [n]} -> float32 tensors comp [n, w_dim], mean [w_dim], std [n]."""
    if not path.is_file():
        raise CheckpointError(f"GANSpace file not found: {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            obj: Any = {k: torch.from_numpy(z[k]) for k in z.files}
    else:
        obj = torch_load(path, what="GANSpace file")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: a GANSpace file is a dict of tensors comp, mean and std")
    missing = [k for k in ("comp", "mean", "std") if not isinstance(obj.get(k), torch.Tensor)]
    if missing:
        raise CheckpointError(f"{path}: a GANSpace file needs tensors comp, mean and std (missing {missing})")
    comp, mean, std = (obj[k].float() for k in ("comp", "mean", "std"))
    comp = comp.reshape(-1, comp.shape[-1])
    mean, std = mean.reshape(-1), std.reshape(-1)
    if mean.shape[0] != comp.shape[1] or std.shape[0] != comp.shape[0]:
        raise CheckpointError(f"{path}: inconsistent GANSpace shapes comp {list(comp.shape)}, mean "
                              f"{list(mean.shape)}, std {list(std.shape)}")
    return {"comp": comp, "mean": mean, "std": std}


class _MetricEmbedder(torch.nn.Module):
    """nn.Module face of the `id` metric's embedder for one domain."""

    def __init__(self, metric: Any, domain: FileDomain) -> None:
        super().__init__()
        self.metric, self.domain = metric, domain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:  # an ID loss would silently get no gradient
            from ..errors import ZooError

            raise ZooError(f"{self.domain.spec.file}: identity '{self.domain.spec.identity}' measures ID kept (face "
                           "detection and crops, not differentiable), it is no training loss: train with "
                           "--set id_lambda=0")
        return self.metric.embed(x, self.domain)


class FileImages:
    """Images of a FileDomain split, decoded when indexed: `len`, `[i]` -> [3, R, R], `[slice | list]` ->
    [n, 3, R, R] float32 in [-1, 1], iteration one image at a time. Stands in for an [N, 3, R, R] tensor where the
    bench only indexes, so memory stays flat in the number of images."""

    def __init__(self, domain: FileDomain, files: list[Path]) -> None:
        self.domain = domain
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sources(self) -> list[str]:
        return [str(f) for f in self.files]

    def __getitem__(self, idx: int | slice | list[int] | torch.Tensor) -> torch.Tensor:
        if isinstance(idx, int):
            return self.domain.load_images([self.files[idx]])[0]
        if isinstance(idx, slice):
            return self.domain.load_images(self.files[idx])
        return self.domain.load_images([self.files[int(i)] for i in idx])

    def __iter__(self):  # noqa: ANN204
        for f in self.files:
            yield self.domain.load_images([f])[0]
