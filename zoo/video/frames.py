"""Per-frame inversion of a clip with any registered inverter, batched over frames, each frame's whole inversion
saved as soon as its batch is done (`Inversion.save`, one `<frame>.inversion.safetensors` per frame) and reused by a
resumed run when it matches (frame sha256, method, method version, options)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..inversion import DecoderInversion, Inversion, TunedWeights, WeightOffsets, read_inversion_metadata

if TYPE_CHECKING:
    from ..domain import Domain
    from ..inverter import Inverter
    from ..io import OutputGuard
    from .clip import Clip


def frame_file(folder: Path, name: str) -> Path:
    """Where frame `name`'s inversion is saved."""
    from ..io import base_name, inversion_file_name

    return folder / inversion_file_name(base_name(name))


def is_reusable(path: Path, sha: str, method: str, options: dict[str, Any], version: str) -> bool:
    """Whether the saved inversion at `path` is this frame's with this method, version and options."""
    if not path.is_file():
        return False
    try:
        meta = read_inversion_metadata(path)
    except Exception:  # noqa: BLE001 - damaged files are simply inverted again
        return False
    sources = meta.get("sources") or [{}]
    return (meta.get("method") == method and meta.get("options") == options
            and (meta.get("provenance") or {}).get("method_version") == version
            and sources[0].get("image_sha256") == sha)


def invert_frames(inverter: Inverter, domain: Domain, clip: Clip, folder: Path, *, batch_size: int, resume: bool,
                  guard: OutputGuard | None = None, progress: bool = False,
                  on_batch: Callable[[int, int], None] | None = None, frames: torch.Tensor | None = None
                  ) -> tuple[Inversion, dict[str, int]]:
    """Invert every frame of `clip` (batches of `batch_size` frames at fixed positions, so a resumed run inverts the
    same batches; torch seed 0 per batch as `zoo invert`), saving each frame into `folder`.

    resume: reuse matching saved frames (`is_reusable`); other existing frame files are replaced.
    Returns (the clip's inversion: all frames, loaded back from the saved files so a resumed and an uninterrupted run
    render alike; latents [T, n_styles, D], reconstructions [T, 3, H, W]), {"inverted": n, "resumed": n}).
    on_batch(done, total) is called after every saved batch. frames: what to invert instead of clip.frames (e.g. the
    aligned frames [T, 3, H, W])."""
    from .. import __version__
    from ..bench.units import image_sha256, resolved_options
    from ..io.manifest import now

    method = inverter.name
    opts = resolved_options(inverter)
    version = str(inverter.version)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [frame_file(folder, n) for n in clip.frame_names]
    frames = clip.frames if frames is None else frames
    shas = [image_sha256(f) for f in frames]
    todo = [i for i in range(len(clip)) if not (resume and is_reusable(paths[i], shas[i], method, opts, version))]
    stats = {"inverted": len(todo), "resumed": len(clip) - len(todo)}
    provenance = {"method_version": version, "weights_sha256": inverter.weights_sha256(domain),
                  "zoo_version": __version__, "torch_version": torch.__version__, "device": str(inverter.device)}
    blocks: dict[int, list[int]] = {}
    for i in todo:
        blocks.setdefault(i // batch_size, []).append(i)
    done = stats["resumed"]
    for idx in blocks.values():
        x = frames[idx].to(inverter.device)
        torch.manual_seed(0)
        inv = inverter.invert(x, domain, progress=progress)
        inv.domain = inv.domain or domain
        for j, i in enumerate(idx):
            one = inv.select([j])
            one.method = one.method or method
            one.options, one.images = dict(opts), x[j : j + 1]
            one.provenance = dict(provenance, created_at=now())
            one.sources = [{"name": clip.frame_names[i], "clip": clip.source, "frame": i, "image_sha256": shas[i]}]
            if guard is not None:
                guard.check(paths[i])
            one.save(paths[i])
        done += len(idx)
        if on_batch is not None:
            on_batch(done, len(clip))
    loaded = [Inversion.load(p, domain=domain, device=inverter.device) for p in paths]
    return concat_inversions(loaded), stats


def concat_inversions(parts: list[Inversion]) -> Inversion:
    """One Inversion of all images of `parts` (same method and domain): latents, reconstructions, seconds, images,
    noise and the generator change concatenated in order; per-image extras are dropped."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    changes = [p.change for p in parts]
    change: Any = None
    if all(isinstance(c, TunedWeights) for c in changes):
        change = TunedWeights([d for c in changes for d in c.deltas])
    elif all(isinstance(c, WeightOffsets) for c in changes):
        slots = len(changes[0].deltas)
        change = WeightOffsets([None if changes[0].deltas[k] is None else torch.cat([c.deltas[k] for c in changes])
                                for k in range(slots)])
    elif any(c is not None for c in changes):
        raise ValueError("cannot concatenate inversions with different kinds of generator change")
    noise = None
    if all(p.noise is not None for p in parts):
        noise = [torch.cat([p.noise[k] for p in parts]) for k in range(len(first.noise))]
    images = torch.cat([p.images for p in parts]) if all(p.images is not None for p in parts) else None
    common = dict(latents=torch.cat([p.latents for p in parts]),
                  reconstructions=torch.cat([p.reconstructions for p in parts]),
                  seconds=torch.cat([p.seconds for p in parts]), change=change, noise=noise, method=first.method,
                  domain=first.domain, options=dict(first.options), sources=[s for p in parts for s in p.sources],
                  images=images, provenance=dict(first.provenance))
    if isinstance(first, DecoderInversion):
        return DecoderInversion(**common, decoder=first.decoder, out_size=first.out_size)
    return Inversion(**common)
