"""What `zoo video` writes: the side-by-side mp4 (one tile per column: input | reconstruction | edits) and a PNG frame
strip (one row per column, one tile per shown frame)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .clip_io import encode_mp4


def side_by_side(columns: dict[str, torch.Tensor]) -> torch.Tensor:
    """Columns {label: [T, 3, H, W]} -> frames [T, 3, H, W * n_columns] (tiles left to right in dict order)."""
    return torch.cat([v.detach().float().cpu().clamp(-1, 1) for v in columns.values()], dim=3)


def strip_image(columns: dict[str, torch.Tensor], max_frames: int = 8) -> torch.Tensor:
    """Image [3, H * n_columns, W * k]: row r = column r of `columns`, k <= max_frames evenly spaced frames."""
    first = next(iter(columns.values()))
    n = first.shape[0]
    k = min(max_frames, n)
    idx = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)}) if k > 1 else [0]
    rows = [torch.cat([v[i].detach().float().cpu().clamp(-1, 1) for i in idx], dim=2) for v in columns.values()]
    return torch.cat(rows, dim=1)


def write_outputs(columns: dict[str, torch.Tensor], out_dir: Path, fps: float, scale: int, strip_frames: int,
                  strip_scale: int = 3, guard: Any = None) -> dict[str, str]:
    """Write video.mp4 (side by side, nearest-neighbour upscaled by `scale`) and strip.png (upscaled by
    `strip_scale`) into out_dir, never over an input (`guard`: zoo.io.OutputGuard); returns {kind: file name}."""
    from ..io import write_png

    mp4 = out_dir / "video.mp4"
    if guard is not None:
        guard.check(mp4)
    encode_mp4(side_by_side(columns), mp4, fps, scale)
    strip = strip_image(columns, strip_frames)
    if strip_scale > 1:
        strip = strip.repeat_interleave(strip_scale, dim=1).repeat_interleave(strip_scale, dim=2)
    write_png(label_rows(strip, list(columns)), out_dir / "strip.png", guard)
    return {"video": mp4.name, "strip": "strip.png"}


def label_rows(strip: torch.Tensor, labels: list[str], width: int = 96) -> torch.Tensor:
    """Prefix a strip [3, H, W] whose rows are `labels` (equal heights) with a white label column `width` px wide
    (PIL's default font, black text): [3, H, width + W] in [-1, 1]."""
    import numpy as np
    from PIL import Image, ImageDraw

    h = strip.shape[1]
    row = h // max(1, len(labels))
    panel = Image.new("RGB", (width, h), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for i, text in enumerate(labels):
        draw.text((4, i * row + row // 2 - 5), text[:16], fill=(0, 0, 0))
    lab = torch.from_numpy(np.asarray(panel, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 127.5 - 1
    return torch.cat([lab, strip.detach().float().cpu()], dim=2)
