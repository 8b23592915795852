"""Video PTI: tune ONE generator on all frames of a clip from their latents (the pivots), as stylegan3-editing's
`inversion/video/run_pti_video.py:VideoPTI` does (anchors-wave2 §2.6).

Official settings: dataset = (frame, its latent, its transform), shuffled, batch 4; Adam lr 3e-4 on the synthesis
parameters except the Fourier-feature input layer (`synthesis.parameters()[3:]`: input.weight, input.affine.weight
and .bias frozen; the mapping is never tuned); loss = MSE (lambda 1) + LPIPS-Alex (lambda 1); `steps` 350 (8000 in
the paper setting); checkpoints every `model_save_interval`. The losses and their weights come from the image PTI
plugin (`zoo_optim.pti.PTITuneOptions` defaults, `zoo_optim._common.Perceptual` = the same LPIPS-Alex with cached
target features at the same working size).

Differences, all stated: (1) the official LPIPS-threshold `break` leaves only the inner epoch loop without advancing
the step counter, so it skips the rest of the epoch (and never ends if every epoch's first batch is under the
threshold); here a batch whose mean LPIPS is <= `lpips_threshold` stops the tuning, as image PTI does. (2) On a
StyleGAN2 generator (no Fourier input) `freeze="auto"` freezes nothing but the mapping; `freeze="input"` freezes the
constant input (`input.input`), the closest analogue. (3) Frames are rendered with the generator's fixed noise
buffers (StyleGAN2), as the image PTI plugin does. On StyleGAN3 (`zoo.stylegan3`) `freeze="auto"` freezes
`synthesis.input.*` (= the generator's `tuning_parameters()` complement) and each batch's inverse transforms are
passed to the generator (`transforms`), so the unaligned frames are fitted as in the official code.

Resumable: `tune_video` writes a checkpoint (step, tuned-minus-original deltas, Adam state, data-order RNG state) to
`checkpoint` every `save_every` steps and at the end, and continues from it when the options, generator and pivots
match.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..errors import InputError
from .transforms import has_fourier_input, require_fourier_input

if TYPE_CHECKING:
    from ..stylegan2 import Generator

MAPPING_PREFIXES = ("style.", "mapping.")  # StyleGAN2 (rosinality) / StyleGAN3 (NVlabs) mapping networks
CHECKPOINT_FORMAT = "zoo.video_pti_checkpoint"


def _pti_default(name: str) -> Any:
    """A default of the image PTI plugin's tuning options (the same loss weights, lr and LPIPS settings)."""
    from zoo_optim.pti import PTITuneOptions

    return next(f.default for f in fields(PTITuneOptions) if f.name == name)


@dataclass(frozen=True)
class VideoPTIOptions:
    """Options of video PTI (defaults: stylegan3-editing's `VideoPTI`, losses as the image PTI plugin)."""

    steps: int = field(default=350, metadata={"help": "tuning steps (official default 350; paper setting 8000)"})
    batch: int = field(default=4, metadata={"help": "frames per step (official 4)"})
    lr: float = field(default_factory=lambda: _pti_default("lr"), metadata={"help": "Adam lr (3e-4)"})
    l2_weight: float = field(default_factory=lambda: _pti_default("l2_weight"), metadata={"help": "MSE weight"})
    lpips_weight: float = field(default_factory=lambda: _pti_default("lpips_weight"),
                                metadata={"help": "LPIPS-Alex weight"})
    lpips_threshold: float = field(default_factory=lambda: _pti_default("lpips_threshold"), metadata={
        "help": "stop once a batch's mean LPIPS <= this (<= 0: never)"})
    lpips_size: int | None = field(default=None, metadata={
        "help": "LPIPS input size (None: as image PTI, generator size if >= 256 else 256; 0: no resize)"})
    freeze: str = field(default="auto", metadata={
        "help": "auto (SG3: the Fourier input layer, official; SG2: nothing), none, input, or comma-separated "
                "parameter-name prefixes; the mapping is never tuned"})
    seed: int = field(default=0, metadata={"help": "seed of the frame order"})
    save_every: int = field(default=50, metadata={"help": "checkpoint interval in steps"})

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1 or self.save_every < 1:
            raise InputError(f"video PTI needs steps >= 0, batch >= 1 and save_every >= 1 (got steps={self.steps}, "
                             f"batch={self.batch}, save_every={self.save_every})")


@dataclass
class VideoPTIResult:
    """deltas: tuned - original per tuned parameter name (only those that changed); steps: the step counter reached
    (resumed steps included); seconds: wall
    time of this call; final_lpips: mean LPIPS of the last batch (nan without LPIPS); stopped_early: threshold hit;
    resumed_from: the checkpoint step continued from (0 = fresh); frozen / tuned: parameter names."""

    deltas: dict[str, torch.Tensor]
    steps: int
    seconds: float
    final_lpips: float
    stopped_early: bool
    resumed_from: int
    frozen: list[str]
    tuned: list[str]


def trainable_names(generator: torch.nn.Module, freeze: str) -> tuple[list[str], list[str]]:
    """(tuned, frozen) parameter names for `freeze` (see VideoPTIOptions.freeze). InputError for a prefix that
    matches no parameter."""
    names = [n for n, _ in generator.named_parameters()]
    synthesis = [n for n in names if not n.startswith(MAPPING_PREFIXES)]
    fourier = has_fourier_input(generator)
    spec = freeze.strip()
    if spec == "auto":
        spec = "input" if fourier else "none"
    if spec == "none":
        prefixes: list[str] = []
    elif spec == "input":
        prefixes = ["synthesis.input."] if fourier else ["input."]
    else:
        prefixes = [p.strip() for p in spec.split(",") if p.strip()]
    for p in prefixes:
        if not any(n.startswith(p) for n in synthesis):
            raise InputError(f"video PTI freeze={freeze}: no synthesis parameter starts with '{p}' (e.g. "
                             f"{', '.join(synthesis[:3])})")
    frozen = [n for n in synthesis if any(n.startswith(p) for p in prefixes)]
    tuned = [n for n in synthesis if n not in frozen]
    return tuned, frozen + [n for n in names if n.startswith(MAPPING_PREFIXES)]


def render_tuned(generator: Generator, latents: torch.Tensor, deltas: dict[str, torch.Tensor] | None = None,
                 style_offsets: Any = None, transforms: torch.Tensor | None = None) -> torch.Tensor:
    """Render W+ latents [T, L, D] (fixed noise) through the generator with `deltas` added to its parameters:
    images [T, 3, H, W]. transforms: per-frame inverse transforms [T, 3, 3] (StyleGAN3 only: unaligned frames);
    InputError when given for a generator without a Fourier input."""
    params = dict(generator.named_parameters())
    if deltas:
        params = {k: (v + deltas[k].to(v)) if k in deltas else v for k, v in params.items()}
    kwargs: dict[str, Any] = dict(input_is_latent=True, randomize_noise=False, style_offsets=style_offsets)
    if transforms is not None:
        require_fourier_input(generator, "rendering frames with their transforms", "this")
        kwargs["transform"] = transforms.to(generator.device, torch.float32)
    img, _ = functional_call(generator, params, ([latents.to(generator.device)],), kwargs, strict=False)
    return img


def fingerprint(generator: torch.nn.Module, latents: torch.Tensor, frames: torch.Tensor) -> str:
    """sha256 (16 hex) of the generator's parameters, the pivots and the target frames (what a checkpoint is of)."""
    h = hashlib.sha256()
    for n, p in generator.named_parameters():
        h.update(n.encode())
        h.update(p.detach().cpu().float().contiguous().numpy().tobytes())
    for t in (latents, frames):
        h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def tune_video(generator: Generator, latents: torch.Tensor, frames: torch.Tensor, options: VideoPTIOptions, *,
               transforms: torch.Tensor | None = None, checkpoint: Path | None = None, resume: bool = False,
               on_step: Callable[[int, int, float], None] | None = None) -> VideoPTIResult:
    """Tune `generator` (left unchanged: a functional copy of its parameters is optimised) so that the pivots
    `latents` [T, L, D] render the target `frames` [T, 3, H, W] in [-1, 1].

    transforms: per-frame inverse transforms [T, 3, 3] written with each batch (StyleGAN3: the unaligned frames are
    the targets, as the official VideoPTI does); None: the generator's own (aligned).
    checkpoint: file for resumable checkpoints (None: no checkpoints); resume: continue from it when it matches
    (same options, generator, pivots and frames), else InputError naming the file. on_step(step, steps, loss) after
    each step. Returns VideoPTIResult (deltas of the tuned parameters; frozen ones never appear)."""
    from zoo_optim._common import Perceptual, lpips_network, resolve_lpips_size

    o = options
    if transforms is not None:
        require_fourier_input(generator, "video PTI with per-frame transforms", "this")
        transforms = transforms.detach().to(generator.device, torch.float32)
    if latents.shape[0] != frames.shape[0]:
        raise ValueError(f"{latents.shape[0]} pivots for {frames.shape[0]} frames")
    start_time = time.perf_counter()
    device = generator.device
    latents, frames = latents.detach().to(device), frames.detach().to(device)
    tuned_names, frozen = trainable_names(generator, o.freeze)
    orig = dict(generator.named_parameters())
    params = {k: v.detach().clone().requires_grad_(k in tuned_names) for k, v in orig.items()}
    opt = torch.optim.Adam([params[k] for k in tuned_names], lr=o.lr)
    order = torch.Generator().manual_seed(o.seed)
    use_lpips = o.lpips_weight > 0 or o.lpips_threshold > 0
    perc = Perceptual(lpips_network(device), resolve_lpips_size(o.lpips_size, generator.size, official_native=True)
                      ) if use_lpips else None
    with torch.no_grad():
        target_feats = perc.features(frames) if perc is not None else None
    key = fingerprint(generator, latents, frames if transforms is None else torch.cat([frames.flatten(),
                                                                                        transforms.flatten()]))
    step, resumed_from, queue, stopped = 0, 0, [], False
    if checkpoint is not None and resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != key or \
                state.get("options") != asdict(o):
            raise InputError(f"{checkpoint}: a video PTI checkpoint of other frames, pivots, generator or options; "
                             "use another --out (or --overwrite)")
        with torch.no_grad():
            for k, d in state["deltas"].items():
                params[k].add_(d.to(params[k]))
        opt.load_state_dict(state["adam"])
        order.set_state(state["order_state"])
        queue = [int(i) for i in state["queue"]]
        step = resumed_from = int(state["step"])
        stopped = bool(state.get("stopped_early", False))  # an early-stopped run stays stopped

    def save() -> None:
        if checkpoint is None:
            return
        import io

        from ..bench.cache import atomic_write_bytes

        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "fingerprint": key, "options": asdict(o), "step": step,
                    "deltas": _deltas(params, orig, tuned_names), "adam": opt.state_dict(),
                    "order_state": order.get_state(), "queue": torch.tensor(queue, dtype=torch.long),
                    "stopped_early": stopped}, buf)
        atomic_write_bytes(checkpoint, buf.getvalue())

    kwargs = dict(input_is_latent=True, randomize_noise=False)
    lp_val = float("nan")
    while step < o.steps and not stopped:
        if not queue:  # a new epoch: shuffled frame order (official DataLoader shuffle=True)
            queue = torch.randperm(len(frames), generator=order).tolist()
        idx, queue = queue[: o.batch], queue[o.batch :]
        extra = {} if transforms is None else {"transform": transforms[idx]}
        img, _ = functional_call(generator, params, ([latents[idx]],), {**kwargs, **extra})
        loss = o.l2_weight * F.mse_loss(img, frames[idx])
        if perc is not None:
            lp = perc.distance(perc.features(img), [f[idx] for f in target_feats]).mean()
            lp_val = float(lp.detach())
            if o.lpips_threshold > 0 and lp_val <= o.lpips_threshold:
                stopped = True
                break
            loss = loss + o.lpips_weight * lp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % o.save_every == 0 and step < o.steps:
            save()
        if on_step is not None:
            on_step(step, o.steps, float(loss.detach()))
    save()
    return VideoPTIResult(_deltas(params, orig, tuned_names), step,
                          time.perf_counter() - start_time, lp_val, stopped, resumed_from, frozen, tuned_names)


def _deltas(params: dict[str, torch.Tensor], orig: dict[str, torch.Tensor], names: list[str]
            ) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {k: (params[k] - orig[k]).detach().cpu().contiguous() for k in names
                if not torch.equal(params[k], orig[k])}
