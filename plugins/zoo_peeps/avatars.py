"""Deterministic rendering of DiceBear ``open-peeps`` avatars (CC0) with exact labels.

Every DiceBear option is drawn by our own numpy RNG and passed explicitly
(component probabilities are forced to 0 or 100), so the ground truth of each
image is known exactly. An image is identified by ``(identity_seed, variation)``:

* :class:`IdentityOptions` (head/hair style, hair colour, skin colour, clothing
  colour) depends on ``identity_seed`` only;
* :class:`EditableAttributes` (expression, accessory, facial hair, mask, pose)
  depends on ``(identity_seed, variation)``.

Rendering: SVG -> cairosvg at 4x the target size -> composite on a plain light
background -> small affine "pose" (rotation + translation, filled with the
background colour) -> LANCZOS downsample. Same arguments give bit-identical pixels.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import asdict, dataclass
from importlib import metadata
from importlib.resources import files
from typing import Any

import numpy as np
from PIL import Image

# --- render spec (bump RENDER_SPEC_VERSION whenever pixels or labels change) ----------
RENDER_SPEC_VERSION = "peeps-render-1"
STYLE_NAME = "open-peeps"
BACKGROUND: tuple[int, int, int] = (240, 240, 240)  # fixed plain light grey
SUPERSAMPLE = 4  # render at 4x the target size, then LANCZOS-downsample
CANVAS = 704.0  # open-peeps canvas is 704x704
# Square crop of the canvas (x, y, side) on head + shoulders; keeps glasses/moustaches.
VIEWBOX: tuple[float, float, float] = (96.0, 72.0, 600.0)
MAX_ROTATION_DEG = 10.0
MAX_SHIFT = 0.06  # translation as a fraction of the image side
_DICEBEAR_SEED = "inversion-zoo"  # irrelevant: every option is passed explicitly

# --- option values offered by dicebear-styles' open-peeps.json (verified at load) ---
HEADS: tuple[str, ...] = (
    "afro", "bangs", "bangs2", "bantuKnots", "bear", "bun", "bun2", "buns",
    "cornrows", "cornrows2", "dreads1", "dreads2", "flatTop", "flatTopLong",
    "grayBun", "grayMedium", "grayShort", "hatBeanie", "hatHip", "hijab", "long",
    "longAfro", "longBangs", "longCurly", "medium1", "medium2", "medium3",
    "mediumBangs", "mediumBangs2", "mediumBangs3", "mediumStraight", "mohawk",
    "mohawk2", "noHair1", "noHair2", "noHair3", "pomp", "shaved1", "shaved2",
    "shaved3", "short1", "short2", "short3", "short4", "short5", "turban", "twists",
    "twists2",
)  # fmt: skip
HAIR_COLORS: tuple[str, ...] = (  # DiceBear "headContrast" colour: hair and facial hair
    "#2c1b18", "#e8e1e1", "#ecdcbf", "#d6b370", "#f59797",
    "#b58143", "#a55728", "#724133", "#4a312c", "#c93305",
)  # fmt: skip
SKIN_COLORS: tuple[str, ...] = ("#ffdbb4", "#edb98a", "#d08b5b", "#ae5d29", "#694d3d")
CLOTHING_COLORS: tuple[str, ...] = (
    "#8fa7df", "#78e185", "#ffcf77", "#e279c7", "#e78276", "#9ddadb", "#fdea6b",
)  # fmt: skip

# Expressions (DiceBear component "expression"), split by a visual check of the mouth.
SMILE_FACES: tuple[str, ...] = (
    "calm", "cute", "driven", "lovingGrin1", "lovingGrin2",
    "smile", "smileBig", "smileLOL", "smileTeethGap",
)  # fmt: skip
NON_SMILE_FACES: tuple[str, ...] = (
    "angryWithFang", "blank", "concerned", "concernedFear", "contempt", "eyesClosed",
    "fear", "old", "rage", "serious", "solemn", "suspicious", "tired", "veryAngry",
)  # fmt: skip
# Never sampled: non-human (cyclops, monster) or ambiguous smile (awe, cheeky,
# eatingHappy, explaining, hectic). They still render if passed explicitly.
EXCLUDED_FACES: tuple[str, ...] = (
    "awe", "cheeky", "cyclops", "eatingHappy", "explaining", "hectic", "monster",
)  # fmt: skip
EXPRESSIONS: tuple[str, ...] = SMILE_FACES + NON_SMILE_FACES

GLASSES: tuple[str, ...] = ("glasses", "glasses2", "glasses3", "glasses4", "glasses5")
SUNGLASSES: tuple[str, ...] = ("sunglasses", "sunglasses2")
EYEPATCHES: tuple[str, ...] = ("eyepatch",)
ACCESSORIES: tuple[str, ...] = GLASSES + SUNGLASSES + EYEPATCHES
FACIAL_HAIRS: tuple[str, ...] = (  # moustache8 left out: it spans the whole canvas
    "chin", "full", "full2", "full3", "full4", "goatee1", "goatee2", "moustache1",
    "moustache2", "moustache3", "moustache4", "moustache5", "moustache6",
    "moustache7", "moustache9",
)  # fmt: skip
MASKS: tuple[str, ...] = ("medicalMask", "respirator")

# Sampling probabilities of the editable attributes.
P_SMILE = 0.5
P_GLASSES = 0.30
P_SUNGLASSES = 0.04
P_EYEPATCH = 0.02
P_FACIAL_HAIR = 0.25
P_MASK = 0.05

_IDENTITY_TAG = 0x1D  # RNG stream tags: keep identity and attribute streams apart
_ATTRIBUTE_TAG = 0xA7


@dataclass(frozen=True)
class IdentityOptions:
    """Who the peep is: DiceBear head variant and colours (``#rrggbb``)."""

    head: str
    hair_color: str
    skin_color: str
    clothing_color: str


@dataclass(frozen=True)
class EditableAttributes:
    """What may change for one identity.

    ``accessory``/``facial_hair``/``mask`` are DiceBear variant names or ``None``.
    Pose: ``rotation_deg`` counter-clockwise degrees; ``tx``/``ty`` shift as a
    fraction of the image side (positive = right/down).
    """

    expression: str
    accessory: str | None = None
    facial_hair: str | None = None
    mask: str | None = None
    rotation_deg: float = 0.0
    tx: float = 0.0
    ty: float = 0.0


def check_size(size: int) -> int:
    """Return ``size`` if it is a power of 2 >= 16, else raise ValueError."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an int power of 2 >= 16, got {size!r}")
    size = int(size)
    if size < 16 or size & (size - 1):
        raise ValueError(f"size must be a power of 2 >= 16 (e.g. 32 or 64), got {size}")
    return size


def _check_seed(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def sample_identity(identity_seed: int) -> IdentityOptions:
    """Draw the identity options of ``identity_seed`` (uniform over each option list)."""
    seed = _check_seed("identity_seed", identity_seed)
    rng = np.random.default_rng([_IDENTITY_TAG, seed])
    u = rng.random(4)
    pick = lambda values, x: values[int(x * len(values))]  # noqa: E731
    return IdentityOptions(
        head=pick(HEADS, u[0]),
        hair_color=pick(HAIR_COLORS, u[1]),
        skin_color=pick(SKIN_COLORS, u[2]),
        clothing_color=pick(CLOTHING_COLORS, u[3]),
    )


def sample_attributes(identity_seed: int, variation: int) -> EditableAttributes:
    """Draw the editable attributes of image ``(identity_seed, variation)``.

    A fixed number of uniforms is always drawn, so each attribute is independent
    of the others' probabilities.
    """
    seed = _check_seed("identity_seed", identity_seed)
    var = _check_seed("variation", variation)
    rng = np.random.default_rng([_ATTRIBUTE_TAG, seed, var])
    u = rng.random(11)
    pick = lambda values, x: values[int(x * len(values))]  # noqa: E731

    expression = pick(SMILE_FACES if u[0] < P_SMILE else NON_SMILE_FACES, u[1])
    if u[2] < P_GLASSES:
        accessory: str | None = pick(GLASSES, u[3])
    elif u[2] < P_GLASSES + P_SUNGLASSES:
        accessory = pick(SUNGLASSES, u[3])
    elif u[2] < P_GLASSES + P_SUNGLASSES + P_EYEPATCH:
        accessory = pick(EYEPATCHES, u[3])
    else:
        accessory = None
    facial_hair = pick(FACIAL_HAIRS, u[5]) if u[4] < P_FACIAL_HAIR else None
    mask = pick(MASKS, u[7]) if u[6] < P_MASK else None
    return EditableAttributes(
        expression=expression,
        accessory=accessory,
        facial_hair=facial_hair,
        mask=mask,
        rotation_deg=float((2.0 * u[8] - 1.0) * MAX_ROTATION_DEG),
        tx=float((2.0 * u[9] - 1.0) * MAX_SHIFT),
        ty=float((2.0 * u[10] - 1.0) * MAX_SHIFT),
    )


def labels_for(identity_seed: int, variation: int) -> dict[str, Any]:
    """Flat ground-truth labels of image ``(identity_seed, variation)``.

    Binary labels are 0/1 ints: ``smile`` (expression in SMILE_FACES), ``glasses``
    (regular glasses only), ``sunglasses``, ``eyepatch``, ``facial_hair``, ``mask``.
    ``accessory``/``facial_hair_style``/``mask_style`` hold the variant or "none".
    ``rotation`` is degrees CCW; ``tx``/``ty`` are fractions of the image side.
    """
    ident = sample_identity(identity_seed)
    attrs = sample_attributes(identity_seed, variation)
    return {
        "identity_id": int(identity_seed),
        "variation": int(variation),
        **asdict(ident),
        **attribute_labels(attrs),
    }


def attribute_labels(attrs: EditableAttributes) -> dict[str, Any]:
    """Labels derived from one :class:`EditableAttributes` (see :func:`labels_for`)."""
    return {
        "expression": attrs.expression,
        "smile": int(attrs.expression in SMILE_FACES),
        "accessory": attrs.accessory or "none",
        "glasses": int(attrs.accessory in GLASSES),
        "sunglasses": int(attrs.accessory in SUNGLASSES),
        "eyepatch": int(attrs.accessory in EYEPATCHES),
        "facial_hair": int(attrs.facial_hair is not None),
        "facial_hair_style": attrs.facial_hair or "none",
        "mask": int(attrs.mask is not None),
        "mask_style": attrs.mask or "none",
        "rotation": float(attrs.rotation_deg),
        "tx": float(attrs.tx),
        "ty": float(attrs.ty),
    }


@functools.lru_cache(maxsize=1)
def _style() -> Any:
    """Load and validate the open-peeps style once per process."""
    from dicebear import Style

    raw = (files("dicebear_styles") / f"{STYLE_NAME}.json").read_text(encoding="utf-8")
    style = Style.from_json(raw)
    comps = style.components()
    need = {
        "head": HEADS,
        "expression": SMILE_FACES + NON_SMILE_FACES + EXCLUDED_FACES,
        "accessories": ACCESSORIES,
        "facialHair": FACIAL_HAIRS,
        "mask": MASKS,
    }
    for comp, values in need.items():
        missing = set(values) - set(comps[comp].variants()) if comp in comps else {comp}
        if missing:
            raise ValueError(
                f"installed dicebear-styles lacks open-peeps {comp} {sorted(missing)}; "
                "install dicebear-styles==10.6.0"
            )
    return style


def preload() -> None:
    """Load the style and cairosvg now (e.g. once before forking render workers)."""
    import cairosvg  # noqa: F401

    _style()


def dicebear_versions() -> dict[str, str]:
    """Versions of the DiceBear packages the pixels depend on."""
    return {p: metadata.version(p) for p in ("dicebear-core", "dicebear-styles")}


def _validate(identity: IdentityOptions, attrs: EditableAttributes) -> None:
    checks = [
        ("head", identity.head, HEADS),
        ("hair_color", identity.hair_color, HAIR_COLORS),
        ("skin_color", identity.skin_color, SKIN_COLORS),
        ("clothing_color", identity.clothing_color, CLOTHING_COLORS),
        ("expression", attrs.expression, EXPRESSIONS + EXCLUDED_FACES),
        ("accessory", attrs.accessory, ACCESSORIES + (None,)),
        ("facial_hair", attrs.facial_hair, FACIAL_HAIRS + ("moustache8", None)),
        ("mask", attrs.mask, MASKS + (None,)),
    ]
    for name, value, allowed in checks:
        if value not in allowed:
            raise ValueError(f"unknown {name} {value!r}; expected one of {list(allowed)}")
    if abs(attrs.rotation_deg) > 45 or abs(attrs.tx) > 0.5 or abs(attrs.ty) > 0.5:
        raise ValueError("pose out of range: need |rotation_deg| <= 45, |tx|, |ty| <= 0.5")


def _dicebear_options(identity: IdentityOptions, attrs: EditableAttributes) -> dict[str, Any]:
    """Explicit DiceBear options: every variant, colour and probability fixed."""

    def component(name: str, variant: str | None) -> dict[str, Any]:
        if variant is None:
            return {f"{name}Probability": 0}
        return {f"{name}Probability": 100, f"{name}Variant": variant}

    return {
        "seed": _DICEBEAR_SEED,
        "headVariant": identity.head,
        "headContrastColor": identity.hair_color,
        "skinColor": identity.skin_color,
        "clothingColor": identity.clothing_color,
        "inkColor": "#000000",
        "expressionVariant": attrs.expression,
        **component("accessories", attrs.accessory),
        **component("facialHair", attrs.facial_hair),
        **component("mask", attrs.mask),
        # transparent background: we composite on BACKGROUND ourselves
    }


_VIEWBOX_RE = re.compile(r'viewBox="0 0 704 704"')


def render_svg(identity: IdentityOptions, attrs: EditableAttributes) -> str:
    """SVG markup of the avatar, viewBox cropped to :data:`VIEWBOX`, no background."""
    from dicebear import Avatar

    _validate(identity, attrs)
    svg = Avatar(_style(), _dicebear_options(identity, attrs)).to_string()
    x, y, side = VIEWBOX
    svg, n = _VIEWBOX_RE.subn(f'viewBox="{x:g} {y:g} {side:g} {side:g}"', svg, count=1)
    if n != 1:
        raise ValueError("unexpected open-peeps canvas; install dicebear-styles==10.6.0")
    return svg


def render(identity: IdentityOptions, attrs: EditableAttributes, size: int) -> np.ndarray:
    """Render one avatar: uint8 array [size, size, 3] in 0..255 (RGB)."""
    import cairosvg

    size = check_size(size)
    hi = size * SUPERSAMPLE
    png = cairosvg.svg2png(
        bytestring=render_svg(identity, attrs).encode("utf-8"),
        output_width=hi,
        output_height=hi,
    )
    with Image.open(io.BytesIO(png)) as fg:
        fg = fg.convert("RGBA")
        canvas = Image.new("RGBA", (hi, hi), BACKGROUND + (255,))
        img = Image.alpha_composite(canvas, fg).convert("RGB")
    if attrs.rotation_deg or attrs.tx or attrs.ty:
        img = img.rotate(
            attrs.rotation_deg,
            resample=Image.Resampling.BICUBIC,
            translate=(attrs.tx * hi, attrs.ty * hi),
            fillcolor=BACKGROUND,
        )
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def render_index(identity_seed: int, variation: int, size: int) -> np.ndarray:
    """Render image ``(identity_seed, variation)``: uint8 [size, size, 3]."""
    identity = sample_identity(identity_seed)
    return render(identity, sample_attributes(identity_seed, variation), size)
