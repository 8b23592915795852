"""The commented starting `NAME.toml` that `zoo domain new` writes: every field of `spec.py`, the unused ones
commented out with what they do. Paths are written relative to the TOML file's folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from .spec import IDENTITY_KINDS, NAME_RE

COMMENT_COLUMN = 34
TEMPLATE = """\
# Domain file of the inversion zoo (written by `zoo domain new`; fields: docs/own-domain.md).
#   check it:  zoo domain check {toml}        (loads every file, lists every problem, estimates the bench time)
#   use it:    zoo bench --domain {toml}      /  zoo invert METHOD photo.jpg --domain {toml} --out inv/
# Paths are relative to this file's folder; ~ and $VARS expand. Top-level fields must come before the [tables].

name = {name}\t# how results name this domain: letters, digits, '_', '-', '.'
title = {title}\t# one line on the domain's card and in reports
face = {face}\t# a face domain: face ID metrics and FFHQ alignment make sense
resize = "bilinear"\t# images of another size are resized to the generator's: "bilinear" (the official
\t# Resize((256, 256)) transforms) or "lanczos"
identity = {identity}\t# the ID metric's model: "arcface:PATH" (model_ir_se50.pth),
\t# "curricularface:PATH" (CurricularFace_Backbone.pth), "moco:PATH"
\t# (moco_v2_800ep_pretrain.pt, other domains), "dlib" or "none"
# notes = "where the images come from"\t# free text on the domain's card
# licence = "CC-BY-4.0"\t# licence of the images / weights, on the card

[generator]
path = {generator}\t# a rosinality .pt, an NVlabs .pkl or a pSp/e4e/ReStyle/HyperStyle .pt (its decoder)
{sha_line}

[images]
test = {test}\t# a folder, a glob ("faces/*.jpg", "**/*.png") or a list of them
{ood_line}
# train = "train_images/"\t# a training split (not used by `zoo bench`)
limit = 0\t# images per split, 0 = all (`zoo bench --limit N` decides for a bench run)
align = {align}\t# "ffhq": dlib 68-landmark FFHQ alignment of every photo (needs
\t# pip install 'inversion-zoo[align]'); "none" for already aligned images

# Editing directions (optional; `zoo edit --direction NAME`):
# [directions.interfacegan]\t# InterFaceGAN boundaries: .pt / .npy of [w_dim], [1, w_dim] or [n_styles, w_dim]
# age = "editing/age.pt"
# smile = "editing/smile.pt"
# [directions.ganspace]\t# a GANSpace PCA file {{comp, mean, std}} and named edits
# file = "editing/ffhq_pca.pt"
# edits = {{ eye_openness = [54, 7, 8, 20] }}\t# [component, first W+ layer, last layer (exclusive), strength]
# [directions.stylespace]\t# named StyleSpace channels s<slot>_<channel>
# smile = "s6_501"

# Per-method weights and options (`zoo show METHOD` lists the options). Methods without a table run with their
# paper defaults; the encoders need weights (official checkpoints) and are listed as unavailable otherwise.
# [methods.psp]
# weights = "psp_ffhq_encode.pt"
# [methods.e4e]
# weights = "e4e_ffhq_encode.pt"
# [methods.restyle_psp]
# weights = "restyle_psp_ffhq_encode.pt"
# n_iters = 5
# [methods.restyle_e4e]
# weights = "restyle_e4e_ffhq_encode.pt"
# [methods.hyperstyle]
# weights = "hyperstyle_ffhq.pt"
# w_encoder = "faces_w_encoder.pt"
# n_iters = 5
# [methods.optim]
# steps = 1000

[metrics]
size = 256\t# evaluation size of L2 / LPIPS / MS-SSIM (the papers: 256)
lpips = "alex"\t# LPIPS network: "alex" (the papers'; the only one implemented)
"""


def toml_string(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def relative_to(path: str | Path, folder: Path) -> str:
    """`path` relative to `folder` ('/'-separated) when possible, else absolute."""
    p = Path(os.path.expanduser(str(path))).resolve()
    try:
        return Path(os.path.relpath(p, folder.resolve())).as_posix()
    except ValueError:  # another drive
        return p.as_posix()


def parse_identity(value: str) -> tuple[str, str | None]:
    """'arcface:PATH' -> ('arcface', 'PATH'); InputError for an unknown model or a missing path."""
    kind, _, rest = value.partition(":")
    kind = kind.strip().lower()
    if kind not in IDENTITY_KINDS:
        raise InputError(f"--identity '{value}': the model must be one of {', '.join(IDENTITY_KINDS)}")
    if IDENTITY_KINDS[kind] and not rest:
        raise InputError(f"--identity '{value}': {kind} needs its weights file, e.g. {kind}:path/to/weights.pth")
    if not IDENTITY_KINDS[kind] and rest:
        raise InputError(f"--identity '{value}': {kind} takes no file")
    return kind, rest or None


def render(out: Path, name: str, generator: str, images: str, ood: str | None = None, identity: str = "none",
           align: str = "none", sha256: str | None = None) -> str:
    """The text of the domain file `out` (paths made relative to its folder)."""
    if not NAME_RE.match(name):
        raise InputError(f"name '{name}' must start with a letter and use only letters, digits, '_', '-', '.'")
    if align not in ("none", "ffhq"):
        raise InputError(f"--align must be none or ffhq, got '{align}'")
    folder = out.parent
    kind, ident_path = parse_identity(identity)
    ident = f"{kind}:{relative_to(ident_path, folder)}" if ident_path else kind
    face = kind in ("arcface", "curricularface", "dlib") or align == "ffhq"
    sha_line = (f"# sha256 = \"{sha256}\"\t# uncomment to pin this exact file (checked on every load)" if sha256
                else "# sha256 = \"<64 hex digits>\"\t# pins the file (checked on every load)")
    ood_line = (f"ood = {toml_string(relative_to(ood, folder))}\t# out-of-domain split (optional)"
                if ood else "# ood = \"ood_images/\"\t# out-of-domain split (optional)")
    text = TEMPLATE.format(toml=out.name, name=toml_string(name), title=toml_string(f"{name} (own domain)"),
                           face="true" if face else "false", identity=toml_string(ident),
                           generator=toml_string(relative_to(generator, folder)), sha_line=sha_line,
                           test=toml_string(relative_to(images, folder)), ood_line=ood_line,
                           align=toml_string(align))
    return "\n".join(_align_comments(line) for line in text.split("\n"))


def _align_comments(line: str, column: int = COMMENT_COLUMN) -> str:
    """'code<TAB># comment' -> the comment at `column` (values never hold a raw tab: toml_string escapes it)."""
    if "\t" not in line:
        return line
    code, comment = line.split("\t", 1)
    return code.ljust(column - 1) + " " + comment if code else " " * column + comment


def write_template(out: str | Path, name: str, generator: str, images: str, ood: str | None = None,
                   identity: str = "none", align: str = "none") -> tuple[Path, list[str]]:
    """Write the starting domain file; refuses to overwrite. Returns (path, notes about paths that do not exist)."""
    from .domain import file_sha256

    out = Path(os.path.expanduser(str(out)))
    if out.exists():
        raise InputError(f"{out} already exists; not overwriting it (choose another --out or remove the file)")
    notes = []
    gen = Path(os.path.expanduser(generator))
    sha = file_sha256(gen) if gen.is_file() else None
    if sha is None:
        notes.append(f"generator file not found: {generator}")
    for what, p in (("images folder", images), ("ood folder", ood)):
        if p and not Path(os.path.expanduser(p)).exists():
            notes.append(f"{what} not found: {p}")
    text = render(out, name, generator, images, ood, identity, align, sha)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "x", encoding="utf-8") as f:  # "x": never overwrite, even in a race
        f.write(text)
    return out, notes
