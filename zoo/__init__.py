"""inversion-zoo: a plugin-based zoo of StyleGAN inversion methods with a reproducible benchmark."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .hookspecs import hookimpl

try:
    __version__ = version("inversion-zoo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "hookimpl"]
