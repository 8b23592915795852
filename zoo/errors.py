"""Errors shown to users as one line (the CLI maps every ZooError to `Error: <message>` and exit code 1)."""

from __future__ import annotations


class ZooError(Exception):
    """Base class of errors caused by user input or the environment; the message must say how to fix it."""


class UnknownNameError(ZooError, KeyError):
    """An inverter / editor / domain / metric name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""

    @classmethod
    def for_name(cls, kind: str, name: str, known: list[str]) -> UnknownNameError:
        """'unknown inverter 'psq'; did you mean 'psp'? (12 available: zoo list inverters)'."""
        import difflib

        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return cls(f"unknown {kind} '{name}'{hint} ({len(known)} available: {', '.join(sorted(known)[:12])})")


class DuplicateNameError(ZooError):
    """Two plugins registered the same name."""


class CheckpointError(ZooError):
    """A weights file is missing, corrupt, foreign or does not fit the model."""


class PluginLoadError(ZooError):
    """A plugin failed to import or to register."""


class InputError(ZooError):
    """Bad user data (images of the wrong size, unreadable files, ...)."""
