"""Parse a `domain.toml` (stdlib `tomllib`) into a `DomainSpec` with every path resolved.

Paths are relative to the TOML file; `~` and `$VARS` expand. Parsing never loads weights or images: it checks the
file's structure and collects one-line problems (`DomainSpec.problems`) so that `zoo domain check` can list them
all; `parse_domain_file(..., strict=True)` raises the first as an `InputError` naming the file and the field.

Fields (every one but `generator` and `images.test` is optional; `zoo domain new` writes a commented template):

    name = "ffhq"                      # default: the file's stem
    title = "FFHQ faces, official checkpoints"
    face = true                        # a face domain: face ID metrics, FFHQ alignment make sense
    resize = "bilinear"                # how files of another size are resized: bilinear (the official
                                       # Resize((256, 256)) transforms) or lanczos
    identity = "arcface:model_ir_se50.pth"   # curricularface:PATH | dlib | moco:PATH | none (a top-level key:
                                             # before the first [table])

    [generator]
    path = "stylegan2-ffhq-config-f.pt"  # rosinality .pt, NVlabs .pkl, or a pSp/e4e/ReStyle/HyperStyle .pt (decoder)
    sha256 = "…"                         # optional, verified when given

    [images]
    test = "celeba_hq/test"            # a folder, a glob ("faces/*.jpg", "**/*.png") or a list of them
    ood = ["paintings/", "sketches/*.png"]
    train = "ffhq/train"
    limit = 0                          # per split, 0 = all
    align = "none"                     # or "ffhq": dlib 68-landmark FFHQ alignment (pip install 'inversion-zoo[align]')

    [directions.interfacegan]          # InterFaceGAN boundaries: .pt / .npy of [512], [1, 512] or [n_styles, 512]
    age = "editing/age.pt"
    [directions.ganspace]              # a GANSpace PCA file (comp, mean, std) and named edits
    file = "editing/ffhq_pca.pt"
    edits = { eye_openness = [54, 7, 8, 5] }  # [component, first layer, last layer (exclusive), strength]
    [directions.stylespace]            # named StyleSpace channels s<slot>_<channel>
    smile = "s6_501"

    [methods.psp]                      # per inverter: its weights and any option
    weights = "psp_ffhq_encode.pt"
    [methods.hyperstyle]
    weights = "hyperstyle_ffhq.pt"
    w_encoder = "faces_w_encoder.pt"
    n_iters = 5

    [metrics]
    size = 256                         # evaluation size of L2 / LPIPS / MS-SSIM
    lpips = "alex"                     # the papers' LPIPS network (the only one implemented)

Image order (documented and fixed): the entries of a split in the order written; within a folder or glob, files
sorted by their path relative to the TOML file (case-sensitive, `/`-separated); a file matched twice is used once.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm"}
SPLITS = ("test", "ood", "train")
IDENTITY_KINDS = {"arcface": True, "curricularface": True, "moco": True, "dlib": False, "none": False}
PATH_OPTIONS = {"weights", "w_encoder", "generator", "checkpoint"}  # method options that name files
WEIGHT_SUFFIXES = (".pt", ".pth", ".pkl", ".safetensors", ".tar", ".npy")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
TOP_LEVEL = {"name", "title", "face", "resize", "generator", "images", "identity", "directions", "methods",
             "metrics", "notes", "licence"}


@dataclass(frozen=True)
class GanSpaceEdit:
    """A named GANSpace edit: principal component `component`, W+ layers [first, last), `strength` (HyperStyle's
    (pca_idx, start, end, strength) tuples)."""

    component: int
    first: int
    last: int
    strength: float


@dataclass
class DomainSpec:
    """A parsed domain file; every path absolute. `problems` lists one line per fault (empty when valid)."""

    file: Path
    name: str
    title: str = ""
    face: bool = False
    resize: str = "bilinear"
    generator: Path | None = None
    generator_sha256: str | None = None
    images: dict[str, list[str]] = field(default_factory=dict)  # split -> patterns (absolute)
    limit: int = 0
    align: str = "none"
    identity: str = "none"
    identity_path: Path | None = None
    interfacegan: dict[str, Path] = field(default_factory=dict)
    ganspace_file: Path | None = None
    ganspace_edits: dict[str, GanSpaceEdit] = field(default_factory=dict)
    stylespace: dict[str, str] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_size: int = 256
    lpips: str = "alex"
    notes: str = ""
    licence: str = ""
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.file}: {text}")


def expand(value: str, base: Path) -> Path:
    """`~` and `$VARS` expanded; relative paths resolved against `base` (the TOML file's folder)."""
    p = Path(os.path.expandvars(os.path.expanduser(value)))
    return Path(os.path.normpath(p if p.is_absolute() else (base / p)))


def parse_domain_file(path: str | Path, *, strict: bool = True) -> DomainSpec:
    """Read and validate a domain file. strict: raise the first problem as InputError (one line, names the file).

    Raises InputError when the file is missing or not valid TOML (always) and, with `strict`, on any problem.
    """
    path = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if not path.is_file():
        raise InputError(f"domain file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid TOML file ({exc})") from None
    spec = _parse(data, path.resolve())
    if strict and spec.problems:
        more = f" (and {len(spec.problems) - 1} more: `zoo domain check {path}`)" if len(spec.problems) > 1 else ""
        raise InputError(spec.problems[0] + more)
    return spec


def _parse(data: dict[str, Any], path: Path) -> DomainSpec:
    base = path.parent
    name = data.get("name", path.stem)
    spec = DomainSpec(file=path, name=str(name))
    for key in data:
        if key not in TOP_LEVEL:
            spec.problem(f"unknown field '{key}' (fields: {', '.join(sorted(TOP_LEVEL))})")
    if not isinstance(name, str) or not NAME_RE.match(name):
        spec.problem(f"name {name!r} must start with a letter and use only letters, digits, '_', '-', '.'")
    spec.title = str(data.get("title", ""))
    spec.notes = str(data.get("notes", ""))
    spec.licence = str(data.get("licence", ""))
    spec.face = _typed(spec, data, "face", bool, False)
    spec.resize = _choice(spec, data.get("resize", "bilinear"), "resize", ("bilinear", "lanczos"))
    _parse_generator(spec, data.get("generator"), base)
    _parse_images(spec, data.get("images"), base)
    _parse_identity(spec, data.get("identity", "dlib" if spec.face else "none"), base)
    _parse_directions(spec, data.get("directions", {}), base)
    _parse_methods(spec, data.get("methods", {}), base)
    metrics = data.get("metrics", {})
    if not isinstance(metrics, dict):
        spec.problem("[metrics] must be a table")
        metrics = {}
    spec.metric_size = _typed(spec, metrics, "size", int, 256, where="metrics.size")
    if spec.metric_size < 32:
        spec.problem(f"metrics.size {spec.metric_size} is too small (at least 32; the papers use 256)")
    spec.lpips = _choice(spec, metrics.get("lpips", "alex"), "metrics.lpips", ("alex",))
    if metrics.get("lpips") == "vgg":
        spec.problems[-1] += " (LPIPS-VGG is not implemented yet: use the papers' alex)"
    return spec


def _typed(spec: DomainSpec, table: dict[str, Any], key: str, kind: type, default: Any, where: str = "") -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        spec.problem(f"{where or key} must be {kind.__name__}, got {value!r}")
        return default
    return value


def _choice(spec: DomainSpec, value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        spec.problem(f"{where} must be one of {', '.join(allowed)}, got {value!r}")
        return allowed[0]
    return str(value)


def _parse_generator(spec: DomainSpec, gen: Any, base: Path) -> None:
    if isinstance(gen, str):
        gen = {"path": gen}
    if not isinstance(gen, dict) or "path" not in gen:
        spec.problem("[generator] path = \"…\" is required (a rosinality .pt, an NVlabs .pkl or an encoder .pt)")
        return
    spec.generator = expand(str(gen["path"]), base)
    sha = gen.get("sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha)):
        spec.problem(f"generator.sha256 must be 64 hex digits, got {sha!r}")
    spec.generator_sha256 = sha.lower() if isinstance(sha, str) else None


def _parse_images(spec: DomainSpec, images: Any, base: Path) -> None:
    if not isinstance(images, dict) or "test" not in images:
        spec.problem("[images] test = \"folder or glob\" is required")
        images = images if isinstance(images, dict) else {}
    for key, value in images.items():
        if key in SPLITS:
            entries = [value] if isinstance(value, str) else value
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries) or not entries:
                spec.problem(f"images.{key} must be a folder/glob or a list of them, got {value!r}")
                continue
            spec.images[key] = [str(expand(e, base)) for e in entries]
        elif key == "limit":
            spec.limit = _typed(spec, images, "limit", int, 0, where="images.limit")
            if spec.limit < 0:
                spec.problem("images.limit must be >= 0 (0 = all)")
        elif key == "align":
            spec.align = _choice(spec, value, "images.align", ("none", "ffhq"))
        else:
            spec.problem(f"unknown field images.{key} (test, ood, train, limit, align)")


def _parse_identity(spec: DomainSpec, value: Any, base: Path) -> None:
    if isinstance(value, dict):  # [identity] model = "arcface" / path = "…"
        value = f"{value.get('model', '')}:{value['path']}" if "path" in value else str(value.get("model", ""))
    if not isinstance(value, str):
        spec.problem(f"identity must be a string such as 'arcface:model_ir_se50.pth', got {value!r}")
        return
    kind, _, rest = value.partition(":")
    kind = kind.strip().lower()
    if kind not in IDENTITY_KINDS:
        spec.problem(f"identity '{value}': the model must be one of {', '.join(IDENTITY_KINDS)}")
        return
    if IDENTITY_KINDS[kind] and not rest:
        spec.problem(f"identity '{value}': {kind} needs its weights file, e.g. '{kind}:path/to/weights.pth'")
        return
    spec.identity = kind
    spec.identity_path = expand(rest, base) if rest else None


def _parse_directions(spec: DomainSpec, directions: Any, base: Path) -> None:
    if not isinstance(directions, dict):
        spec.problem("[directions] must be a table")
        return
    for editor, table in directions.items():
        if not isinstance(table, dict):
            spec.problem(f"[directions.{editor}] must be a table")
            continue
        if editor == "interfacegan":
            for name, file in table.items():
                if not isinstance(file, str):
                    spec.problem(f"directions.interfacegan.{name} must be a file path, got {file!r}")
                    continue
                spec.interfacegan[name] = expand(file, base)
        elif editor == "ganspace":
            _parse_ganspace(spec, table, base)
        elif editor == "stylespace":
            for name, channel in table.items():
                if not (isinstance(channel, str) and re.fullmatch(r"s\d+_\d+", channel)):
                    spec.problem(f"directions.stylespace.{name} must be a channel 's<slot>_<channel>', got {channel!r}")
                    continue
                spec.stylespace[name] = channel
        else:
            spec.problem(f"unknown [directions.{editor}] (interfacegan, ganspace, stylespace)")


def _parse_ganspace(spec: DomainSpec, table: dict[str, Any], base: Path) -> None:
    if "file" not in table:
        spec.problem("[directions.ganspace] needs file = \"…_pca.pt\" (comp, mean, std)")
        return
    spec.ganspace_file = expand(str(table["file"]), base)
    edits = table.get("edits", {})
    if not isinstance(edits, dict):
        spec.problem("directions.ganspace.edits must be a table name = [component, first, last, strength]")
        return
    for name, value in edits.items():
        ok = (isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) for v in value[:3])
              and isinstance(value[3], (int, float)))
        if not ok or value[0] < 0 or not 0 <= value[1] < value[2]:
            spec.problem(f"directions.ganspace.edits.{name} must be [component, first layer, last layer "
                         f"(exclusive, > first), strength], got {value!r}")
            continue
        spec.ganspace_edits[name] = GanSpaceEdit(int(value[0]), int(value[1]), int(value[2]), float(value[3]))


def _parse_methods(spec: DomainSpec, methods: Any, base: Path) -> None:
    if not isinstance(methods, dict):
        spec.problem("[methods] must be a table of [methods.NAME] tables")
        return
    for name, options in methods.items():
        if not isinstance(options, dict):
            spec.problem(f"[methods.{name}] must be a table of options, e.g. weights = \"…\"")
            continue
        resolved = {}
        for key, value in options.items():
            if isinstance(value, str) and (key in PATH_OPTIONS or value.lower().endswith(WEIGHT_SUFFIXES)):
                value = str(expand(value, base))
            resolved[key] = value
        spec.methods[name] = resolved


def split_files(patterns: list[str], base: Path) -> tuple[list[Path], list[str]]:
    """Image files of a split's entries (documented order) and one-line notes about entries that match nothing."""
    files: list[Path] = []
    seen: set[Path] = set()
    notes: list[str] = []
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir():
            found = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        elif p.is_file():
            found = [p]
        elif glob.has_magic(pattern):
            found = [Path(f) for f in glob.glob(pattern, recursive=True)]
            found = [f for f in found if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        else:
            notes.append(f"{pattern}: no such folder, file or glob")
            continue
        if not found:
            notes.append(f"{pattern}: no image files")
        for f in sorted(found, key=lambda f: _rel(f, base)):
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files, notes


def _rel(f: Path, base: Path) -> str:
    try:
        return f.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return f.resolve().as_posix()
