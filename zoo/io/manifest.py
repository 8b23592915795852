"""`manifest.json` of an output folder: which input became which output files.

`zoo invert` (kind "zoo invert"): one run per folder. Header: method, method version, domain, resolved options,
the command that resumes the run, status ("running", "interrupted", "failed", "complete"), input counts. One entry
per input in input order: {"input" (as given), "key" (resolved path or domain:split[i]), "name", "reconstruction",
"inversion", "status" ("pending", "done", "skipped"), "image_sha256", "seconds", "note"}. Rewritten atomically after
every batch, so it is always a complete JSON file describing the finished work.

`zoo edit` (kind "zoo edit"): entries {"input", "strip", "inversion" (when saved), "method", "editor", "direction",
"steps"} merged over the edit runs that wrote into the folder (keyed by strip file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError, ZooError

MANIFEST = "manifest.json"
INVERT_KIND = "zoo invert"
EDIT_KIND = "zoo edit"
MANIFEST_VERSION = 1


def now() -> str:
    """UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of `out_dir` (None when there is none). InputError when it exists but is not one of ours."""
    import json

    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"{path} is damaged or not a zoo manifest; move it away or choose another --out") from None
    if not isinstance(data, dict) or data.get("kind") not in (INVERT_KIND, EDIT_KIND):
        raise InputError(f"{path} is not a zoo manifest (another program's file?); choose another --out")
    return data


def _save(path: Path, data: dict[str, Any]) -> None:
    from ..bench.cache import atomic_write_json

    atomic_write_json(path, data)


@dataclass
class InvertManifest:
    """The manifest of a `zoo invert` output folder (see the module doc)."""

    out_dir: Path
    header: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.out_dir / MANIFEST

    @classmethod
    def from_dict(cls, out_dir: Path, data: dict[str, Any]) -> InvertManifest:
        header = {k: v for k, v in data.items() if k != "entries"}
        return cls(Path(out_dir), header, list(data.get("entries") or []))

    def counts(self) -> dict[str, int]:
        """Entries per status."""
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.get("status", "pending")] = out.get(e.get("status", "pending"), 0) + 1
        return out

    def save(self, status: str | None = None) -> None:
        """Write the manifest atomically (with `status` as the run's status when given)."""
        if status is not None:
            self.header["status"] = status
        self.header["updated_at"] = now()
        self.header["counts"] = {"done": 0, "skipped": 0, "pending": 0, **self.counts(), "inputs": len(self.entries)}
        _save(self.path, {**self.header, "entries": self.entries})

    def describe(self) -> str:
        """'psp on peeps, 3 of 8 images done'."""
        c = self.counts()
        return (f"{self.header.get('method')} on {self.header.get('domain')}, {c.get('done', 0)} of "
                f"{len(self.entries)} image(s) done")

    def is_finished(self, entry: dict[str, Any] | None, image_sha256: str, method: str, options: dict[str, Any],
                    method_version: str) -> bool:
        """Whether `entry` holds a finished result for this image and method: status done, both files present, and
        the saved inversion made by the same method, version and options from an image with this sha256."""
        from ..inversion import read_inversion_metadata

        if not entry or entry.get("status") != "done":
            return False
        inv_path, png = self.out_dir / entry.get("inversion", ""), self.out_dir / entry.get("reconstruction", "")
        if not inv_path.is_file() or not png.is_file():
            return False
        try:
            meta = read_inversion_metadata(inv_path)
        except ZooError:
            return False
        sources = meta.get("sources") or [{}]
        prov = meta.get("provenance") or {}
        return (meta.get("method") == method and meta.get("options") == options
                and str(prov.get("method_version")) == str(method_version)
                and sources[0].get("image_sha256") == image_sha256)


@dataclass
class EditManifest:
    """The manifest of a `zoo edit` output folder: entries merged over runs, keyed by strip file."""

    out_dir: Path
    data: dict[str, Any]

    @classmethod
    def open(cls, out_dir: Path) -> EditManifest:
        """The folder's edit manifest, or a new one. InputError when the folder holds a `zoo invert` run."""
        data = read_manifest(out_dir)
        if data is not None and data.get("kind") != EDIT_KIND:
            raise InputError(f"--out {out_dir} holds a `{data.get('kind')}` run (manifest.json); write edits to "
                             "another folder")
        return cls(Path(out_dir), data or {"kind": EDIT_KIND, "version": MANIFEST_VERSION, "created_at": now(),
                                           "entries": []})

    def add(self, entries: list[dict[str, Any]]) -> None:
        """Add or replace (same strip file) entries and write the manifest atomically."""
        new = {e["strip"] for e in entries}
        self.data["entries"] = [e for e in self.data.get("entries", []) if e.get("strip") not in new] + entries
        self.data["updated_at"] = now()
        _save(self.out_dir / MANIFEST, self.data)
