"""`Evaluator`: per-image reconstruction metrics and the editing sweep of one domain.

Everything is computed per image so that results do not depend on how images were batched. Metric scores are
computed on the reconstruction rounded to float16 (the precision kept in the cache), so a score computed now and
one recomputed later from the cache agree exactly.
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


def domain_fingerprint(domain: Domain) -> str:
    """Short sha256 of the digests of the domain's evaluation weights (generator, identity, attribute scorers,
    directions: a change re-scores everything); inverter weights (`encoder/...`) are left out, so retraining one
    encoder re-runs only that method's units."""
    try:
        digests = {role: spec.sha256 for role, spec in domain.weights.items()
                   if not role.startswith(METHOD_ROLE_PREFIXES)}
    except Exception:  # noqa: BLE001 - a domain whose weights cannot even be listed
        digests = {}
    return hashlib.sha256(json.dumps({"protocol": EVAL_PROTOCOL, "weights": digests},
                                     sort_keys=True).encode()).hexdigest()[:16]


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
        self.fingerprint = domain_fingerprint(domain)
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

    # ------------------------------------------------------------------ what is left to do for a record
    def edits_for(self, split: str) -> list[EditTarget]:
        return self.targets if split in self.edit_splits else []

    def missing(self, record: Mapping[str, Any] | None, split: str) -> tuple[list[str], list[EditTarget]]:
        """(metric names, edit targets) that `record` lacks (everything when record is None)."""
        scores = (record or {}).get("scores", {})
        edits = (record or {}).get("edits", {})
        metrics = [n for n, m in self.metrics.items()
                   if not _current(scores.get(n), str(m.version), self.fingerprint)]
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
    def edit(self, inversion: Inversion, base: torch.Tensor, targets: Sequence[EditTarget]) -> list[dict[str, Any]]:
        """Per-image edit entries [{target.key: {...}}] for the B images of `inversion`.

        base: the unedited reconstructions [B, 3, H, W]; the attribute change is scorer(edit) - scorer(base), the
        ID kept is the cosine of identity embeddings of edit and base (None without identity model), the image
        change is mean |edit - base| over pixels and channels (on [-1, 1] images: 0 = unchanged, at most 2) and the
        region change the same mean inside the domain's edited region of the direction (None without one). Each
        attribute entry says whether its scorer is independent of the direction (`Editor.scorers_used`).
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
        for t in targets:
            edited = self.editors[t.editor].edit(inversion, t.direction, t.step).detach().float().clamp(-1, 1)
            ids = (embed(edited) * base_emb).sum(1).cpu().tolist() if embed is not None else [None] * len(base)
            diff = (edited - base.to(edited)).abs().mean(1)  # [B, H, W]
            change = diff.mean((1, 2)).cpu().tolist()
            region = self.region(t.direction)
            if region is not None and region.shape == diff.shape[1:]:
                in_region = ((diff * region.to(diff)).sum((1, 2)) / region.sum()).cpu().tolist()
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
