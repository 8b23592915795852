"""Deterministic rendering of DiceBear ``lorelei`` avatars (CC0, Lisa Wischofsky) with exact labels.

Image ``(identity_seed, variation)`` shows the *same* identity and attribute options as the peeps image of the same
indices wherever lorelei has the option (that is what the cross-style evaluation of domain adaptation relies on):

* identity: peeps ``head`` -> lorelei ``hair`` (both styles offer 48 variants; fixed index map), peeps hair colour ->
  lorelei ``hairColor`` (also colours the beard), peeps skin colour -> ``skinColor``; lorelei-only facial features
  (``head`` shape, ``eyes``, ``eyebrows``, ``nose``) come from their own RNG stream keyed by the identity seed.
  Peeps' clothing colour has no lorelei counterpart (lorelei draws no clothes).
* attributes: smile -> a ``happy*`` mouth, no smile -> a ``sad*`` mouth (DiceBear's own variant names; the variant is
  drawn from a lorelei stream); regular glasses -> glasses variant01/03/04/05, sunglasses -> variant02 (the dark
  lenses, visual check); facial hair -> beard variant01/02; eyepatch and mask do not exist in lorelei (none);
  pose (rotation, tx, ty) is the peeps pose.

Rendering is the peeps pipeline (SVG -> cairosvg at 4x -> composite on the same light background -> pose -> LANCZOS),
with the 980-px canvas cropped to :data:`VIEWBOX` (head and hair).
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import asdict, dataclass
from importlib.resources import files
from typing import Any

import numpy as np
from PIL import Image

from zoo_peeps import avatars as peeps

RENDER_SPEC_VERSION = "lorelei-render-1"
STYLE_NAME = "lorelei"
BACKGROUND = peeps.BACKGROUND
SUPERSAMPLE = peeps.SUPERSAMPLE
VIEWBOX: tuple[float, float, float] = (110.0, 40.0, 780.0)  # (x, y, side) of the 980x980 canvas
_DICEBEAR_SEED = "inversion-zoo"  # irrelevant: every option is passed explicitly

HAIRS: tuple[str, ...] = tuple(f"variant{i:02d}" for i in range(1, 49))
HEAD_SHAPES: tuple[str, ...] = tuple(f"variant{i:02d}" for i in range(1, 5))
EYES: tuple[str, ...] = tuple(f"variant{i:02d}" for i in range(1, 25))
EYEBROWS: tuple[str, ...] = tuple(f"variant{i:02d}" for i in range(1, 14))
NOSES: tuple[str, ...] = tuple(f"variant{i:02d}" for i in range(1, 7))
HAPPY_MOUTHS: tuple[str, ...] = tuple(f"happy{i:02d}" for i in range(1, 19))
SAD_MOUTHS: tuple[str, ...] = tuple(f"sad{i:02d}" for i in range(1, 10))
GLASSES: tuple[str, ...] = ("variant01", "variant03", "variant04", "variant05")  # clear lenses
SUNGLASSES: tuple[str, ...] = ("variant02",)  # dark lenses
BEARDS: tuple[str, ...] = ("variant01", "variant02")

_FEATURE_TAG = 0x4C  # lorelei-only identity stream
_MOUTH_TAG = 0x4D  # lorelei mouth stream


@dataclass(frozen=True)
class LoreleiIdentity:
    """Lorelei identity options (DiceBear variant names and ``#rrggbb`` colours)."""

    hair: str
    hair_color: str
    skin_color: str
    head_shape: str
    eyes: str
    eyebrows: str
    nose: str


@dataclass(frozen=True)
class LoreleiAttributes:
    """Editable options; ``glasses``/``beard`` are variant names or None; pose as in peeps (deg CCW, fractions)."""

    mouth: str
    glasses: str | None = None
    beard: str | None = None
    rotation_deg: float = 0.0
    tx: float = 0.0
    ty: float = 0.0


def identity_for(identity_seed: int) -> LoreleiIdentity:
    """The lorelei identity of ``identity_seed`` (shared options from :func:`zoo_peeps.avatars.sample_identity`)."""
    src = peeps.sample_identity(identity_seed)
    u = np.random.default_rng([_FEATURE_TAG, int(identity_seed)]).random(4)
    pick = lambda values, x: values[int(x * len(values))]  # noqa: E731
    return LoreleiIdentity(
        hair=HAIRS[peeps.HEADS.index(src.head)], hair_color=src.hair_color, skin_color=src.skin_color,
        head_shape=pick(HEAD_SHAPES, u[0]), eyes=pick(EYES, u[1]), eyebrows=pick(EYEBROWS, u[2]),
        nose=pick(NOSES, u[3]))


def attributes_for(identity_seed: int, variation: int) -> LoreleiAttributes:
    """The lorelei attributes of image ``(identity_seed, variation)``, translated from the peeps attributes."""
    src = peeps.sample_attributes(identity_seed, variation)
    u = float(np.random.default_rng([_MOUTH_TAG, int(identity_seed), int(variation)]).random())
    mouths = HAPPY_MOUTHS if src.expression in peeps.SMILE_FACES else SAD_MOUTHS
    glasses = None
    if src.accessory in peeps.GLASSES:
        glasses = GLASSES[peeps.GLASSES.index(src.accessory) % len(GLASSES)]
    elif src.accessory in peeps.SUNGLASSES:
        glasses = SUNGLASSES[0]
    beard = BEARDS[peeps.FACIAL_HAIRS.index(src.facial_hair) % 2] if src.facial_hair else None
    return LoreleiAttributes(mouth=mouths[int(u * len(mouths))], glasses=glasses, beard=beard,
                             rotation_deg=src.rotation_deg, tx=src.tx, ty=src.ty)


def attribute_labels(attrs: LoreleiAttributes) -> dict[str, Any]:
    """Binary labels (0/1) ``smile`` (a happy* mouth), ``glasses`` (clear lenses), ``sunglasses``, ``facial_hair``
    (any beard), the variant names, and the pose (``rotation`` degrees CCW, ``tx``/``ty`` fractions of the side)."""
    return {"mouth": attrs.mouth, "smile": int(attrs.mouth in HAPPY_MOUTHS),
            "glasses_style": attrs.glasses or "none", "glasses": int(attrs.glasses in GLASSES),
            "sunglasses": int(attrs.glasses in SUNGLASSES), "facial_hair": int(attrs.beard is not None),
            "beard_style": attrs.beard or "none", "rotation": float(attrs.rotation_deg), "tx": float(attrs.tx),
            "ty": float(attrs.ty)}


def labels_for(identity_seed: int, variation: int) -> dict[str, Any]:
    """Flat ground truth of image ``(identity_seed, variation)``: ids, identity options, attribute labels."""
    return {"identity_id": int(identity_seed), "variation": int(variation), **asdict(identity_for(identity_seed)),
            **attribute_labels(attributes_for(identity_seed, variation))}


@functools.lru_cache(maxsize=1)
def _style() -> Any:
    from dicebear import Style

    raw = (files("dicebear_styles") / f"{STYLE_NAME}.json").read_text(encoding="utf-8")
    style = Style.from_json(raw)
    comps = style.components()
    need = {"hair": HAIRS, "head": HEAD_SHAPES, "eyes": EYES, "eyebrows": EYEBROWS, "nose": NOSES,
            "mouth": HAPPY_MOUTHS + SAD_MOUTHS, "glasses": GLASSES + SUNGLASSES, "beard": BEARDS}
    for comp, values in need.items():
        missing = set(values) - set(comps[comp].variants()) if comp in comps else {comp}
        if missing:
            raise ValueError(f"installed dicebear-styles lacks lorelei {comp} {sorted(missing)}; "
                             "install dicebear-styles==10.6.0")
    return style


def preload() -> None:
    """Load the style and cairosvg now (once before forking render workers)."""
    import cairosvg  # noqa: F401

    _style()


def _dicebear_options(identity: LoreleiIdentity, attrs: LoreleiAttributes) -> dict[str, Any]:
    def component(name: str, variant: str | None) -> dict[str, Any]:
        return {f"{name}Probability": 0} if variant is None else {f"{name}Probability": 100, f"{name}Variant": variant}

    return {"seed": _DICEBEAR_SEED, "hairVariant": identity.hair, "hairColor": identity.hair_color,
            "skinColor": identity.skin_color, "headVariant": identity.head_shape, "eyesVariant": identity.eyes,
            "eyebrowsVariant": identity.eyebrows, "noseVariant": identity.nose, "mouthVariant": attrs.mouth,
            **component("glasses", attrs.glasses), **component("beard", attrs.beard),
            "earringsProbability": 0, "frecklesProbability": 0, "hairAccessoriesProbability": 0}


_VIEWBOX_RE = re.compile(r'viewBox="0 0 980 980"')


def render_svg(identity: LoreleiIdentity, attrs: LoreleiAttributes) -> str:
    """SVG markup, viewBox cropped to :data:`VIEWBOX`, transparent background."""
    from dicebear import Avatar

    for name, value, allowed in (("mouth", attrs.mouth, HAPPY_MOUTHS + SAD_MOUTHS),
                                 ("glasses", attrs.glasses, GLASSES + SUNGLASSES + (None,)),
                                 ("beard", attrs.beard, BEARDS + (None,)), ("hair", identity.hair, HAIRS)):
        if value not in allowed:
            raise ValueError(f"unknown lorelei {name} {value!r}; expected one of {list(allowed)}")
    svg = Avatar(_style(), _dicebear_options(identity, attrs)).to_string()
    x, y, side = VIEWBOX
    svg, n = _VIEWBOX_RE.subn(f'viewBox="{x:g} {y:g} {side:g} {side:g}"', svg, count=1)
    if n != 1:
        raise ValueError("unexpected lorelei canvas; install dicebear-styles==10.6.0")
    return svg


def render(identity: LoreleiIdentity, attrs: LoreleiAttributes, size: int) -> np.ndarray:
    """Render one avatar: uint8 [size, size, 3] in 0..255 (RGB); ``size`` a power of 2 >= 16."""
    import cairosvg

    size = peeps.check_size(size)
    hi = size * SUPERSAMPLE
    png = cairosvg.svg2png(bytestring=render_svg(identity, attrs).encode("utf-8"), output_width=hi, output_height=hi)
    with Image.open(io.BytesIO(png)) as fg:
        canvas = Image.new("RGBA", (hi, hi), BACKGROUND + (255,))
        img = Image.alpha_composite(canvas, fg.convert("RGBA")).convert("RGB")
    if attrs.rotation_deg or attrs.tx or attrs.ty:
        img = img.rotate(attrs.rotation_deg, resample=Image.Resampling.BICUBIC,
                         translate=(attrs.tx * hi, attrs.ty * hi), fillcolor=BACKGROUND)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def render_index(identity_seed: int, variation: int, size: int) -> np.ndarray:
    """Render lorelei image ``(identity_seed, variation)``: uint8 [size, size, 3]."""
    return render(identity_for(identity_seed), attributes_for(identity_seed, variation), size)
