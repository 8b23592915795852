"""Write shipped weights of the peeps domain: the file, its model card and its sha256 in weights/manifest.json."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from zoo.cards import sha256_file

from .domain import MANIFEST, WEIGHTS_DIR


def save_small_net(net: torch.nn.Module, filename: str, weights_dir: Path | None = None) -> Path:
    """fp16 safetensors of a state dict (BatchNorm buffers included) in `weights_dir` (default: the peeps weights;
    another embedded domain passes its own folder)."""
    weights_dir = WEIGHTS_DIR if weights_dir is None else weights_dir
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / filename
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    save_file(sd, str(path))
    return path


def register_weights(role: str, src: Path, *, command: str, card: dict, filename: str | None = None,
                     weights_dir: Path | None = None, domain: str = "peeps") -> dict:
    """Copy `src` into `weights_dir` (unless already there), write `<name>.md` and record the sha256 in the
    folder's manifest.json (another embedded domain passes its own folder and name)."""
    manifest_path = MANIFEST if weights_dir is None else weights_dir / "manifest.json"
    weights_dir = WEIGHTS_DIR if weights_dir is None else weights_dir
    weights_dir.mkdir(parents=True, exist_ok=True)
    filename = filename or src.name
    dest = weights_dir / filename
    if src.resolve() != dest.resolve():
        shutil.copyfile(src, dest)
    sha = sha256_file(dest)
    card_name = Path(filename).stem + ".md"
    lines = [f"# {domain} / {role}", "", f"- file: `{filename}` ({dest.stat().st_size / 1e6:.2f} MB)", f"- sha256: `{sha}`",
             f"- rebuild: `{command}`", f"- machine: {platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, CPU only"]
    for k, v in card.items():
        if isinstance(v, dict):
            lines.append(f"- {k}:")
            lines += [f"  - {kk}: {vv}" for kk, vv in v.items()]
        else:
            lines.append(f"- {k}: {v}")
    (weights_dir / card_name).write_text("\n".join(lines) + "\n")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[role] = {"filename": filename, "sha256": sha, "size_bytes": dest.stat().st_size, "model_card": card_name}
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    return manifest[role]
