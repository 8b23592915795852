"""Face alignment of real photos before inversion.

`ffhq`: the NVlabs ffhq-dataset recipe as used by pSp / e4e / ReStyle / HyperStyle (dlib 68 landmarks, oriented
square crop, 256 px). Needs the optional extra: `pip install 'inversion-zoo[align]'`; dlib is imported lazily, so
importing this package never fails.
"""

from __future__ import annotations

from .ffhq import (INSTALL_COMMAND, NO_FACE_NOTE, align_ffhq, align_file, aligned_file, cache_key, ffhq_quad,
                   find_landmarks, landmark_model_path)

__all__ = ["INSTALL_COMMAND", "NO_FACE_NOTE", "align_ffhq", "align_file", "aligned_file", "cache_key", "ffhq_quad",
           "find_landmarks", "landmark_model_path"]
