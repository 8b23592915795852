"""Video: invert and edit clips frame by frame with stylegan3-editing's post-processing (docs/video.md).

Modules: `clip` (the Clip type), `clip_io` (video files, frame folders, embedded clips, mp4 writing), `smoothing`
(the official latent / transform smoothing), `transforms` (SG3 transform convention, generator capability check),
`frames` (per-frame inversion, saved and resumable), `video_pti` (one generator tuned on the clip), `metrics`
(per-frame quality, flicker, temporal error), `pipeline` (the whole run), `outputs` (mp4 and strip).
"""

from __future__ import annotations

from .clip import Clip
from .smoothing import average_fine_codes, default_fine_from, smooth_latents, smooth_transforms, smooth_ws

__all__ = ["Clip", "average_fine_codes", "default_fine_from", "smooth_latents", "smooth_transforms", "smooth_ws"]
