"""`Inversion`: what an inverter returns, how to render (edited) latents through its own generator, and how to save
and reload it exactly (`Inversion.save` / `Inversion.load`, one safetensors file, nothing executes on load)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.func import functional_call

if TYPE_CHECKING:
    from .domain import Domain
    from .stylegan2 import Generator

#: `format` metadata value of a saved inversion, its version, and the file suffix the CLI uses.
INVERSION_FORMAT = "zoo.inversion"
INVERSION_FORMAT_VERSION = 1
INVERSION_SUFFIX = ".inversion.safetensors"


@dataclass
class WeightOffsets:
    """HyperStyle-style multiplicative offsets: per generator slot (see `Generator.layer_slots()`), None or
    a tensor [B, out, in, k|1, k|1]; the layer uses W * (1 + delta_b) for sample b."""

    deltas: list[torch.Tensor | None]

    def select(self, idx: torch.Tensor) -> WeightOffsets:
        return WeightOffsets([None if d is None else d[idx] for d in self.deltas])


@dataclass
class TunedWeights:
    """PTI-style tuned weights stored as additive deltas per sample: `deltas[b][param_name]` = tuned - original,
    only for parameters that changed. Much smaller than a generator copy per image when tuning is local."""

    deltas: list[dict[str, torch.Tensor]]

    def select(self, idx: torch.Tensor) -> TunedWeights:
        return TunedWeights([self.deltas[int(i)] for i in idx])


GeneratorChange = WeightOffsets | TunedWeights | None


@dataclass
class Inversion:
    """Result of `Inverter.invert` for a batch of B images.

    latents: [B, n_styles, w_dim] W+ codes (W-space methods repeat one w).
    change: None, WeightOffsets or TunedWeights (per-sample generator modification).
    reconstructions: [B, 3, H, W] in about [-1, 1] at the generator's resolution.
    seconds: [B] wall-clock seconds per image (a batch's time split evenly when the method is batched).
    noise: optional per-sample noise maps (list over layers of [B, 1, R, R]) when the method optimises noise.
    extras: method-specific results; per-sample entries (tensors [B, ...], lists of B values, lists of [B, ...]
        tensors) are sliced by `select`.
    options: the method's resolved options (JSON-able), filled by whoever runs the inverter (`zoo invert`).
    sources: one dict per image describing its input ({"name", "path", "image_sha256", ...}), when known.
    images: the inverted inputs [B, 3, H, W] in [-1, 1], when kept (so edit strips can show them later).
    provenance: method version, weights sha256, zoo version, device, time of creation (JSON-able), when known.
    transform: per-image user transforms [B, 3, 3] float32 of a StyleGAN3 generator (the *inverse* matrices that go
        into `synthesis.input.transform`, `zoo.stylegan3.transforms`), or None (aligned frame). With a transform the
        latents encode the aligned crop and `render()` shows the unaligned frame (`with_transform`).

    `save(path)` writes all of it to one safetensors file; `Inversion.load(path)` restores it so that `render()`
    gives the same images (bit for bit on the same machine and device).
    """

    latents: torch.Tensor
    reconstructions: torch.Tensor
    seconds: torch.Tensor
    change: GeneratorChange = None
    noise: list[torch.Tensor] | None = None
    method: str = ""
    domain: Domain | None = field(default=None, repr=False)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    sources: list[dict[str, Any]] = field(default_factory=list, repr=False)
    images: torch.Tensor | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)
    transform: torch.Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.latents.shape[0]

    @property
    def names(self) -> list[str]:
        """The input name of every image ('' when unknown)."""
        return [str(s.get("name", "")) for s in self.sources] if self.sources else [""] * len(self)

    def select(self, idx: Sequence[int] | torch.Tensor) -> Inversion:
        """The inversion of images `idx` only (per-sample extras, sources and images sliced too)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        change = self.change.select(idx) if self.change is not None else None
        rows = [int(i) for i in idx]
        return Inversion(
            self.latents[idx], self.reconstructions[idx], self.seconds[idx], change,
            None if self.noise is None else [n[idx] for n in self.noise], self.method, self.domain,
            _select_extras(self.extras, rows, len(self)), dict(self.options),
            [self.sources[i] for i in rows] if len(self.sources) == len(self) else list(self.sources),
            None if self.images is None else self.images[idx], dict(self.provenance),
            None if self.transform is None else self.transform[idx],
        )

    def render(self, latents: torch.Tensor | None = None, generator: Generator | None = None,
               style_offsets: StyleOffsets = None) -> torch.Tensor:
        """Render `latents` [B, n_styles, w_dim] (default: this inversion's) through the generator as modified for
        each sample, optionally with StyleSpace `style_offsets` (per layer slot None or [B|1, in]); images
        [B, 3, H, W]."""
        if generator is None:
            if self.domain is None:
                raise ValueError("Inversion.render needs a generator or an inversion that knows its domain")
            generator = self.domain.generator(self.latents.device).generator  # the device the inversion is on
        latents = self.latents if latents is None else latents
        return render_with_change(generator, latents, self.change, self.noise, style_offsets, self.transform)

    @property
    def poses(self) -> torch.Tensor | None:
        """The user transforms as image motions (r degrees CCW, tx, ty in image widths right / down) [B, 3] float64,
        or None (see `zoo.stylegan3.transforms.pose_from_transform`)."""
        if self.transform is None:
            return None
        from .stylegan3.transforms import pose_from_transform

        return torch.stack(pose_from_transform(self.transform.double().cpu(), inverse=True), -1)

    def with_transform(self, transform: Any, generator: Generator | None = None) -> Inversion:
        """This inversion (of aligned crops) put into the unaligned frame of each image: `transform` is a pose
        (r_degrees, tx, ty) (floats or [B] tensors: the image motion aligned -> unaligned, as `zoo align` writes
        it) or inverse matrices [3, 3] / [B, 3, 3]; reconstructions are rendered again with it (the aligned ones
        are kept as extras['aligned_reconstructions']). Needs a StyleGAN3 generator (ZooError otherwise)."""
        from dataclasses import replace

        from .errors import ZooError
        from .stylegan3.transforms import as_generator_transform

        if generator is None:
            generator = self.domain.generator(self.latents.device).generator if self.domain is not None else None
        if generator is None or not hasattr(getattr(generator, "synthesis", None), "input"):
            raise ZooError("rendering in the unaligned frame needs a StyleGAN3 generator (a Fourier-feature input); "
                           f"domain '{getattr(self.domain, 'name', None)}' has none")
        t = as_generator_transform(transform, device=self.latents.device)
        t = t.expand(len(self), 3, 3).contiguous() if t.ndim == 2 else t
        if t.shape[0] != len(self):
            raise ValueError(f"{t.shape[0]} transforms for {len(self)} images")
        extras = dict(self.extras)
        extras.setdefault("aligned_reconstructions", self.reconstructions)
        out = replace(self, transform=t, extras=extras)
        with torch.no_grad():
            out.reconstructions = out.render(generator=generator).to(self.reconstructions.dtype)
        return out

    # ------------------------------------------------------------------ saving and loading
    def save(self, path: str | Path) -> Path:
        """Write this inversion (all B images) to one safetensors file, atomically; returns the path.

        Tensors (dtypes as in memory, B = len(self)): `latents` [B, L, D], `reconstructions` [B, 3, H, W],
        `seconds` [B], `images` [B, 3, H, W] (uint8 when that is lossless, else float32), `noise.{i}`
        [B, 1, R, R], `offsets.{slot}` [B, out, in, k, k] (WeightOffsets; absent slots are None), `tuned.{b}.{param}`
        (TunedWeights: tuned - original of sample b), `transform` [B, 3, 3] (StyleGAN3 user transforms, when set),
        `extras.{key}` / `extras.{key}.{i}` (tensor extras). The JSON
        metadata (key `zoo`) holds method, domain name, options, sources, provenance, the generator change's kind
        and the JSON-able extras. Nothing in the file executes code on load.
        """
        from safetensors.torch import save as st_save

        from .bench.cache import atomic_write_bytes

        tensors, meta = self._to_tensors()
        path = Path(path)
        data = st_save(tensors, metadata={"format": INVERSION_FORMAT, "format_version": str(INVERSION_FORMAT_VERSION),
                                          "zoo": json.dumps(meta, ensure_ascii=False, default=str)})
        atomic_write_bytes(path, data)
        return path

    def _to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        def t(x: torch.Tensor) -> torch.Tensor:  # own storage: safetensors refuses shared or strided tensors
            return x.detach().to("cpu").contiguous().clone()

        n = len(self)
        tensors = {"latents": t(self.latents), "seconds": t(self.seconds), "reconstructions": t(self.reconstructions)}
        meta: dict[str, Any] = {
            "method": self.method, "domain": getattr(self.domain, "name", None),
            "domain_ref": self.domain.reference() if self.domain is not None else None, "n": n, "options": self.options,
            "sources": self.sources, "provenance": self.provenance, "seconds": [float(s) for s in self.seconds],
        }
        if self.images is not None:
            packed, encoding = pack_images(self.images)
            tensors["images"] = t(packed)
            meta["images"] = encoding
        if self.transform is not None:
            tensors["transform"] = t(self.transform)
            meta["transform"] = "inverse [B, 3, 3]"
        if self.noise is not None:
            meta["noise_layers"] = len(self.noise)
            tensors.update({f"noise.{i}": t(x) for i, x in enumerate(self.noise)})
        if isinstance(self.change, WeightOffsets):
            meta["change"] = {"kind": "offsets", "slots": len(self.change.deltas)}
            tensors.update({f"offsets.{k}": t(d) for k, d in enumerate(self.change.deltas) if d is not None})
        elif isinstance(self.change, TunedWeights):
            if len(self.change.deltas) != n:
                raise ValueError(f"TunedWeights has {len(self.change.deltas)} samples for {n} latents")
            meta["change"] = {"kind": "tuned"}
            tensors.update({f"tuned.{b}.{k}": t(v) for b, d in enumerate(self.change.deltas) for k, v in d.items()})
        elif self.change is not None:
            raise TypeError(f"cannot save a generator change of type {type(self.change).__name__}")
        else:
            meta["change"] = {"kind": "none"}
        decoder = getattr(self, "decoder", None)
        if decoder is not None:  # paper configuration: rendered through the checkpoint's decoder (not saved)
            meta["renderer"] = {"kind": "checkpoint_decoder", "out_size": int(getattr(self, "out_size", 0) or 0),
                                "size": int(decoder.size)}
        json_extras, tensor_extras, dropped = {}, {}, []
        for key, value in self.extras.items():
            if isinstance(value, torch.Tensor):
                tensors[f"extras.{key}"] = t(value)
                tensor_extras[key] = "tensor"
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
                tensors.update({f"extras.{key}.{i}": t(v) for i, v in enumerate(value)})
                tensor_extras[key] = len(value)
            else:
                try:
                    json_extras[key] = json.loads(json.dumps(value))
                except (TypeError, ValueError):
                    dropped.append(key)
        meta.update(extras=json_extras, tensor_extras=tensor_extras)
        if dropped:
            meta["unsaved_extras"] = sorted(dropped)  # not JSON-able and not tensors: named, never silently lost
        return tensors, meta

    @classmethod
    def load(cls, path: str | Path, domain: Domain | str | None = None, device: str | torch.device = "cpu"
             ) -> Inversion:
        """Read a file written by `save`. `domain`: None = the registered domain named in the file, or a Domain /
        name that must match it. Tensors go to `device`. A paper-configuration inversion (rendered through an
        official checkpoint's decoder) gets that decoder by preparing its inverter from the saved options.

        Raises InputError (one line naming the file) when the file is missing, not a saved inversion, from a newer
        zoo, for another domain, or made with a generator other than the domain's current one.
        """
        from .errors import InputError

        path = Path(path)
        tensors, meta = read_inversion_file(path)
        dev = torch.device(device)
        dom = _resolve_domain(domain, meta.get("domain"), path, meta.get("domain_ref"))
        made_with = (meta.get("provenance") or {}).get("weights_sha256", {}).get("generator")
        spec = dom.weights.get("generator") if dom is not None else None
        if made_with and spec is not None and spec.sha256 != made_with and "renderer" not in meta:
            raise InputError(f"{path}: made with generator {made_with[:12]}…, but domain '{dom.name}' now has "
                             f"{spec.sha256[:12]}…; invert the image again")
        n = int(meta.get("n", tensors["latents"].shape[0]))

        def get(key: str) -> torch.Tensor:
            if key not in tensors:
                raise InputError(f"{path}: saved inversion lacks tensor '{key}' (truncated or edited file)")
            return tensors[key].to(dev)

        change: GeneratorChange = None
        kind = (meta.get("change") or {}).get("kind", "none")
        if kind == "offsets":
            slots = int(meta["change"]["slots"])
            change = WeightOffsets([tensors[f"offsets.{k}"].to(dev) if f"offsets.{k}" in tensors else None
                                    for k in range(slots)])
        elif kind == "tuned":
            deltas: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
            for key, value in tensors.items():
                if key.startswith("tuned."):
                    _, b, param = key.split(".", 2)
                    deltas[int(b)][param] = value.to(dev)
            change = TunedWeights(deltas)
        elif kind != "none":
            raise InputError(f"{path}: unknown generator change '{kind}' (written by a newer zoo?)")
        noise = [get(f"noise.{i}") for i in range(int(meta["noise_layers"]))] if "noise_layers" in meta else None
        extras: dict[str, Any] = dict(meta.get("extras") or {})
        for key, how in (meta.get("tensor_extras") or {}).items():
            extras[key] = get(f"extras.{key}") if how == "tensor" else [get(f"extras.{key}.{i}") for i in range(how)]
        images = unpack_images(get("images"), meta["images"]) if "images" in meta else None
        common = dict(latents=get("latents"), reconstructions=get("reconstructions"), seconds=get("seconds"),
                      change=change, noise=noise, method=str(meta.get("method", "")), domain=dom, extras=extras,
                      options=dict(meta.get("options") or {}), sources=list(meta.get("sources") or []),
                      images=images, provenance=dict(meta.get("provenance") or {}),
                      transform=get("transform") if "transform" in meta else None)
        renderer = meta.get("renderer")
        if renderer and renderer.get("kind") == "checkpoint_decoder":
            decoder = _checkpoint_decoder(path, common["method"], common["options"], common["provenance"], dom, dev)
            return DecoderInversion(**common, decoder=decoder, out_size=int(renderer.get("out_size", 0)))
        return Inversion(**common)


@dataclass
class DecoderInversion(Inversion):
    """A reloaded paper-configuration inversion: renders through `decoder` (the official checkpoint's generator)
    and resizes to `out_size` like the encoders' `resize_output` (adaptive average pooling when shrinking, bilinear
    when enlarging)."""

    decoder: Generator | None = field(default=None, repr=False)
    out_size: int = 0

    def render(self, latents: torch.Tensor | None = None, generator: Generator | None = None,
               style_offsets: StyleOffsets = None) -> torch.Tensor:
        if generator is not None:
            return super().render(latents, generator, style_offsets)
        img = super().render(latents, self.decoder, style_offsets)
        size = self.out_size
        if not size or img.shape[-1] == size:
            return img
        if img.shape[-1] > size:
            return torch.nn.functional.adaptive_avg_pool2d(img, (size, size))
        return torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)

    def select(self, idx: Sequence[int] | torch.Tensor) -> DecoderInversion:
        from dataclasses import fields

        base = super().select(idx)
        return DecoderInversion(**{f.name: getattr(base, f.name) for f in fields(Inversion)}, decoder=self.decoder,
                                out_size=self.out_size)


def read_inversion_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors on the CPU, JSON metadata) of a saved inversion; InputError (one line naming the file) otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    from .errors import InputError

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a saved inversion") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    meta = read_inversion_metadata(path, data[: 8 + _header_size(data)] if len(data) >= 8 else data)
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: damaged inversion file ({' '.join(str(exc).split())[:100]})") from None
    return tensors, meta


def read_inversion_metadata(path: str | Path, head: bytes | None = None) -> dict[str, Any]:
    """The JSON metadata of a saved inversion, reading only the file's header (cheap: used to check what a file
    holds before loading it). Raises InputError naming the file when it is not a saved inversion."""
    from .errors import InputError

    path = Path(path)
    if head is None:
        try:
            with path.open("rb") as f:
                first = f.read(8)
                head = first + f.read(_header_size(first)) if len(first) == 8 else first
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    not_ours = InputError(f"{path}: not a saved inversion (expected a `{INVERSION_SUFFIX}` file written by "
                          "`zoo invert` or Inversion.save)")
    size = _header_size(head)
    if size <= 0 or len(head) < 8 + size:
        raise not_ours
    try:
        header = json.loads(head[8 : 8 + size].decode("utf-8"))
        info = header.get("__metadata__") or {}
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise not_ours from None
    if info.get("format") != INVERSION_FORMAT:
        raise not_ours
    try:
        version = int(info.get("format_version", "0"))
        meta = json.loads(info["zoo"])
    except (KeyError, ValueError):
        raise InputError(f"{path}: damaged inversion metadata") from None
    if version > INVERSION_FORMAT_VERSION:
        raise InputError(f"{path}: saved by a newer zoo (inversion format {version}, this zoo reads up to "
                         f"{INVERSION_FORMAT_VERSION}); upgrade inversion-zoo")
    return meta


def _header_size(data: bytes) -> int:
    if len(data) < 8:
        return -1
    size = int.from_bytes(data[:8], "little")
    return size if 0 < size < 100_000_000 else -1


def _resolve_domain(domain: Domain | str | None, saved: str | None, path: Path,
                    ref: str | None = None) -> Domain | None:
    """The domain to render a saved inversion on: the given one (checked against the saved name) or the saved
    reference (a registered name, or the path of a domain file)."""
    from . import registry
    from .errors import InputError

    if isinstance(domain, str):
        domain = registry.get_domain(domain)
    if domain is None:
        if not (ref or saved):
            return None
        return registry.get_domain(ref or saved)  # type: ignore[arg-type]
    if saved and domain.name != saved:
        raise InputError(f"{path}: an inversion on domain '{saved}', not '{domain.name}'")
    return domain


def _checkpoint_decoder(path: Path, method: str, options: dict[str, Any], provenance: dict[str, Any],
                        domain: Domain | None, device: torch.device) -> Generator:
    """The decoder of a paper-configuration encoder: its inverter prepared from the saved options (which name the
    checkpoint); the checkpoint's sha256 must still be the one the inversion was made with."""
    from . import registry
    from .errors import InputError

    if domain is None:
        raise InputError(f"{path}: a paper-configuration inversion needs its domain to be rendered")
    inverter = registry.create_inverter(method, options=dict(options), device=str(device))
    state = inverter.prepare(domain)
    saved = provenance.get("weights_sha256")
    if saved and inverter.weights_sha256(domain) != saved:
        raise InputError(f"{path}: the checkpoint named in its options ({options.get('weights')}) is not the one the "
                         "inversion was made with (sha256 differs); invert the image again")
    decoder = getattr(state, "generator", None)
    if decoder is None:
        raise InputError(f"{path}: cannot find the checkpoint decoder of '{method}' to render this inversion")
    return decoder


def pack_images(images: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Images [B, 3, H, W] in [-1, 1] -> (uint8 tensor, "uint8") when `unpack_images` restores them bit for bit
    (images decoded from 8-bit files), else (float32 copy, "float32")."""
    x = images.detach().to("cpu", torch.float32)
    u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    if torch.equal(unpack_images(u8, "uint8"), x):
        return u8, "uint8"
    return x, "float32"


def unpack_images(packed: torch.Tensor, encoding: str) -> torch.Tensor:
    """Inverse of `pack_images`: float32 images in [-1, 1] (uint8 v -> v / 127.5 - 1, as the image loader does)."""
    if encoding == "uint8":
        return packed.to(torch.float32).div_(127.5).sub_(1.0)
    return packed.to(torch.float32)


def _select_extras(extras: dict[str, Any], rows: list[int], n: int) -> dict[str, Any]:
    """Slice the per-sample entries of `extras` (tensors [n, ...], lists of n tensors [n, ...] (per layer) or of n
    values (per sample)); everything else is shared by all samples and kept as is."""
    out: dict[str, Any] = {}
    for key, value in extras.items():
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == n:
            out[key] = value[rows]
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n for v in value):
            out[key] = [v[rows] for v in value]
        elif isinstance(value, (list, tuple)) and len(value) == n:
            out[key] = [value[i] for i in rows]
        else:
            out[key] = value
    return out


StyleOffsets = Sequence[torch.Tensor | None] | None


def _offsets_row(style_offsets: StyleOffsets, b: int) -> StyleOffsets:
    if style_offsets is None:
        return None
    return [None if o is None else (o if o.shape[0] == 1 else o[b : b + 1]) for o in style_offsets]


def render_with_change(
    generator: Generator, latents: torch.Tensor, change: GeneratorChange, noise: list[torch.Tensor] | None = None,
    style_offsets: StyleOffsets = None, transform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Render W+ `latents` [B, L, D] with fixed noise (or the given per-sample noise), a per-sample change and
    optional StyleSpace offsets of the S codes (see `Generator.style_codes`); `transform`: per-sample StyleGAN3 user
    transforms [B, 3, 3] (inverse matrices; only for generators with a Fourier-feature input), None = aligned."""
    latents = latents.to(generator.device)
    extra: dict[str, Any] = {}
    if transform is not None:
        transform = transform.to(generator.device)
        extra["transform"] = transform
    if isinstance(change, TunedWeights):
        params = dict(generator.named_parameters())
        outs = []
        for b, delta in enumerate(change.deltas):
            tuned = {k: params[k] + v.to(params[k]) for k, v in delta.items()}
            nb = None if noise is None else [n[b : b + 1] for n in noise]
            tb = {} if transform is None else {"transform": transform[b : b + 1] if transform.ndim == 3 else transform}
            img, _ = functional_call(
                generator, tuned, args=([latents[b : b + 1]],),
                kwargs=dict(input_is_latent=True, randomize_noise=False, noise=nb,
                            style_offsets=_offsets_row(style_offsets, b), **tb), strict=False,
            )
            outs.append(img)
        return torch.cat(outs)
    deltas = change.deltas if isinstance(change, WeightOffsets) else None
    img, _ = generator([latents], input_is_latent=True, randomize_noise=False, noise=noise, weights_deltas=deltas,
                       style_offsets=style_offsets, **extra)
    return img
