"""The one place where the CLI turns exceptions into a single `Error: ...` line and an exit code."""

from __future__ import annotations

import os

import click

from ..errors import ZooError
from ..plugins import one_line

DEBUG_ENV = "ZOO_DEBUG"


def debug_enabled() -> bool:
    """ZOO_DEBUG=1 (or any value but '' / '0'): let exceptions through with their traceback."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def error_line(message: str) -> None:
    """Print `Error: <message>` as one line on stderr."""
    click.echo(f"Error: {' '.join(str(message).split())}", err=True)


def report(exc: Exception) -> int:
    """Print `exc` as one line on stderr and return the exit code (help requested without args: help, 0)."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        click.echo(exc.ctx.get_help())
        return 0
    if isinstance(exc, click.UsageError):
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        error_line(exc.format_message() + hint)
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        error_line(exc.format_message())
        return exc.exit_code
    if isinstance(exc, click.Abort):
        click.echo("Aborted!", err=True)
        return 1
    if isinstance(exc, BrokenPipeError):  # `zoo list | head`
        return 1
    if isinstance(exc, ZooError):
        error_line(str(exc) or type(exc).__name__)
        return 1
    error_line(f"unexpected {one_line(exc)}; run with {DEBUG_ENV}=1 for the traceback")
    return 1


def is_click_error(exc: Exception) -> bool:
    """Usage errors, ClickExceptions and aborts are reported by `report` even under ZOO_DEBUG."""
    return isinstance(exc, (click.ClickException, click.Abort))
