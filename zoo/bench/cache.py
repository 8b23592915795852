"""On-disk per-unit result cache: `<out>/cache/<key[:2]>/<key>.json` (+ `<key>.safetensors`), crash-safe.

Every file is written to a temporary name in the same folder, flushed, fsynced and `os.replace`d into place, so a
`kill -9` leaves either the old file, the new file or a stray `*.tmp`, never a half-written result. The tensor file
is committed before the JSON, and the JSON records the tensor file's sha256: a record whose JSON does not parse or
whose tensors are missing or different is treated as missing (and recomputed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

RECORD_SCHEMA = 1


_umask_lock = threading.Lock()


def file_mode() -> int:
    """The mode a plain `open(path, 'w')` would give a new file: 0o666 minus the umask (0644 with umask 022)."""
    with _umask_lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (tmp file + fsync + os.replace + directory fsync), with the permissions
    of an ordinarily created file (mkstemp's temporary file is 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            with contextlib.suppress(OSError):  # e.g. filesystems without permissions
                os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Pretty JSON (UTF-8, non-ASCII kept) written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any | None:
    """Parsed JSON, or None when the file is missing, torn or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / filesystem
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ResultCache:
    """Unit results by key under `root` (usually `<out>/cache`); timing results under `root/timing`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    def json_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def tensor_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    # ------------------------------------------------------------------ unit records
    def load(self, key: str) -> dict[str, Any] | None:
        """The record of `key`, or None if it is missing, torn, of another schema or its tensors are not intact."""
        record = read_json(self.json_path(key))
        if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA or record.get("key") != key:
            return None
        digest = record.get("tensors_sha256")
        if digest is not None:
            try:
                data = self.tensor_path(key).read_bytes()
            except OSError:
                return None
            if hashlib.sha256(data).hexdigest() != digest:
                return None
        return record

    def load_tensors(self, key: str) -> dict[str, torch.Tensor] | None:
        """The tensors saved with `key` ({'reconstruction': fp16 [3, H, W], 'latents': fp32 [L, D]}) or None."""
        try:
            return st_load(self.tensor_path(key).read_bytes())
        except Exception:  # noqa: BLE001 - missing or torn file
            return None

    def save(self, key: str, record: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Commit tensors (if given) then the JSON record; `record` gets `schema`, `key` and `tensors_sha256`."""
        record = dict(record, schema=RECORD_SCHEMA, key=key)
        if tensors is not None:
            data = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
            atomic_write_bytes(self.tensor_path(key), data)
            record["tensors_sha256"] = hashlib.sha256(data).hexdigest()
            record["tensors"] = self.tensor_path(key).name
        atomic_write_json(self.json_path(key), record)

    def keys(self) -> Iterator[str]:
        """Keys of every record file present (valid or not)."""
        for p in sorted(self.root.glob("??/*.json")):
            yield p.stem

    # ------------------------------------------------------------------ timing records
    def timing_path(self, key: str) -> Path:
        return self.root / "timing" / f"{key}.json"

    def load_timing(self, key: str) -> dict[str, Any] | None:
        record = read_json(self.timing_path(key))
        return record if isinstance(record, dict) and record.get("key") == key else None

    def save_timing(self, key: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.timing_path(key), dict(record, key=key))
