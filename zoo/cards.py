"""Paper cards and weight specifications (timm-style metadata shown by `zoo show`)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import CheckpointError


@dataclass(frozen=True)
class Card:
    """Where a method / domain / metric comes from."""

    title: str
    authors: str = ""
    year: int | None = None
    url: str = ""
    code_url: str = ""
    citation: str = ""
    licence: str = ""
    notes: str = ""

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}


def cache_dir() -> Path:
    """User cache root: $ZOO_HOME, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo."""
    if os.environ.get("ZOO_HOME"):
        return Path(os.environ["ZOO_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zoo"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class WeightSpec:
    """A weights file: shipped inside a package (`path`), or downloadable (`url`) into the cache, always sha256-checked.

    `resolve()` never downloads when ZOO_OFFLINE=1; downloads are verified before anything reads them.
    """

    name: str
    filename: str
    sha256: str
    path: str | None = None  # absolute path of a file shipped with a package
    url: str | None = None
    licence: str = ""
    size_bytes: int | None = None
    model_card: str | None = None  # path of the model card (Markdown) for shipped weights
    extra: dict = field(default_factory=dict)

    def cached_path(self) -> Path:
        return cache_dir() / "weights" / self.filename

    def resolve(self, override: str | Path | None = None, verify: bool = True) -> Path:
        """Return a verified local path, downloading if allowed; raises CheckpointError with the fix."""
        if override is not None:
            p = Path(override)
            if not p.is_file():
                raise CheckpointError(f"weights file not found: {p}")
            return p  # a user-given file is the user's choice: no sha256 pin
        candidates = [Path(self.path)] if self.path else []
        candidates.append(self.cached_path())
        for p in candidates:
            if p.is_file():
                if verify:
                    self.verify(p)
                return p
        if self.url and os.environ.get("ZOO_OFFLINE") != "1":
            return self.download()
        where = f" or download {self.url}" if self.url else ""
        raise CheckpointError(
            f"weights '{self.name}' are missing: expected {candidates[-1]}{where} (sha256 {self.sha256[:12]}…); "
            "run `zoo weights` to prepare them"
        )

    def verify(self, p: Path) -> None:
        digest = sha256_file(p)
        if digest != self.sha256:
            raise CheckpointError(
                f"{p}: sha256 {digest[:12]}… does not match the registered {self.sha256[:12]}… for '{self.name}' "
                "(corrupt or replaced file; delete it and run `zoo weights`)"
            )

    def download(self) -> Path:  # pragma: no cover - needs the network
        import requests

        dest = self.cached_path()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        with requests.get(self.url, stream=True, timeout=60) as r:
            r.raise_for_status()
            with open(tmp, "wb") as f:
                for block in r.iter_content(1 << 20):
                    f.write(block)
        try:
            self.verify(tmp)
        except CheckpointError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(dest)
        return dest

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v not in (None, "", {})}
        return d
