"""`Evaluator`: per-image reconstruction metrics and the editing sweep of one domain.

Everything is computed per image so that results do not depend on how images were batched. Metric scores are
computed on the reconstruction rounded to float16 (the precision kept in the cache), so a score computed now and
one recomputed later from the cache agree exactly.

Domains whose split has poses (`Domain.poses`, StyleGAN3 domains: the images are aligned crops of unaligned frames)
are evaluated in the unaligned frame, as stylegan3-editing's final output: the inversion of the aligned crop is
rendered with the image's pose (`Inversion.with_transform`) and scored against `Domain.unaligned_images` under the
metric's own name; the aligned-frame scores (reconstruction of the crop vs the crop) are kept as
`aligned_<metric>`. Edits are rendered with the pose too, so attribute scorers and the identity model see the frame
the domain's images come from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..errors import ZooError

if TYPE_CHECKING:
    from ..domain import Domain
    from ..editor import Editor
    from ..inversion import Inversion
    from ..metric import Metric

Embedder = Callable[[torch.Tensor], torch.Tensor]
ALIGNED_PREFIX = "aligned_"  # aligned-frame scores of a posed split: `aligned_<metric>`
FRAME_PROTOCOL = "unaligned-1"  # part of the fingerprint of a domain with poses (evaluation in the unaligned frame)
BENCH_SPLITS = ("test", "ood")  # the splits whose poses decide a domain's evaluation frame (cheap: limit 1)


@dataclass(frozen=True)
class Frame:
    """The unaligned frame of the first `len(poses)` images of a split: poses float64 [N, 3] (r degrees CCW, tx, ty
    fractions of the side; `Domain.poses`) and the unaligned images float32 [N, 3, H, W] in [-1, 1]."""

    poses: torch.Tensor
    images: torch.Tensor

    def pose(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(r, tx, ty), each [B] float64, of the images at `indices` (what `Inversion.with_transform` takes)."""
        p = self.poses[list(indices)]
        return p[:, 0], p[:, 1], p[:, 2]

    def key(self, index: int) -> str:
        """'unaligned:<sha256[:16]>' of image `index`'s pose and unaligned image: part of its work unit's key."""
        h = hashlib.sha256(self.poses[index].to(torch.float64).contiguous().numpy().tobytes())
        h.update(self.images[index].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return f"unaligned:{h.hexdigest()[:16]}"


def is_aligned_metric(name: str) -> bool:
    """Whether `name` is the aligned-frame copy of a metric (`aligned_<metric>`) of a posed split."""
    return name.startswith(ALIGNED_PREFIX)


def has_poses(domain: Domain) -> bool:
    """Whether `domain` gives poses for one of its bench splits (test, ood); a failing `poses` counts as none."""
    try:
        splits = domain.splits()
        return any(domain.poses(s, limit=1) is not None for s in BENCH_SPLITS if s in splits)
    except Exception:  # noqa: BLE001 - a domain without usable poses is evaluated as it always was
        return False


@dataclass(frozen=True)
class EditTarget:
    """One point of the editing sweep: `step` along `direction` of `editor`, measured with `scorers`."""

    editor: str
    version: str
    direction: str
    step: float
    scorers: tuple[str, ...]

    @property
    def key(self) -> str:
        """Stable record key, e.g. 'interfacegan@1|smile|-2'."""
        return f"{self.editor}@{self.version}|{self.direction}|{self.step:g}"


def round_fp16(x: torch.Tensor) -> torch.Tensor:
    """The float32 values that survive a float16 round trip (what the cache stores)."""
    return x.detach().to(torch.float16).to(torch.float32)


def finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def matching_scorers(direction: str, scorers: Sequence[str]) -> tuple[str, ...]:
    """The scorer named like the direction (case-insensitive) if there is one, else all scorers."""
    same = tuple(s for s in scorers if s.lower() == direction.lower())
    return same or tuple(scorers)


def editor_version(editor: Editor) -> str:
    """The editor's version, plus a short digest of its options when it has any ('1', '1+3f2a9c1d')."""
    opts = editor.options
    fields = dataclasses.asdict(opts) if dataclasses.is_dataclass(opts) else {}
    if not fields:
        return str(editor.version)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{editor.version}+{digest}"


# Version of the scoring protocol, part of the fingerprint. 2: images are clamped to [-1, 1] before metrics, attribute
# scorers and the identity embedder (as the official evaluation scripts, which score saved images), so an inverter
# whose generator overshoots the range is scored on what a user sees. 3: every edit also records the image change
# (mean |edited - unedited| over pixels and channels, on [-1, 1] images), the measure that stays when a domain has
# no attribute scorers. 4: every edit also records the change inside the edited region (`Domain.edit_region`: where
# the direction's attribute lies, what a person looks at; None without a region) and, per attribute score, whether
# the scorer is independent of the direction (False when the editor chose the direction with that scorer).
EVAL_PROTOCOL = 4
# weight roles owned by inverters (their digests are part of each work unit's key, not of the evaluation)
METHOD_ROLE_PREFIXES = ("encoder/",)


def domain_fingerprint(domain: Domain, posed: bool = False) -> str:
    """Short sha256 of the digests of the domain's evaluation weights (generator, identity, attribute scorers,
    directions: a change re-scores everything); inverter weights (`encoder/...`) are left out, so retraining one
    encoder re-runs only that method's units. `posed`: the domain is evaluated in the unaligned frame
    (FRAME_PROTOCOL joins the digest; domains without poses keep their fingerprint)."""
    try:
        digests = {role: spec.sha256 for role, spec in domain.weights.items()
                   if not role.startswith(METHOD_ROLE_PREFIXES)}
    except Exception:  # noqa: BLE001 - a domain whose weights cannot even be listed
        digests = {}
    what: dict[str, Any] = {"protocol": EVAL_PROTOCOL, "weights": digests}
    if posed:
        what["frame"] = FRAME_PROTOCOL
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


class Evaluator:
    """Scores reconstructions and runs edits on `domain`.

    metrics: name -> Metric; a metric whose `unavailable_reason(domain)` is not None goes to `unavailable`
    (name -> reason) and is never computed. editors: name -> Editor; each direction of each editor is swept over
    `steps` on the splits in `edit_splits` (`editors_skipped`: the user asked for no editors). Problems that
    disable parts of the sweep are listed in `notes`.
    """

    def __init__(self, domain: Domain, metrics: Mapping[str, Metric], editors: Mapping[str, Editor],
                 steps: Sequence[float], edit_splits: Sequence[str], device: str | torch.device = "cpu",
                 editors_skipped: bool = False) -> None:
        self.domain = domain
        self.device = torch.device(device)
        self.posed = has_poses(domain)
        self.fingerprint = domain_fingerprint(domain, self.posed)
        self._frames: dict[str, Frame | None] = {}
        self.metrics: dict[str, Metric] = {}
        self.unavailable: dict[str, str] = {}
        self.models: dict[str, str] = {}  # metric -> the model it uses on this domain (Metric.model_for)
        for name, metric in metrics.items():
            reason = metric.unavailable_reason(domain)
            if reason is None:
                self.metrics[name] = metric
                model = getattr(metric, "model_for", lambda d: None)(domain)
                if model:
                    self.models[name] = " ".join(str(model).split())
            else:
                self.unavailable[name] = " ".join(str(reason).split())
        self.editors = dict(editors)
        self.steps = [float(s) for s in steps]
        self.edit_splits = list(edit_splits)
        self.notes: list[str] = []
        self._scorers: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None
        self._embedder: Embedder | None | bool = False  # False = not loaded yet
        self._regions: dict[str, torch.Tensor | None] = {}
        self.targets = self._edit_targets() if self.editors and self.steps else []
        if not self.editors:
            self.notes.append("editing sweep skipped (--editors none)" if editors_skipped
                              else "no editors registered: the editing sweep was skipped")

    # ------------------------------------------------------------------ lazily loaded domain models
    @property
    def scorers(self) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
        if self._scorers is None:
            try:
                self._scorers = dict(self.domain.attribute_scorers(self.device))
            except (ZooError, NotImplementedError) as exc:
                self._scorers = {}
                self.notes.append(f"attribute scorers of '{self.domain.name}' unavailable: {exc}")
            if not self._scorers:
                self.notes.append(f"domain '{self.domain.name}' has no attribute scorers: no attribute change")
        return self._scorers

    @property
    def embedder(self) -> Embedder | None:
        """images [B, 3, H, W] in [-1, 1] -> unit-norm identity embeddings [B, D]; None without identity model."""
        if self._embedder is False:
            try:
                model = self.domain.identity_model(self.device)
            except (ZooError, NotImplementedError) as exc:
                self._embedder = None
                self.notes.append(f"identity model of '{self.domain.name}' unavailable ({exc}): no ID kept")
            else:
                res = self.domain.resolution

                def embed(x: torch.Tensor) -> torch.Tensor:
                    x = x.to(self.device, torch.float32)
                    if x.shape[-1] != res or x.shape[-2] != res:
                        x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False,
                                          antialias=x.shape[-1] > res)
                    return F.normalize(model(x).float().flatten(1), dim=1)

                self._embedder = embed
        return self._embedder  # type: ignore[return-value]

    def region(self, direction: str) -> torch.Tensor | None:
        """The domain's 0/1 edited-region mask [H, W] for `direction` (cached), None when it has none."""
        if direction not in self._regions:
            fn = getattr(self.domain, "edit_region", None)
            mask = fn(direction, self.device) if callable(fn) else None
            self._regions[direction] = None if mask is None or float(mask.sum()) <= 0 else mask.float()
        return self._regions[direction]

    def _edit_targets(self) -> list[EditTarget]:
        out = []
        for name, editor in self.editors.items():
            try:
                directions = list(editor.directions(self.domain))
            except (ZooError, NotImplementedError) as exc:
                self.notes.append(f"editor '{name}' has no directions on '{self.domain.name}': {exc}")
                continue
            if not directions:
                self.notes.append(f"editor '{name}' has no directions on '{self.domain.name}'")
            version = editor_version(editor)
            for direction in directions:
                scorers = matching_scorers(direction, list(self.scorers))
                used = set(_scorers_used(editor, direction, self.domain)) & set(scorers)
                if used:
                    self.notes.append(f"{name} '{direction}' was chosen with the scorer(s) {', '.join(sorted(used))}: "
                                      "their attribute change along it is not an independent measure")
                out.extend(EditTarget(name, version, direction, s, scorers) for s in self.steps)
        return out

    # ------------------------------------------------------------------ the evaluation frame of a split
    def frame(self, split: str, n: int) -> Frame | None:
        """The unaligned frame of (at least) the first `n` images of `split`, or None when the split has no poses
        (then everything is evaluated on the images themselves). Loaded from the domain once per split and size.
        Raises ZooError when the domain's poses / unaligned images do not match its images."""
        if not self.posed or split not in self.domain.splits():
            return None
        have = self._frames.get(split)
        if split in self._frames and (have is None or len(have.poses) >= n):
            return have
        poses = self.domain.poses(split, limit=n)
        if poses is None:
            self._frames[split] = None
            return None
        images = self.domain.unaligned_images(split, limit=n)
        name = f"domain '{self.domain.name}', split '{split}'"
        if images is None:
            raise ZooError(f"{name}: poses are given but no unaligned images (Domain.unaligned_images)")
        poses = torch.as_tensor(poses, dtype=torch.float64).cpu()
        if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) < n or len(images) != len(poses):
            raise ZooError(f"{name}: poses {tuple(poses.shape)} and unaligned images {tuple(images.shape)} must be "
                           f"[N, 3] and [N, 3, H, W] with the same N >= {n}")
        self._frames[split] = Frame(poses, images.detach().to("cpu", torch.float32))
        return self._frames[split]

    def frame_keys(self, split: str, n: int) -> list[str | None]:
        """Per image of the first `n` of `split`: its unaligned-frame key (`Frame.key`, part of its work unit) or
        None when the split has no poses."""
        frame = self.frame(split, n) if n else None
        return [None] * n if frame is None else [frame.key(i) for i in range(n)]

    def metric_names(self, split: str) -> list[str]:
        """The score names a record of `split` gets: every available metric, and on a posed split also
        `aligned_<metric>` (the aligned-frame score)."""
        names = list(self.metrics)
        if self.posed and self.frame(split, 1) is not None:
            names += [ALIGNED_PREFIX + n for n in self.metrics]
        return names

    # ------------------------------------------------------------------ what is left to do for a record
    def edits_for(self, split: str) -> list[EditTarget]:
        return self.targets if split in self.edit_splits else []

    def missing(self, record: Mapping[str, Any] | None, split: str) -> tuple[list[str], list[EditTarget]]:
        """(score names, edit targets) that `record` lacks (everything when record is None)."""
        scores = (record or {}).get("scores", {})
        edits = (record or {}).get("edits", {})
        metrics = [n for n in self.metric_names(split)
                   if not _current(scores.get(n), str(self.metrics[n.removeprefix(ALIGNED_PREFIX)].version),
                                   self.fingerprint)]
        targets = [t for t in self.edits_for(split) if not _current(edits.get(t.key), None, self.fingerprint)]
        return metrics, targets

    # ------------------------------------------------------------------ computing
    @torch.no_grad()
    def score(self, recon: torch.Tensor, target: torch.Tensor, names: Sequence[str]) -> list[dict[str, Any]]:
        """Per-image score entries [{metric: {value, version, eval}}] for recon/target [B, 3, H, W] in [-1, 1]
        (recon is clamped to that range first)."""
        out: list[dict[str, Any]] = [{} for _ in range(len(recon))]
        recon = recon.clamp(-1, 1)
        for name in names:
            metric = self.metrics[name]
            values = metric.score(recon, target, self.domain).detach().float().cpu().reshape(-1)
            if values.numel() != len(recon):
                raise ZooError(f"metric '{name}' returned {values.numel()} scores for {len(recon)} images")
            for i, v in enumerate(values.tolist()):
                out[i][name] = {"value": finite_or_none(v), "version": str(metric.version), "eval": self.fingerprint}
        return out

    @torch.no_grad()
    def score_split(self, split: str, indices: Sequence[int], recon: torch.Tensor, images: torch.Tensor,
                    names: Sequence[str], aligned_recon: torch.Tensor | None = None) -> list[dict[str, Any]]:
        """Per-image score entries of images `indices` of `split` (see `score`).

        recon: what the user sees [B, 3, H, W] (on a posed split: the unaligned-frame rendering, scored against the
        unaligned images `frame(split).images[indices]` under the metric's name); images: the inverted inputs
        [B, 3, H, W] (on a posed split the aligned crops, scored against `aligned_recon` as `aligned_<metric>`).
        ZooError when a posed split's aligned scores are asked for without `aligned_recon`."""
        frame = self.frame(split, max(indices) + 1) if len(indices) else None
        plain = [n for n in names if not is_aligned_metric(n)]
        aligned = [n.removeprefix(ALIGNED_PREFIX) for n in names if is_aligned_metric(n)]
        target = images if frame is None else frame.images[list(indices)].to(recon.device)
        out = self.score(recon, target, plain) if plain else [{} for _ in range(len(recon))]
        if aligned and frame is not None:
            if aligned_recon is None:
                raise ZooError(f"aligned-frame scores of {self.domain.name}/{split} need the aligned reconstructions")
            for entry, extra in zip(out, self.score(aligned_recon, images, aligned)):
                entry.update({ALIGNED_PREFIX + k: v for k, v in extra.items()})
        return out

    @torch.no_grad()
    def edit(self, inversion: Inversion, base: torch.Tensor, targets: Sequence[EditTarget]) -> list[dict[str, Any]]:
        """Per-image edit entries [{target.key: {...}}] for the B images of `inversion`.

        base: the unedited reconstructions [B, 3, H, W]; the attribute change is scorer(edit) - scorer(base), the
        ID kept is the cosine of identity embeddings of edit and base (None without identity model), the image
        change is mean |edit - base| over pixels and channels (on [-1, 1] images: 0 = unchanged, at most 2) and the
        region change the same mean inside the domain's edited region of the direction (None without one). Each
        attribute entry says whether its scorer is independent of the direction (`Editor.scorers_used`).

        An inversion with a user transform (a posed split: `inversion.transform`, base in the unaligned frame) is
        edited in the unaligned frame, so scorers and the identity model see the frame of the domain's renders; the
        region change is then measured in the aligned frame, where `Domain.edit_region` is defined (the frame of
        `Domain.images`): the same edit rendered without the transform, against the aligned rendering.
        """
        out: list[dict[str, Any]] = [{} for _ in range(len(base))]
        if not targets:
            return out
        scorers = self.scorers
        base = base.clamp(-1, 1)
        needed = sorted({s for t in targets for s in t.scorers})
        base_attr = {s: _scores(scorers[s], base) for s in needed}
        embed = self.embedder
        base_emb = embed(base) if embed is not None else None
        plain = None if inversion.transform is None else dataclasses.replace(inversion, transform=None)
        plain_base: torch.Tensor | None = None
        for t in targets:
            edited = self.editors[t.editor].edit(inversion, t.direction, t.step).detach().float().clamp(-1, 1)
            ids = (embed(edited) * base_emb).sum(1).cpu().tolist() if embed is not None else [None] * len(base)
            diff = (edited - base.to(edited)).abs().mean(1)  # [B, H, W]
            change = diff.mean((1, 2)).cpu().tolist()
            region = self.region(t.direction)
            if region is not None and plain is not None:  # the region lives in the aligned frame
                if plain_base is None:
                    plain_base = plain.render().detach().float().clamp(-1, 1)
                edited_plain = self.editors[t.editor].edit(plain, t.direction, t.step).detach().float().clamp(-1, 1)
                region_diff = (edited_plain - plain_base.to(edited_plain)).abs().mean(1)
            else:
                region_diff = diff
            if region is not None and region.shape == region_diff.shape[1:]:
                in_region = ((region_diff * region.to(region_diff)).sum((1, 2)) / region.sum()).cpu().tolist()
            else:
                in_region = [None] * len(base)
            used = set(_scorers_used(self.editors[t.editor], t.direction, self.domain))
            attrs = {s: _scores(scorers[s], edited) for s in t.scorers}
            for i in range(len(base)):
                out[i][t.key] = {
                    **asdict(t), "scorers": list(t.scorers), "eval": self.fingerprint,
                    "id": None if ids[i] is None else finite_or_none(ids[i]), "change": finite_or_none(change[i]),
                    "change_region": None if in_region[i] is None else finite_or_none(in_region[i]),
                    "attributes": {s: {"base": finite_or_none(base_attr[s][i]), "edited": finite_or_none(v[i]),
                                       "delta": finite_or_none(v[i] - base_attr[s][i]), "independent": s not in used}
                                   for s, v in attrs.items()},
                }
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-able description of what this evaluator computes (goes into the results file)."""
        return {"domain": self.domain.name, "eval_fingerprint": self.fingerprint,
                "frame": ({s: "unaligned" if f is not None else "as given" for s, f in self._frames.items()}
                          if self.posed else {}),
                "metrics": {n: str(m.version) for n, m in self.metrics.items()},
                "unavailable": dict(self.unavailable), "metric_models": dict(self.models), "steps": self.steps,
                "edit_splits": self.edit_splits,
                "edits": sorted({(t.editor, t.direction, t.scorers) for t in self.targets}),
                "notes": list(dict.fromkeys(self.notes))}


def _current(entry: Any, version: str | None, fingerprint: str) -> bool:
    if not isinstance(entry, dict) or entry.get("eval") != fingerprint:
        return False
    return version is None or entry.get("version") == version


def _scorers_used(editor: Editor, direction: str, domain: Domain) -> tuple[str, ...]:
    fn = getattr(editor, "scorers_used", None)  # editors written before the method existed
    return tuple(fn(direction, domain)) if callable(fn) else ()


def _scores(scorer: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> list[float]:
    return scorer(images).detach().float().cpu().reshape(len(images), -1).mean(1).tolist()
