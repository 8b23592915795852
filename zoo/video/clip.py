"""`Clip`: the frames of a video with what is known about them (ground-truth frames and per-frame pose for
embedded clips)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .transforms import inverse_transforms


@dataclass
class Clip:
    """A video clip.

    frames: [T, 3, H, W] float32 in [-1, 1] (what is inverted).
    name: short name (file stem, folder name or the embedded clip's name); source: where it came from (a path or
        `embedded:NAME`).
    fps: frames per second (of the file; embedded clips: their nominal rate).
    truth: ground-truth frames [T, 3, H, W] in [-1, 1] when known (embedded clips: the clean render; equal to
        `frames` unless the clip was rendered with pose jitter).
    params: per-frame ground truth when known: dicts with `rotation` (degrees, CCW), `tx`, `ty` (fractions of the
        side, right / down), `expression`, `smile`, ... (the domain's labels).
    frame_names: one name per frame (file names of a folder, `frame_0000`, ... otherwise).
    aligned: the frames with their pose removed [T, 3, H, W] when known (embedded clips render them; real videos
        get them from dlib landmark alignment, zoo.video.align_frames): what `--unaligned` inverts, as the official
        pipeline encodes the aligned crop and renders the frame with its transform.
    """

    frames: torch.Tensor
    name: str
    source: str
    fps: float = 12.0
    truth: torch.Tensor | None = None
    params: list[dict[str, Any]] = field(default_factory=list)
    frame_names: list[str] = field(default_factory=list)
    aligned: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[1] != 3:
            raise ValueError(f"clip frames must be [T, 3, H, W], got {tuple(self.frames.shape)}")
        if not self.frame_names:
            self.frame_names = [f"frame_{i:04d}" for i in range(len(self))]

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def transforms(self) -> torch.Tensor | None:
        """Ground-truth per-frame inverse transforms [T, 3, 3] float64 (StyleGAN3 convention, zoo.video.transforms)
        when the clip knows its poses, else None."""
        if not self.params or not all(k in p for p in self.params for k in ("rotation", "tx", "ty")):
            return None
        return inverse_transforms(self.params)

    def head(self, n: int) -> Clip:
        """The first n frames (all when n >= len)."""
        return Clip(self.frames[:n], self.name, self.source, self.fps, None if self.truth is None else self.truth[:n],
                    self.params[:n], self.frame_names[:n], None if self.aligned is None else self.aligned[:n])
