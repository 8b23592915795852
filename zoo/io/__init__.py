"""Files the commands write: unique output names, crash-safe writes that never touch an input, and the run
manifests of `zoo invert` / `zoo edit` (which input became which output files, resumable)."""

from __future__ import annotations

from .manifest import EDIT_KIND, INVERT_KIND, EditManifest, InvertManifest, read_manifest
from .outputs import (OutputGuard, assign_names, base_name, encode_png, inversion_file_name, write_png)

__all__ = ["EDIT_KIND", "INVERT_KIND", "EditManifest", "InvertManifest", "OutputGuard", "assign_names", "base_name",
           "encode_png", "inversion_file_name", "read_manifest", "write_png"]
