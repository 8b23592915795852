"""`zoo domain check FILE`: parse a domain file, load and verify everything it names, estimate the bench's time.

`check_domain_file(path)` never raises for a fault of the file: it collects one line per problem
(`<file>: <what>; <fix>`) and per warning, and returns a `CheckResult` with the resolved card (JSON-ready dict),
the problems, the warnings and the time estimate. What it verifies:

* the file parses (every structural problem of `spec.py`, all at once) and its name is not a registered domain's;
* generator: the file exists, its format (rosinality / NVlabs / an encoder checkpoint's decoder), `sha256` when given;
  resolution, n_styles, w_dim, channel multiplier and mapping depth inferred from its weights (`infer_config`);
* images: per split the files in the documented order (count, first and last name; the first and last file are
  opened), notes for entries matching nothing; with `align = "ffhq"` only whether dlib and the landmark model are
  installed (nothing is aligned);
* identity: the weights file exists; ArcFace / CurricularFace load into the IR backbone of `zoo_metrics.irse`
  (the architecture is reported), MoCo is read weights-only; `dlib` needs dlib's face descriptor installed;
* directions: InterFaceGAN files load and fit [w_dim] / [n_styles, w_dim]; the GANSpace file loads, has w_dim columns,
  its named edits use components < n and layers within n_styles; StyleSpace channels exist in the generator;
* methods: each `[methods.NAME]` is a registered inverter ("did you mean"), its options are valid (`configure`),
  its weight files exist; an official encoder checkpoint is the method it is listed under (`detect_method`), loads
  strictly, and its decoder is compared with the domain generator by `state_dict_digest` (a differing decoder is a
  WARNING naming both digests: the method then reconstructs through its own decoder, not the domain's generator).

Time estimate (`estimate=True`): one generator forward at batch 1 on the device is measured (1 warm-up, then the
mean of 2 timed repetitions); each method's seconds per image = its factor x that forward (`mean_latent` 1;
`optim`, `optim_wplus`, `idinvert` and any method with a `steps` option: steps x 3, a forward + backward costing about
3 forwards, LPIPS and other losses not counted; `pti` (pivot_steps + steps) x 3, an upper bound as tuning stops
early), or, for official encoder checkpoints, one measured inversion pass (encoder + decoder, 256 px input, batch 1,
1 warm-up + 1 timed) x n_iters; encoders without weights are n/a (unavailable in the bench); x the number of images a
bench run inverts (test + ood splits; a default run `--limit 8` per split, the whole splits with `--limit 0`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ZooError
from .spec import IMAGE_SUFFIXES, PATH_OPTIONS, SPLITS, WEIGHT_SUFFIXES, DomainSpec, parse_domain_file, split_files

BENCH_SPLITS = ("test", "ood")  # the splits `zoo bench` inverts
EDIT_STEPS = 7  # the default editing sweep -3..3
OFFICIAL_INPUT = 256  # official encoders see 256x256 inputs



@dataclass
class CheckResult:
    """What `zoo domain check` reports: `problems` and `warnings` are one line each (`<file>: <what>; <fix>`)."""

    file: str
    card: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    estimate: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "ok": self.ok, "card": self.card, "problems": self.problems,
                "warnings": self.warnings, "estimate": self.estimate, "seconds": round(self.seconds, 3)}


def state_dict_digest(sd: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the sorted key names, each followed by its shape and its values as float32 bytes: equal for the
    same generator weights whatever the file format, dtype or key order."""
    h = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key]
        if not isinstance(t, torch.Tensor):
            continue
        a = t.detach().to("cpu", torch.float32).contiguous()
        h.update(key.encode())
        h.update(repr(tuple(a.shape)).encode())
        h.update(a.numpy().tobytes())
    return h.hexdigest()


def short(digest: str | None) -> str:
    return (digest or "")[:16]


class _Checker:
    def __init__(self, path: Path, estimate: bool, device: str) -> None:
        self.path = path
        self.do_estimate = estimate
        self.device = device
        self.result = CheckResult(str(path))
        self.spec: DomainSpec | None = None
        self.base = path.parent
        self.generator: Any = None  # LoadedGenerator
        self.gen_digest: str | None = None
        self.methods: dict[str, dict[str, Any]] = {}  # name -> card entry
        self.encoder_pass: dict[str, float] = {}  # method -> measured seconds of one pass

    # ------------------------------------------------------------------ reporting helpers
    def problem(self, file: Any, what: str, fix: str = "") -> None:
        self.result.problems.append(f"{os.path.normpath(file)}: {what}" + (f"; {fix}" if fix else ""))

    def warn(self, file: Any, what: str, fix: str = "") -> None:
        self.result.warnings.append(f"{os.path.normpath(file)}: {what}" + (f"; {fix}" if fix else ""))

    def rel(self, p: Any) -> str:
        """A path for the card: relative to the TOML file's folder when inside it, else absolute (normalised)."""
        if p is None:
            return ""
        p = Path(os.path.normpath(os.path.abspath(p)))
        try:
            return p.relative_to(os.path.normpath(self.base)).as_posix()
        except ValueError:
            return p.as_posix()

    @property
    def where(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------ main
    def run(self) -> CheckResult:
        start = time.perf_counter()
        try:
            spec = parse_domain_file(self.path, strict=False)
        except ZooError as exc:
            self.result.problems.append(str(exc) if str(self.path) in str(exc) else f"{self.path}: {exc}")
            self.result.seconds = time.perf_counter() - start
            return self.result
        self.spec = spec
        self.path = spec.file
        self.base = spec.file.parent
        self.result.file = str(spec.file)
        self.result.problems.extend(spec.problems)
        card: dict[str, Any] = {"name": spec.name, "title": spec.title, "file": str(spec.file), "face": spec.face,
                                "resize": spec.resize, "notes": spec.notes, "licence": spec.licence}
        self.result.card = card
        self._check_name()
        card["generator"] = self._check_generator()
        card["images"] = self._check_images()
        card["identity"] = self._check_identity()
        card["directions"] = self._check_directions()
        card["methods"] = self._check_methods()
        card["metrics"] = {"size": spec.metric_size, "lpips": spec.lpips}
        if self.do_estimate:
            self.result.estimate = self._estimate()
        self.result.seconds = time.perf_counter() - start
        return self.result

    def _check_name(self) -> None:
        from .. import registry

        try:
            taken = self.spec.name in registry.registrations("domain")
        except ZooError:
            taken = False
        if taken:
            self.problem(self.path, f"name '{self.spec.name}' is taken by a registered domain",
                         "set another name = \"…\" in the file")

    # ------------------------------------------------------------------ generator
    def _check_generator(self) -> dict[str, Any]:
        from ..errors import CheckpointError
        from ..stylegan2.checkpoints import infer_config
        from .domain import file_sha256, load_domain_generator

        spec = self.spec
        info: dict[str, Any] = {"path": self.rel(spec.generator) if spec.generator else None}
        path = spec.generator
        if path is None:
            return info
        if not path.is_file():
            self.problem(path, f"generator file not found (generator.path in {self.where})",
                         "fix the path (relative to the domain file's folder) or download the file")
            return info
        info["size_mb"] = round(path.stat().st_size / 2**20, 1)
        sha = file_sha256(path)
        info["sha256"] = sha
        if spec.generator_sha256:
            info["sha256_expected"] = spec.generator_sha256
            if sha != spec.generator_sha256:
                self.problem(path, f"sha256 {sha[:16]}… differs from generator.sha256 "
                                   f"{spec.generator_sha256[:16]}… in {self.where}",
                             "download the file again or update generator.sha256")
        try:
            loaded, fmt = load_domain_generator(path, "cpu")
        except (CheckpointError, ZooError) as exc:
            self.problem(path, f"cannot be used as the generator: {exc}",
                         "give a rosinality .pt, an NVlabs .pkl or a pSp/e4e/ReStyle/HyperStyle .pt")
            return info
        g = loaded.generator
        self.generator = loaded
        sd = g.state_dict()
        if hasattr(g, "init_kwargs"):  # StyleGAN3 (zoo.stylegan3): config T / R from its constructor arguments
            kw = g.init_kwargs
            info.update({"format": fmt, "network": "StyleGAN3-" + ("R" if kw.get("conv_kernel", 3) == 1 else "T"),
                         "resolution": int(g.size), "n_styles": int(g.n_latent), "w_dim": int(g.style_dim),
                         "mapping_layers": int(g.mapping.num_layers), "synthesis_layers": len(g.layer_slots()),
                         "channels": {s.name: s.out_channels for s in g.layer_slots()},
                         "latent_avg": "from file (mapping.w_avg)", "digest": state_dict_digest(sd)})
            self.gen_digest = info["digest"]
            return info
        cfg = infer_config(sd)
        info.update({"format": fmt, "network": "StyleGAN2", "resolution": int(g.size), "n_styles": int(g.n_latent),
                     "w_dim": int(g.style_dim), "mapping_layers": int(cfg.n_mlp),
                     "channel_multiplier": cfg.channel_multiplier if cfg.channels is None else None,
                     "channels": None if cfg.channels is None else {str(k): v for k, v in cfg.channels.items()},
                     "latent_avg": "computed (10,000 mapped samples)" if loaded.latent_avg_computed else "from file",
                     "digest": state_dict_digest(sd)})
        self.gen_digest = info["digest"]
        return info

    # ------------------------------------------------------------------ images
    def _check_images(self) -> dict[str, Any]:
        spec = self.spec
        info: dict[str, Any] = {"limit": spec.limit, "align": spec.align, "splits": {}}
        for split in SPLITS:
            if split not in spec.images:
                continue
            files, notes = split_files(spec.images[split], self.base)
            used = files[: spec.limit] if spec.limit else files
            entry = {"entries": [self.rel(p) for p in spec.images[split]], "files": len(files), "used": len(used),
                     "first": self.rel(files[0]) if files else None, "last": self.rel(files[-1]) if files else None,
                     "notes": notes}
            info["splits"][split] = entry
            if not files:
                why = "; ".join(self.rel(n.rsplit(": ", 1)[0]) + ": " + n.rsplit(": ", 1)[1] for n in notes)
                self.problem(self.path, f"images.{split} matches no image files"
                                        + (f" ({why})" if why else ""),
                             "point it at a folder or glob of images (relative to the domain file's folder; "
                             f"{', '.join(sorted(IMAGE_SUFFIXES))})")
                continue
            for note in notes:
                self.warn(self.path, f"images.{split}: {note}", "fix the entry or remove it")
            for f in {files[0], files[-1]}:
                self._check_image_file(f)
        if spec.align == "ffhq":
            info["aligner"] = self._check_aligner()
        return info

    def _check_image_file(self, f: Path) -> None:
        from PIL import Image

        try:
            with Image.open(f) as im:
                im.verify()
        except Exception as exc:  # noqa: BLE001 - any decoder failure is the same problem to the user
            self.problem(f, f"cannot be read as an image ({type(exc).__name__})", "re-save it or remove it")

    def _check_aligner(self) -> str:
        from ..align import ffhq

        try:
            ffhq._import_dlib()
            ffhq.landmark_model_path()
        except ZooError as exc:
            self.problem(self.path, f"images.align = \"ffhq\" but {exc}", f"install it ({ffhq.INSTALL_COMMAND}) or "
                                                                          "set align = \"none\" for aligned images")
            return "unavailable"
        return "dlib 68-landmark FFHQ alignment (installed; images are aligned when first used)"

    # ------------------------------------------------------------------ identity
    def _check_identity(self) -> dict[str, Any]:
        spec = self.spec
        kind, path = spec.identity, spec.identity_path
        info: dict[str, Any] = {"model": kind, "path": self.rel(path) if path else None}
        if kind == "dlib":
            try:
                from zoo_metrics.face_id import dlib_unavailable  # type: ignore[import-not-found]

                reason = dlib_unavailable()
            except ImportError:
                reason = None
            if reason:  # the bench still runs, without the id metric
                self.warn(self.path, f"identity = \"dlib\" (the default of face domains): {reason}",
                          "install it or choose another identity; without it the id metric is unavailable")
            info["detail"] = "dlib ResNet face descriptor" + (" (not installed)" if reason else "")
            return info
        if path is None:
            return info
        if not path.is_file():
            self.problem(path, f"identity weights not found (identity in {self.where})",
                         "fix the path (relative to the domain file's folder) or download the file")
            return info
        info["size_mb"] = round(path.stat().st_size / 2**20, 1)
        if kind in ("arcface", "curricularface"):
            info["detail"] = self._check_irse(kind, path)
        else:
            info["detail"] = self._check_moco(path)
        return info

    def _check_irse(self, kind: str, path: Path) -> str:
        try:
            from zoo_metrics.irse import load_ir_backbone  # type: ignore[import-not-found]
        except ImportError:
            return self._check_readable(path, kind)
        try:
            model = load_ir_backbone(path)
        except ZooError as exc:
            self.problem(path, f"not a {kind} IR backbone: {exc}",
                         "use model_ir_se50.pth (arcface) or CurricularFace_Backbone.pth (curricularface)")
            return "does not load"
        arch = model.arch
        expected = {"arcface": "IR-SE-50", "curricularface": "IR-101"}[kind]
        if arch != expected:
            other = "curricularface" if arch == "IR-101" else "arcface" if arch == "IR-SE-50" else None
            self.warn(path, f"identity = \"{kind}:…\" but the file is an {arch} backbone ({kind} is {expected})",
                      f"write identity = \"{other}:…\"" if other else "check the file")
        return f"{arch} backbone, loads strictly"

    def _check_moco(self, path: Path) -> str:
        obj = self._read_weights_only(path, "moco")
        if obj is None:
            return "unreadable"
        sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(sd, dict) or not any("encoder_q." in str(k) for k in sd):
            self.warn(path, "does not look like a MoCo v2 checkpoint (no 'encoder_q.*' weights)",
                      "use moco_v2_800ep_pretrain.pt from the e4e / ReStyle / HyperStyle READMEs")
            return "readable (weights-only), layout unknown"
        return "MoCo v2 ResNet-50 checkpoint (weights-only readable)"

    def _check_readable(self, path: Path, kind: str) -> str:
        return "readable (weights-only)" if self._read_weights_only(path, kind) is not None else "unreadable"

    def _read_weights_only(self, path: Path, kind: str) -> Any:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            self.problem(path, f"cannot be read weights-only as {kind} weights ({msg})",
                         "download the file again (an HTML quota page?)")
            return None

    # ------------------------------------------------------------------ directions
    def _check_directions(self) -> dict[str, Any]:
        from ..errors import CheckpointError
        from .domain import load_direction, load_ganspace

        spec = self.spec
        g = self.generator.generator if self.generator is not None else None
        w_dim = int(g.style_dim) if g is not None else None
        n_styles = int(g.n_latent) if g is not None else None
        info: dict[str, Any] = {"interfacegan": {}, "ganspace": None, "stylespace": {}}
        for name, path in spec.interfacegan.items():
            entry: dict[str, Any] = {"file": self.rel(path)}
            info["interfacegan"][name] = entry
            if not path.is_file():
                self.problem(path, f"direction '{name}' not found (directions.interfacegan.{name} in {self.where})",
                             "fix the path or download the file")
                continue
            try:
                t = load_direction(path)
            except CheckpointError as exc:
                self.problem(path, f"direction '{name}': {exc}", "give a [w_dim], [1, w_dim] or [n_styles, w_dim] "
                                                                 "tensor (.pt) or array (.npy)")
                continue
            entry["shape"] = list(t.shape)
            if w_dim is not None and (t.shape[-1] != w_dim or (t.ndim == 2 and t.shape[0] != n_styles)):
                self.problem(path, f"direction '{name}' has shape {list(t.shape)} but the generator has w_dim "
                                   f"{w_dim} and {n_styles} styles",
                             f"use a boundary of [{w_dim}], [1, {w_dim}] or [{n_styles}, {w_dim}] trained for this "
                             "generator")
        if spec.ganspace_file is not None:
            info["ganspace"] = self._check_ganspace(load_ganspace, w_dim, n_styles)
        slots = g.layer_slots() if g is not None else None
        for name, channel in spec.stylespace.items():
            info["stylespace"][name] = channel
            if slots is None:
                continue
            slot, ch = (int(v) for v in channel[1:].split("_"))
            if slot >= len(slots) or ch >= slots[slot].in_channels:
                size = f"slot {slot} has {slots[slot].in_channels} channels" if slot < len(slots) \
                    else f"the generator has {len(slots)} slots (s0..s{len(slots) - 1})"
                self.problem(self.path, f"directions.stylespace.{name} = \"{channel}\" does not exist: {size}",
                             "pick a channel from `zoo directions stylespace --domain FILE`")
        return info

    def _check_ganspace(self, load_ganspace: Any, w_dim: int | None, n_styles: int | None) -> dict[str, Any]:
        from ..errors import CheckpointError

        spec = self.spec
        path = spec.ganspace_file
        info: dict[str, Any] = {"file": self.rel(path),
                                "edits": {k: [e.component, e.first, e.last, e.strength]
                                          for k, e in spec.ganspace_edits.items()}}
        if not path.is_file():
            self.problem(path, f"GANSpace file not found (directions.ganspace.file in {self.where})",
                         "fix the path or download the file")
            return info
        try:
            pca = load_ganspace(path)
        except CheckpointError as exc:
            self.problem(path, str(exc).removeprefix(f"{path}: "), "give a GANSpace PCA file with comp, mean, std")
            return info
        n, dim = pca["comp"].shape
        info.update(components=int(n), w_dim=int(dim))
        if w_dim is not None and dim != w_dim:
            self.problem(path, f"GANSpace components have {dim} columns but the generator's w_dim is {w_dim}",
                         "use the PCA computed for this generator")
        for name, e in spec.ganspace_edits.items():
            if e.component >= n:
                self.problem(self.path, f"directions.ganspace.edits.{name}: component {e.component} but "
                                        f"{path.name} has {n} components (0..{n - 1})", "pick a smaller component")
            if n_styles is not None and e.last > n_styles:
                self.problem(self.path, f"directions.ganspace.edits.{name}: layers [{e.first}, {e.last}) exceed the "
                                        f"generator's {n_styles} W+ layers",
                             f"use a last layer <= {n_styles} (exclusive)")
        return info

    # ------------------------------------------------------------------ methods
    def _check_methods(self) -> dict[str, Any]:
        from .. import registry
        from ..errors import UnknownNameError

        known = registry.list_inverters()
        out: dict[str, Any] = {}
        for name, opts in self.spec.methods.items():
            entry: dict[str, Any] = {"options": {k: self.rel(v) if self._is_path(k, v) else v
                                                 for k, v in opts.items()}}
            out[name] = entry
            if name not in known:
                msg = str(UnknownNameError.for_name("inverter", name, known))
                self.problem(self.path, f"[methods.{name}]: {msg}", "rename the table to a registered inverter")
                continue
            cls = registry.get_inverter_class(name)
            entry["kind"] = cls.kind
            try:
                resolved = cls.configure(opts)
                entry["resolved"] = resolved
            except Exception as exc:  # noqa: BLE001 - InputError / TypeError / ValueError from the Options
                self.problem(self.path, f"[methods.{name}]: {exc}", f"see the options of `zoo show {name}`")
            missing = False
            for key, value in opts.items():
                if self._is_path(key, value) and not Path(value).is_file():
                    missing = True
                    self.problem(value, f"not found ([methods.{name}] {key} in {self.where})",
                                 "fix the path (relative to the domain file's folder) or download the file")
            if not missing and isinstance(opts.get("weights"), str) and name in _official_methods():
                self._check_encoder(name, opts, entry)
        self.methods = out
        return out

    @staticmethod
    def _is_path(key: str, value: Any) -> bool:
        return isinstance(value, str) and (key in PATH_OPTIONS or value.lower().endswith(WEIGHT_SUFFIXES))

    def _check_encoder(self, name: str, opts: dict[str, Any], entry: dict[str, Any]) -> None:
        from ..encoders.official import detect_method, load_official, read_checkpoint, strip_prefix
        from ..stylegan2.checkpoints import infer_config

        path = Path(opts["weights"])
        try:
            ckpt = read_checkpoint(path)
        except ZooError as exc:
            self.problem(path, str(exc).removeprefix(f"{path}: ").removeprefix(f"{path} "),
                         f"download it again ([methods.{name}] weights)")
            return
        if "g_ema" in ckpt and "state_dict" not in ckpt:
            self.problem(path, f"is a StyleGAN2 generator file, not a {name} checkpoint ([methods.{name}] weights)",
                         "point weights at the encoder checkpoint; the generator goes to [generator] path")
            return
        sd = ckpt.get("state_dict")
        raw_opts = ckpt.get("opts") or {}
        if not isinstance(sd, Mapping) or not isinstance(raw_opts, Mapping):
            self.problem(path, f"not an official encoder checkpoint (no 'state_dict' / 'opts' dict; top-level keys "
                               f"{sorted(ckpt)[:6]})", f"give [methods.{name}] weights an official {name} checkpoint")
            return
        try:
            method, etype, by = detect_method(raw_opts, sd)
        except ZooError as exc:
            self.problem(path, str(exc), f"give [methods.{name}] weights an official {name} checkpoint")
            return
        entry["checkpoint"] = {"method": method, "encoder_type": etype, "detected_by": by}
        if method != name:
            fix = (f"move it to [methods.{method}]" if method in _official_methods() - {"w_encoder"}
                   else "it is HyperStyle's W-encoder: give it as w_encoder = \"…\" under [methods.hyperstyle]")
            article = "an" if method[0] in "aeiou" else "a"
            self.problem(path, f"is {article} {method} checkpoint (encoder_type {etype}, from its {by}) but is listed "
                               f"under [methods.{name}] in {self.where}", fix)
            return
        w_enc = opts.get("w_encoder")
        if name == "hyperstyle":
            if not w_enc:
                stored = raw_opts.get("w_encoder_checkpoint_path")
                if not (isinstance(stored, str) and Path(stored).is_file()):
                    self.problem(self.path, "[methods.hyperstyle] has no w_encoder (HyperStyle's W-encoder; the path "
                                            f"stored in the checkpoint, {stored!r}, does not exist)",
                                 "add w_encoder = \"faces_w_encoder.pt\" (or cars_w_encoder.pt, …)")
                    return
            elif not self._check_w_encoder(Path(w_enc)):
                return
        flat = {k.removeprefix("module."): v for k, v in sd.items()}
        decoder = strip_prefix(flat, "decoder")
        if decoder:
            digest = state_dict_digest(decoder)
            entry["decoder_digest"] = digest
            try:
                res = infer_config(decoder).size
            except ZooError:
                res = None
            entry["decoder_resolution"] = res
            if self.gen_digest is not None:
                same = digest == self.gen_digest
                entry["decoder"] = "same as the generator" if same else "differs from the generator"
                if not same:
                    gres = self.result.card.get("generator", {}).get("resolution")
                    size = f" ({res}px vs {gres}px)" if res and gres and res != gres else ""
                    self.warn(path, f"its decoder differs from the domain generator{size}: decoder digest "
                                    f"{short(digest)}… vs generator digest {short(self.gen_digest)}…; {name} "
                                    "reconstructs through its own decoder, so its scores are not for "
                                    f"{self.spec.generator.name}",
                              "use the generator this checkpoint was trained with (or point [generator] at it)")
        device = self.device if self.do_estimate else "meta"
        try:
            model = load_official(ckpt, device=device, w_encoder=Path(w_enc) if w_enc else None)
        except ZooError as exc:
            self.problem(path, f"does not load as {name}: {exc}", "download the official checkpoint again")
            return
        entry["checkpoint"].update(output_size=model.output_size, n_styles=model.n_styles, input_nc=model.input_nc)
        if self.do_estimate:
            del ckpt, sd, flat, decoder
            self.encoder_pass[name] = self._time_encoder(model)
        del model

    def _check_w_encoder(self, path: Path) -> bool:
        from ..encoders.official import detect_method, read_checkpoint

        try:
            ckpt = read_checkpoint(path)
            sd, opts = ckpt.get("state_dict"), ckpt.get("opts") or {}
            if not isinstance(sd, Mapping) or not isinstance(opts, Mapping):
                raise ZooError("no 'state_dict' / 'opts' dict")
            method, etype, _ = detect_method(opts, sd)
        except ZooError as exc:
            self.problem(path, f"[methods.hyperstyle] w_encoder: {exc}", "give HyperStyle's W-encoder "
                                                                         "(faces_w_encoder.pt)")
            return False
        if method != "w_encoder":
            self.problem(path, f"[methods.hyperstyle] w_encoder is a {method} checkpoint ({etype}), not a W-encoder",
                         "give HyperStyle's W-encoder (faces_w_encoder.pt / cars_w_encoder.pt)")
            return False
        return True

    # ------------------------------------------------------------------ time estimate
    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    @torch.no_grad()
    def _time_encoder(self, model: Any) -> float:
        x = torch.zeros(1, 3, OFFICIAL_INPUT, OFFICIAL_INPUT, device=self.device)
        if model.method in ("psp", "e4e") and model.input_nc != 3:
            return float("nan")
        times = []
        for _ in range(2):  # 1 warm-up + 1 timed
            self._sync()
            t = time.perf_counter()
            model.invert(x, n_iters=1)
            self._sync()
            times.append(time.perf_counter() - t)
        return times[-1]

    @torch.no_grad()
    def _time_generator(self) -> float:
        g = self.generator.generator.to(self.device)
        w = self.generator.latent_avg.to(self.device).reshape(1, -1)
        times = []
        for _ in range(3):  # 1 warm-up + 2 timed
            self._sync()
            t = time.perf_counter()
            g([w], input_is_latent=True, randomize_noise=False)
            self._sync()
            times.append(time.perf_counter() - t)
        return sum(times[1:]) / 2

    def _estimate(self) -> dict[str, Any]:
        from .. import registry
        from ..bench.config import DEFAULT_LIMIT as BENCH_DEFAULT_LIMIT  # images per split of a default bench run
        from ..options import make_options

        splits = self.result.card.get("images", {}).get("splits", {})
        n_full = sum(splits[s]["used"] for s in BENCH_SPLITS if s in splits)
        n_default = sum(min(BENCH_DEFAULT_LIMIT, splits[s]["files"]) for s in BENCH_SPLITS if s in splits)
        est: dict[str, Any] = {
            "device": self.device, "threads": torch.get_num_threads(), "generator_forward_s": None,
            "images": {"default_run": n_default, "whole_splits": n_full},
            "how": ("an estimate, not a measurement of the bench: one generator forward at batch 1 measured on this "
                    "device (1 warm-up, mean of 2 timed runs); per image = the method's factor x that forward, or "
                    "one measured encoder pass (encoder + decoder at 256 px input, 1 warm-up + 1 timed) x n_iters; "
                    "total = per image x the images a run inverts (test + ood: default run --limit "
                    f"{BENCH_DEFAULT_LIMIT} per split, or the whole splits with --limit 0). Loading, metrics and the "
                    "editing sweep are not in the totals."),
            "methods": {}}
        if self.generator is None:
            est["how"] = "no estimate: the generator did not load"
            return est
        fwd = self._time_generator()
        est["generator_forward_s"] = fwd
        n_dirs = (len(self.spec.interfacegan) + len(self.spec.ganspace_edits) + len(self.spec.stylespace))
        est["editing_sweep_per_image_method_s"] = n_dirs * EDIT_STEPS * fwd
        est["editing_sweep_how"] = (f"{n_dirs} domain directions x {EDIT_STEPS} steps x 1 generator forward; the "
                                    "editors' own directions come on top")
        for name in registry.list_inverters():
            cls = registry.get_inverter_class(name)
            user = self.spec.methods.get(name, {})
            row: dict[str, Any] = {"kind": cls.kind, "per_image_s": None, "how": ""}
            try:
                o = make_options(cls.Options, cls.configure(user))
            except Exception:  # noqa: BLE001 - reported as a problem by _check_methods
                row["how"] = "n/a (invalid options)"
                est["methods"][name] = row
                continue
            sg3 = hasattr(getattr(self.generator.generator, "synthesis", None), "input")
            if sg3 and "stylegan3" not in getattr(cls, "generators", ("stylegan2",)):
                row["how"] = "n/a: cannot run on a StyleGAN3 generator yet"
            elif name in self.encoder_pass:
                n_iters = int(getattr(o, "n_iters", 1) or 1)
                t = self.encoder_pass[name]
                row.update(per_image_s=t * n_iters, how=f"measured pass {t:.3g} s x n_iters {n_iters}")
            elif hasattr(o, "weights") and not getattr(o, "weights", None):
                row["how"] = f"n/a: needs weights = \"…\" in [methods.{name}] (bench lists it as unavailable)"
            elif hasattr(o, "weights") and name in _official_methods():
                row["how"] = "n/a: its checkpoint did not load"
            elif name == "mean_latent":
                row.update(per_image_s=fwd, how="1 generator forward")
            elif name == "pti":
                steps = int(o.pivot_steps) + int(o.steps)
                row.update(per_image_s=steps * 3 * fwd, how=f"(pivot_steps {o.pivot_steps} + steps {o.steps}) x 3 "
                                                            "forwards (upper bound: tuning stops early)")
            elif hasattr(o, "steps"):
                row.update(per_image_s=int(o.steps) * 3 * fwd, how=f"steps {o.steps} x 3 forwards")
            else:
                row["how"] = "n/a (no factor for this method)"
            if row["per_image_s"] is not None and row["per_image_s"] == row["per_image_s"]:
                row["default_run_s"] = row["per_image_s"] * n_default
                row["whole_splits_s"] = row["per_image_s"] * n_full
            elif row["per_image_s"] is not None:  # NaN: not measurable
                row.update(per_image_s=None, how="n/a (input_nc != 3)")
            est["methods"][name] = row
        return est


def _official_methods() -> set[str]:
    from ..encoders.official import ENCODER_TYPES

    return {m for m, _ in ENCODER_TYPES.values()}


def check_domain_file(path: str | Path, *, estimate: bool = True, device: str = "auto") -> CheckResult:
    """Check a domain file (see the module docstring); never raises for faults of the file or its files."""
    from ..bench.config import resolve_device

    p = Path(os.path.expandvars(os.path.expanduser(str(path))))
    return _Checker(p, estimate, resolve_device(device)).run()
