"""The lines every command prints on stderr besides its result: `note:` (INFO), `warning:` (WARNING), progress
(INFO) and debug details (DEBUG), all through the `zoo` logger so that one level decides what is shown.

* Library use (no logging configured): a line at or above the `zoo` logger's own level (default INFO) is written
  to stderr as one line (`note: ...`); an application that configures logging (handlers on `zoo` or the root
  logger) receives the records instead, and `logging.getLogger('zoo').setLevel(logging.WARNING)` silences notes.
* The CLI (`zoo -q/-v`): `configure_cli(verbosity)` sets the level (-qq ERROR, -q WARNING, default INFO, -v DEBUG),
  installs one stderr handler (tqdm-safe: lines never break a progress bar) and turns Python warnings, e.g. torch's
  `UserWarning`, into one `warning:` line each (shown once per message; `-v` adds where it was raised).

Prefixes are lower case (`note:`, `warning:`, `error:` for a method that failed while the run goes on); the one
final error of a command is click's `Error: ...` (zoo/cli/errors.py).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("zoo")

LEVELS = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
_PREFIX_LEVEL = (("warning:", logging.WARNING), ("skipped:", logging.WARNING), ("error:", logging.ERROR),
                 ("interrupted", logging.WARNING), ("kept ", logging.WARNING), ("note:", logging.INFO),
                 ("debug:", logging.DEBUG))
_OWN_CODE = (str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "plugins"))


def level_for(verbosity: int) -> int:
    """-2 or less -> ERROR, -1 -> WARNING, 0 -> INFO, 1 or more -> DEBUG."""
    return LEVELS[max(-2, min(1, verbosity))]


def shown(level: int) -> bool:
    """Whether a line of `level` is shown (the `zoo` logger's own level; NOTSET counts as INFO)."""
    return level >= (logger.level or logging.INFO)


def one_line(text: Any) -> str:
    return " ".join(str(text).split())


def write(text: str) -> None:
    """One raw line on the current stderr, above any tqdm bar; never raises (closed streams)."""
    try:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)
    except (OSError, ValueError, ImportError):
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def emit(level: int, text: Any, prefix: str = "") -> None:
    """Log `prefix + text` (made one line) at `level` on the `zoo` logger, or write it to stderr when no logging is
    configured. Lines below the logger's level are dropped."""
    text = one_line(text)
    if not shown(level):
        return
    if logger.handlers or logging.getLogger().handlers:
        logger.log(level, text, extra={"zoo_prefix": prefix})
        return
    write(prefix + text)


def note(text: Any) -> None:
    """`note: <text>` (INFO)."""
    emit(logging.INFO, text, "note: ")


def warn(text: Any) -> None:
    """`warning: <text>` (WARNING)."""
    emit(logging.WARNING, text, "warning: ")


def debug(text: Any) -> None:
    """`debug: <text>` (DEBUG: shown with `zoo -v`)."""
    emit(logging.DEBUG, text, "debug: ")


def info(text: Any) -> None:
    """A plain INFO line (progress)."""
    emit(logging.INFO, text)


def line(text: Any) -> None:
    """A line that carries its own prefix (`warning:` / `skipped:` / `Interrupted` -> WARNING, `error:` -> ERROR,
    `note:` or none -> INFO), logged at that level. What `zoo bench` / `invert` / `edit` print through."""
    text = one_line(text)
    low = text.lower()
    level = next((lv for p, lv in _PREFIX_LEVEL if low.startswith(p)), logging.INFO)
    emit(level, text)


# ---------------------------------------------------------------------------------------------------- the CLI
class _StderrHandler(logging.Handler):
    """The CLI's handler: `prefix + message` on the current stderr (tqdm-safe)."""

    zoo_cli = True

    def emit(self, record: logging.LogRecord) -> None:
        prefix = getattr(record, "zoo_prefix", None)
        if prefix is None:  # a record of another zoo module logged directly
            prefix = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.DEBUG: "debug: "}.get(
                record.levelno, "")
        write(prefix + one_line(record.getMessage()))


def configure_cli(verbosity: int = 0) -> Callable[[], None]:
    """Set the `zoo` logger's level from -q/-v counts, install the stderr handler once and show Python warnings as
    one line each. Returns a function that undoes all of it (the CLI calls it when the command ends)."""
    level, propagate, previous = logger.level, logger.propagate, warnings.showwarning
    logger.setLevel(level_for(verbosity))
    handler = None
    if not any(getattr(h, "zoo_cli", False) for h in logger.handlers):
        handler = _StderrHandler()
        logger.addHandler(handler)
    logger.propagate = False  # the CLI owns stderr: no second copy through a root handler
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line_: str | None = None) -> None:
        text = one_line(str(message).strip().splitlines()[0] if str(message).strip() else category.__name__)
        ours = os.path.abspath(filename).startswith(_OWN_CODE)
        where = f" ({filename}:{lineno})" if logger.level <= logging.DEBUG else ""
        body = text if ours else f"{category.__name__} from {_package(filename)}: {text}"
        if body in seen:
            return
        seen.add(body)
        emit(logging.WARNING, body + where, "warning: ")

    warnings.showwarning = show  # type: ignore[assignment]

    def restore() -> None:
        warnings.showwarning = previous
        logger.propagate = propagate
        logger.setLevel(level)
        if handler is not None:
            logger.removeHandler(handler)

    return restore


def _package(filename: str) -> str:
    """'.../site-packages/torch/nn/functional.py' -> 'torch'; other paths -> the file name."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1].removesuffix(".py")
    return Path(filename).name
