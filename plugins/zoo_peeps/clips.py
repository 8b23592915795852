"""Embedded peeps video clips: one identity with smoothly varying pose (rotation, translation) and expression
switches, rendered frame by frame with exact per-frame ground truth. Generated on demand (never shipped as video
files); the same arguments give bit-identical frames.

Pose follows `avatars.render` (PIL rotation about the centre, counter-clockwise for positive degrees, then a shift by
tx, ty of the side, right / down), which is StyleGAN3's `make_transform` convention (zoo.video.transforms), so
`Clip.transforms()` gives the matching inverse transforms for an SG3 generator.

Each pose channel is a sinusoid of normalised time u = t / (T - 1): amplitude * sin(2 pi (cycles * u + phase)),
within the domain's training range (|rotation| <= 10 deg, |tx|, |ty| <= 0.06). Expressions switch at fixed fractions
of the clip. Identities come from the test split's seeds (1_000_000 + ...), which no trained model has seen.

`jitter` (rotation degrees, shift fraction; Gaussian sigmas) perturbs the *input* frames' pose per frame while
`Clip.truth` keeps the smooth render: a shaky-camera clip whose clean version is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from . import avatars
from .dataset import images_to_tensor

DEFAULT_FRAMES = 24
FPS = 12.0


@dataclass(frozen=True)
class Wave:
    """amplitude * sin(2 pi (cycles * u + phase)) over normalised time u in [0, 1]."""

    amplitude: float = 0.0
    cycles: float = 1.0
    phase: float = 0.0

    def at(self, u: float) -> float:
        return self.amplitude * math.sin(2.0 * math.pi * (self.cycles * u + self.phase))


@dataclass(frozen=True)
class ClipSpec:
    """A named clip: identity seed, pose waves, expression switches ((start fraction, expression), sorted) and the
    default pose jitter of its input frames."""

    name: str
    identity_seed: int
    description: str
    rotation: Wave = Wave()
    tx: Wave = Wave()
    ty: Wave = Wave()
    expressions: tuple[tuple[float, str], ...] = ((0.0, "serious"),)
    jitter: tuple[float, float] = (0.0, 0.0)  # default per-frame pose jitter (rotation deg, shift fraction) sigmas

    def expression_at(self, u: float) -> str:
        current = self.expressions[0][1]
        for start, expr in self.expressions:
            if u >= start:
                current = expr
        return current


CLIPS: dict[str, ClipSpec] = {c.name: c for c in (
    ClipSpec("turn", 1_000_003, "head turns left and right (rotation +-8 deg), neutral expression",
             rotation=Wave(8.0, 1.0)),
    ClipSpec("drift", 1_000_011, "head drifts on a circle (tx, ty +-4 %), glasses", tx=Wave(0.04, 1.0, 0.25),
             ty=Wave(0.04, 1.0)),
    ClipSpec("talk", 1_000_015, "small sway (+-3 deg), expression serious -> smile -> big smile",
             rotation=Wave(3.0, 0.5), expressions=((0.0, "serious"), (1 / 3, "smile"), (2 / 3, "smileBig"))),
    ClipSpec("mixed", 1_000_004, "rotation +-6 deg, drift (tx +-3 %, ty +-2 %), glasses, a smile in the second half",
             rotation=Wave(6.0, 1.0), tx=Wave(0.03, 0.5), ty=Wave(0.02, 1.0, 0.25),
             expressions=((0.0, "solemn"), (0.5, "smile"))),
    ClipSpec("shaky", 1_000_004, "the 'mixed' clip filmed by a shaky camera: per-frame pose jitter (2 deg, 1 %); "
             "truth = the smooth clip", rotation=Wave(6.0, 1.0), tx=Wave(0.03, 0.5), ty=Wave(0.02, 1.0, 0.25),
             expressions=((0.0, "solemn"), (0.5, "smile")), jitter=(2.0, 0.01)),
)}
#: the clip `zoo bench --video` and docs/video.md use
BENCH_CLIP = "mixed"


def clip_names() -> list[str]:
    """Names of the embedded clips."""
    return list(CLIPS)


def clip_params(spec: ClipSpec, n_frames: int) -> list[avatars.EditableAttributes]:
    """The smooth per-frame attributes of `spec` over n_frames (>= 1): the identity's own accessory / facial hair
    (variation 0), no mask, the clip's pose waves and expression switches."""
    base = avatars.sample_attributes(spec.identity_seed, 0)
    out = []
    for t in range(n_frames):
        u = t / (n_frames - 1) if n_frames > 1 else 0.0
        out.append(replace(base, mask=None, expression=spec.expression_at(u), rotation_deg=spec.rotation.at(u),
                           tx=spec.tx.at(u), ty=spec.ty.at(u)))
    return out


def _jittered(attrs: list[avatars.EditableAttributes], jitter: tuple[float, float], seed: int
              ) -> list[avatars.EditableAttributes]:
    rot_sigma, shift_sigma = jitter
    rng = np.random.default_rng([0x71D, seed])
    noise = rng.standard_normal((len(attrs), 3))
    lim_r, lim_s = avatars.MAX_ROTATION_DEG * 1.5, avatars.MAX_SHIFT * 1.5
    return [replace(a, rotation_deg=float(np.clip(a.rotation_deg + rot_sigma * n[0], -lim_r, lim_r)),
                    tx=float(np.clip(a.tx + shift_sigma * n[1], -lim_s, lim_s)),
                    ty=float(np.clip(a.ty + shift_sigma * n[2], -lim_s, lim_s))) for a, n in zip(attrs, noise)]


def make_clip(name: str, n_frames: int = DEFAULT_FRAMES, size: int = 32, jitter: tuple[float, float] | None = None,
              seed: int = 0):  # -> zoo.video.Clip
    """Render embedded clip `name` with n_frames (>= 1) at size x size.

    jitter: (rotation degrees, shift fraction) sigmas of per-frame Gaussian pose noise of the input frames (None:
    the clip's own, (0, 0) for all but 'shaky'); seed: its random stream.
    Returns a zoo.video.Clip: frames [T, 3, size, size] in [-1, 1] (jittered when `jitter` is not (0, 0)), truth =
    the smooth render, params = per-frame labels (avatars.attribute_labels: rotation, tx, ty, expression, smile, ...
    of the *input* frames, plus truth_rotation / truth_tx / truth_ty when jittered), aligned = every frame rendered
    with its pose removed (what `--unaligned` inverts). Raises
    InputError for an unknown name or n_frames < 1."""
    from zoo.errors import InputError
    from zoo.video.clip import Clip

    if name not in CLIPS:
        raise InputError(f"unknown embedded clip '{name}' (peeps clips: {', '.join(CLIPS)})")
    if n_frames < 1:
        raise InputError(f"an embedded clip needs at least 1 frame, got {n_frames}")
    spec = CLIPS[name]
    jitter = spec.jitter if jitter is None else jitter
    identity = avatars.sample_identity(spec.identity_seed)
    smooth = clip_params(spec, n_frames)
    shaky = _jittered(smooth, jitter, seed) if any(jitter) else smooth
    truth = images_to_tensor(np.stack([avatars.render(identity, a, size) for a in smooth]))
    frames = truth if shaky is smooth else images_to_tensor(np.stack([avatars.render(identity, a, size)
                                                                     for a in shaky]))
    params = []
    for a, s in zip(shaky, smooth):
        p = {"identity_seed": spec.identity_seed, **avatars.attribute_labels(a)}
        if shaky is not smooth:
            p.update(truth_rotation=s.rotation_deg, truth_tx=s.tx, truth_ty=s.ty)
        params.append(p)
    label = name if not any(jitter) or spec.jitter == jitter else f"{name}-jitter"
    aligned = images_to_tensor(np.stack([avatars.render(identity, replace(a, rotation_deg=0.0, tx=0.0, ty=0.0), size)
                                         for a in smooth]))
    return Clip(frames=frames, name=label, source=f"embedded:{name}", fps=FPS, truth=truth, params=params,
                frame_names=[f"{label}_{t:04d}" for t in range(n_frames)], aligned=aligned)
