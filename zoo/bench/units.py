"""Work units: one (method, image) pair each, keyed by a sha256, executable anywhere with `run_units`.

A unit names everything its result depends on: method name and version, resolved options, weights sha256s,
domain, split, image index and image sha256, and on a split with poses (StyleGAN3 domains) its unaligned frame
(`frame`: digest of the pose and the unaligned image; the record is then scored in that frame, `evaluate.Frame`).
`run_units` computes (or loads from the cache) one record per unit: per-image time, metric scores and edit results,
with the reconstruction (float16) and latents in a tensor file.
Units are batched in fixed blocks of image indices (`block_groups`: same split, same `index // batch_size`), so a
record never depends on which other units happened to be pending: a resumed or distributed run computes exactly the
batches of an uninterrupted one. An executor (a process pool, a cluster) may split a unit list between blocks,
never inside one; `execute_units` rebuilds inverters, domains, metrics and editors from names for such executors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ZooError
from ..inversion import Inversion
from ..progress import step_bars, units_bar
from .evaluate import Evaluator, round_fp16

if TYPE_CHECKING:
    from ..domain import Domain
    from ..inverter import Inverter
    from .cache import ResultCache


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces, tuples as lists) used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def image_sha256(image: torch.Tensor) -> str:
    """sha256 of an image [3, H, W] (its shape and float32 bytes)."""
    x = image.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(repr(tuple(x.shape)).encode())
    h.update(x.numpy().tobytes())
    return h.hexdigest()


def resolved_options(inverter: Inverter) -> dict[str, Any]:
    """The inverter's options as a JSON-able dict (tuples become lists)."""
    opts = inverter.options
    return json.loads(canonical_json(dataclasses.asdict(opts))) if dataclasses.is_dataclass(opts) else {}


@dataclass(frozen=True)
class WorkUnit:
    """One image to invert with one method. `source` (a file name for `--images` folders) is not in the key.
    `frame`: 'unaligned:<digest>' when the image is an aligned crop evaluated in its unaligned frame (in the key,
    so such records never mix with aligned-only ones), None otherwise (and then not in the key)."""

    method: str
    method_version: str
    options: dict[str, Any]
    weights: dict[str, str]
    domain: str
    split: str
    index: int
    image_sha256: str
    source: str | None = field(default=None, compare=False)
    frame: str | None = None

    def identity(self) -> dict[str, Any]:
        out = {"method": self.method, "method_version": self.method_version, "options": self.options,
               "weights": self.weights, "domain": self.domain, "split": self.split, "index": self.index,
               "image_sha256": self.image_sha256}
        if self.frame is not None:
            out["frame"] = self.frame
        return out

    @cached_property
    def key(self) -> str:
        """sha256 hex digest of the canonical JSON of `identity()`."""
        return hashlib.sha256(canonical_json(self.identity()).encode()).hexdigest()

    def __hash__(self) -> int:
        return hash(self.key)

    def to_dict(self) -> dict[str, Any]:
        return {**self.identity(), "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WorkUnit:
        return cls(**{f.name: d.get(f.name) for f in dataclasses.fields(cls)})


def make_units(inverter: Inverter, domain: Domain, split: str, images: torch.Tensor,
               weights: dict[str, str] | None = None, sources: Sequence[str] | None = None,
               frames: Sequence[str | None] | None = None) -> list[WorkUnit]:
    """One unit per image of `images` [N, 3, H, W] (index i = position in the split); `frames`: per image its
    unaligned-frame key (`Evaluator.frame_keys`) or None."""
    weights = dict(weights if weights is not None else inverter.weights_sha256(domain))
    options = resolved_options(inverter)
    return [WorkUnit(inverter.name, str(inverter.version), options, weights, domain.name, split, i,
                     image_sha256(images[i]), None if sources is None else sources[i],
                     None if frames is None else frames[i]) for i in range(len(images))]


def is_batchable(inverter: Inverter) -> bool:
    """Whether `invert` may get several images at once: `batchable` if the class sets it, else encoders only."""
    flag = getattr(inverter, "batchable", None)
    return bool(flag) if flag is not None else inverter.kind == "encoder"


def unit_seed(seed: int, key: str) -> int:
    """Per-batch torch seed derived from the run seed and the first unit's key."""
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:15], 16)


def run_units(units: Sequence[WorkUnit], inverter: Inverter, evaluator: Evaluator, *,
              images: torch.Tensor | None = None, cache: ResultCache | None = None, batch_size: int = 1,
              seed: int = 0, progress: bool | None = None, desc: str | None = None) -> list[dict[str, Any]]:
    """Compute (or load) the record of every unit, in unit order.

    images: [N, 3, H, W] in [-1, 1] aligned with `units` (None: loaded from the domain / files and checked
    against the units' sha256). Cached records are reused; a record that lacks metrics is completed from its
    stored reconstruction, one that lacks edits from its stored latents when the inversion left the generator
    unchanged, and anything else is inverted again. Each record is saved as soon as its batch is done.
    Units with a `frame` are put into their unaligned frame (`Inversion.with_transform` with the split's poses)
    before scoring and editing; their records keep both reconstructions (`reconstruction`: unaligned,
    `aligned_reconstruction`).

    Batches are fixed blocks of image indices (`block_of`: split and index // batch size), never "the next
    pending units": a run resumed after a crash recomputes whole blocks exactly as an uninterrupted run does,
    so float reductions that depend on the batch give bit-identical records either way.
    """
    domain = evaluator.domain
    if images is None:
        images = load_unit_images(units, domain)
    if len(images) != len(units):
        raise ValueError(f"{len(units)} units but {len(images)} images")
    bs = max(1, batch_size) if is_batchable(inverter) else 1
    records: list[dict[str, Any] | None] = [None] * len(units)
    cached: dict[int, dict[str, Any]] = {}
    status: dict[int, str] = {}  # "done" | "patch" | "full"
    for i, unit in enumerate(units):
        rec = cache.load(unit.key) if cache is not None else None
        metrics, edits = evaluator.missing(rec, unit.split)
        if rec is not None:
            cached[i] = rec
        if rec is not None and not metrics and not edits:
            status[i] = "done"
        elif rec is not None and cache is not None and (not edits or rec.get("renderable")) \
                and cache.tensor_path(unit.key).exists():
            status[i] = "patch"
        else:
            status[i] = "full"
    blocks = block_groups(units, bs)
    todo = [b for b in blocks if any(status[i] != "done" for i in b)]
    from .embeddings import embedding_source  # `refiner@embedder`: one embedding per image, shared (embeddings.py)

    embeddings = embedding_source(inverter, domain, units, images, cache, batch_size, seed) if todo else None
    for i in (i for b in blocks if all(status[j] == "done" for j in b) for i in b):
        records[i] = cached[i]
    with units_bar(sum(len(b) for b in todo), len(units), desc or f"{inverter.name}/{domain.name}",
                   progress) as bar:
        for block in todo:
            tensors = {} if cache is None else {i: cache.load_tensors(units[i].key) for i in block}
            if any(status[i] == "full" or (t := tensors.get(i)) is None
                   or (units[i].frame is not None and "aligned_reconstruction" not in t) for i in block):
                _invert_block(block, units, images, inverter, evaluator, cache, seed, cached, status, records,
                              embeddings)
            else:
                _patch_block(block, units, images, inverter, evaluator, cache, cached, tensors, records)
            bar.update(len(block))
    return records  # type: ignore[return-value]


def block_groups(units: Sequence[WorkUnit], size: int) -> list[list[int]]:
    """Positions of `units` grouped into fixed blocks (same split, same `index // size`), in first-seen order."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, u in enumerate(units):
        groups.setdefault((u.split, u.index // size), []).append(i)
    return list(groups.values())


def _invert_block(block: list[int], units: Sequence[WorkUnit], images: torch.Tensor, inverter: Inverter,
                  evaluator: Evaluator, cache: ResultCache | None, seed: int, cached: dict[int, dict[str, Any]],
                  status: dict[int, str], records: list[dict[str, Any] | None], embeddings: Any = None) -> None:
    """Invert a whole block (its finished members too, so the batch is the same as in an uninterrupted run). A
    composition refines the block's shared embeddings (`embeddings`, an EmbeddingSource) instead of embedding again."""
    domain = evaluator.domain
    x = images[block]
    embedding = embeddings.get(block) if embeddings is not None else None
    torch.manual_seed(unit_seed(seed, units[block[0]].key))
    if embedding is None:
        inv = inverter.invert(x, domain, progress=step_bars())  # per-step bars only on a terminal
    else:
        inv = inverter.refine(embedding, x, domain, progress=step_bars())
    inv.domain = inv.domain or domain
    split, indices = units[block[0]].split, [units[i].index for i in block]
    aligned = round_fp16(inv.reconstructions.float())
    frame = _unit_frame(evaluator, units, block)
    if frame is not None:  # the aligned crop's inversion rendered where the face was (stylegan3-editing's output)
        inv = inv.with_transform(frame.pose(indices))
    recon = round_fp16(inv.reconstructions.float())
    scores = evaluator.score_split(split, indices, recon, x, evaluator.metric_names(split), aligned_recon=aligned)
    edits = evaluator.edit(inv, recon, evaluator.edits_for(split))
    renderable = inv.change is None and inv.noise is None
    for j, i in enumerate(block):
        if status[i] == "done":  # keep the finished record (and its measured time) as it was
            records[i] = cached[i]
            continue
        rec = {"unit": units[i].to_dict(), "seconds": float(inv.seconds[j]), "batch_size": len(block),
               "device": str(inverter.device), "threads": torch.get_num_threads(), "host": platform.node(),
               "renderable": renderable,
               "latent_shape": list(inv.latents.shape[1:]), "scores": scores[j], "edits": edits[j],
               "created_at": _now()}
        tensors = {"reconstruction": recon[j].to(torch.float16), "latents": inv.latents[j].float()}
        if frame is not None:
            rec.update(frame="unaligned", pose=[float(v) for v in frame.poses[units[i].index]],
                       target_sha256=image_sha256(frame.images[units[i].index]))
            tensors["aligned_reconstruction"] = aligned[j].to(torch.float16)
        _save(cache, units[i], rec, tensors)
        records[i] = rec


def _patch_block(block: list[int], units: Sequence[WorkUnit], images: torch.Tensor, inverter: Inverter,
                 evaluator: Evaluator, cache: ResultCache | None, cached: dict[int, dict[str, Any]],
                 tensors: dict[int, dict[str, torch.Tensor] | None], records: list[dict[str, Any] | None]) -> None:
    """Complete missing metrics / edits of a block from its stored reconstructions and latents (whole block)."""
    domain = evaluator.domain
    recs = [cached[i] for i in block]
    split, indices = units[block[0]].split, [units[i].index for i in block]
    recon = torch.stack([tensors[i]["reconstruction"].float() for i in block])  # type: ignore[index]
    frame = _unit_frame(evaluator, units, block)
    aligned = (torch.stack([tensors[i]["aligned_reconstruction"].float() for i in block])  # type: ignore[index]
               if frame is not None else recon)
    metrics = sorted({m for r, i in zip(recs, block) for m in evaluator.missing(r, units[i].split)[0]})
    scores = (evaluator.score_split(split, indices, recon, images[block], metrics, aligned_recon=aligned)
              if metrics else [{} for _ in block])
    targets: list[Any] = []
    for r, i in zip(recs, block):
        targets += [t for t in evaluator.missing(r, units[i].split)[1] if t not in targets]
    edits: list[dict[str, Any]] = [{} for _ in block]
    if targets:
        latents = torch.stack([tensors[i]["latents"].float() for i in block])  # type: ignore[index]
        transform = None
        if frame is not None:
            from ..stylegan3.transforms import as_generator_transform

            transform = as_generator_transform(frame.pose(indices), device=latents.device)
        inv = Inversion(latents, recon, torch.tensor([r["seconds"] for r in recs]), domain=domain,
                        method=inverter.name, transform=transform)
        edits = evaluator.edit(inv, recon, targets)
    for j, i in enumerate(block):
        missing_m, missing_e = evaluator.missing(recs[j], units[i].split)
        if not missing_m and not missing_e:
            records[i] = recs[j]
            continue
        rec = dict(recs[j], scores={**recs[j].get("scores", {}), **scores[j]},
                   edits={**recs[j].get("edits", {}), **edits[j]}, updated_at=_now())
        _save(cache, units[i], rec, None)
        records[i] = rec


def _unit_frame(evaluator: Evaluator, units: Sequence[WorkUnit], block: list[int]) -> Any:
    """The unaligned frame (`evaluate.Frame`) of a block's split when its units carry one, else None. ZooError when
    the units were planned in another frame than the domain now gives (poses or unaligned images changed)."""
    if all(units[i].frame is None for i in block):
        return None
    u0 = units[block[0]]
    frame = evaluator.frame(u0.split, 1 + max(units[i].index for i in block))
    for i in block:
        if frame is None or frame.key(units[i].index) != units[i].frame:
            raise ZooError(f"the unaligned frame of {u0.domain}/{u0.split}[{units[i].index}] differs from the one "
                           "the unit was planned with: the domain's poses or unaligned images changed")
    return frame


def _save(cache: ResultCache | None, unit: WorkUnit, rec: dict[str, Any], tensors: dict | None) -> None:
    if cache is None:
        rec.update(key=unit.key)
        return
    if tensors is None:  # keep the committed tensor file and its digest
        cache.save(unit.key, {k: v for k, v in rec.items() if k not in ("schema", "key")})
    else:
        cache.save(unit.key, rec, tensors)
    rec.update(key=unit.key)


def _disabled(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------- executors
def load_unit_images(units: Sequence[WorkUnit], domain: Domain) -> torch.Tensor:
    """The images of `units` [N, 3, H, W] from the domain's splits (or the units' source files), sha256-checked."""
    from .inputs import load_image_file

    out = []
    cache: dict[str, torch.Tensor] = {}
    for u in units:
        if u.source is not None:
            source, note = domain.prepare_input(Path(u.source))
            if source is None:
                raise ZooError(f"{u.source}: {note}")
            img = load_image_file(source, domain.resolution, domain.resample)[0]
        else:
            if u.split not in cache:
                n = 1 + max(v.index for v in units if v.split == u.split)
                cache[u.split] = domain.images(u.split, limit=n)
            img = cache[u.split][u.index]
        if image_sha256(img) != u.image_sha256:
            raise ZooError(f"image {u.split}[{u.index}] of domain '{u.domain}' differs from the one the unit was "
                           "made for (sha256 mismatch): the data changed since the units were planned")
        out.append(img)
    return torch.stack(out) if out else torch.empty(0, 3, domain.resolution, domain.resolution)


def execute_units(units: Sequence[WorkUnit], *, metrics: Sequence[str], editors: Sequence[str] = (),
                  steps: Sequence[float] = (), edit_splits: Sequence[str] = ("test",), device: str = "cpu",
                  cache: ResultCache | None = None, batch_size: int = 8, seed: int = 0,
                  progress: bool | None = None) -> list[dict[str, Any]]:
    """Run units given only their descriptions (for other executors): build everything from the registries.

    Units are grouped by (method, options, domain); the method's version and weights must match the units'.
    """
    from .. import registry

    records: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[WorkUnit]] = {}
    for u in units:
        groups.setdefault(canonical_json([u.method, u.options, u.domain]), []).append(u)
    for group in groups.values():
        u0 = group[0]
        domain = registry.get_domain(u0.domain)
        inverter = registry.create_inverter(u0.method, dict(u0.options), device=device)
        if str(inverter.version) != u0.method_version or inverter.weights_sha256(domain) != u0.weights:
            raise ZooError(f"'{u0.method}' here (version {inverter.version}) is not the one the units were "
                           f"planned with (version {u0.method_version} / other weights)")
        evaluator = Evaluator(domain, {m: registry.create_metric(m, device=device) for m in metrics},
                              {e: registry.create_editor(e) for e in editors}, steps, edit_splits, device)
        inverter.prepare(domain)
        for u, rec in zip(group, run_units(group, inverter, evaluator, cache=cache, batch_size=batch_size,
                                           seed=seed, progress=progress)):
            records[u.key] = rec
    return [records[u.key] for u in units]
