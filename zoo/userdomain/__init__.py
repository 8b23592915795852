"""Users' own domains from a `domain.toml`: `parse_domain_file` (the fields), `FileDomain` (a real `Domain`),
`is_domain_file` / `load_domain_file` (what `--domain path/to/domain.toml` goes through)."""

from __future__ import annotations

from .domain import FileDomain, load_direction, load_domain_generator, load_ganspace
from .spec import DomainSpec, parse_domain_file

__all__ = ["DomainSpec", "FileDomain", "is_domain_file", "load_direction", "load_domain_file", "load_domain_generator",
           "load_ganspace", "parse_domain_file"]


def is_domain_file(name: str) -> bool:
    """True when `name` names a domain file (ends in .toml) rather than a registered domain."""
    return str(name).lower().endswith(".toml")


def load_domain_file(path: str) -> FileDomain:
    """The FileDomain of `path` (cached per resolved path and modification time). InputError on a bad file."""
    import os
    from pathlib import Path

    p = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if not p.is_file():
        from ..errors import InputError

        raise InputError(f"domain file not found: {p}")
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = FileDomain.from_file(p)
    return _CACHE[key]


_CACHE: dict[tuple[str, int], FileDomain] = {}
