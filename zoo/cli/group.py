"""click groups of the zoo CLI: duplicate-safe command groups, plugin commands, and the top-level error handling."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import click

from .. import log as zlog
from .. import plugins
from ..errors import DuplicateNameError
from .errors import debug_enabled, is_click_error, report


class CommandGroup(click.Group):
    """A click group that refuses to replace an existing command and remembers who added each one."""

    #: while a plugin's `register_commands` runs: (plugin name, list collecting (group, command name))
    _adding: ClassVar[tuple[str, list[tuple[CommandGroup, str]]] | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.origins: dict[str, str] = {}

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        adding = CommandGroup._adding
        owner = adding[0] if adding else "zoo"
        existing = self.commands.get(name) if name else None
        if existing is not None and existing is not cmd:
            first = self.origins.get(name, "zoo")
            first = "the built-in one" if first == "zoo" else f"the one from plugin '{first}'"
            raise DuplicateNameError(f"command '{self.name} {name}' from plugin '{owner}' clashes with {first}")
        super().add_command(cmd, name)
        if name:
            self.origins[name] = owner
            if adding:
                adding[1].append((self, name))


CommandGroup.group_class = CommandGroup  # `@group.group()` inside plugins creates CommandGroups too


class ZooCLI(CommandGroup):
    """The `zoo` group: adds plugin commands lazily (`register_commands`) and reports every error as one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_generation = -1
        self._plugin_commands: dict[str, tuple[Any, list[tuple[CommandGroup, str]]]] = {}

    # ---------------------------------------------------------------- plugin commands
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.sync_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.sync_plugin_commands()
        return super().list_commands(ctx)

    def sync_plugin_commands(self) -> None:
        """Call `register_commands(cli=self)` of every plugin not seen yet; drop commands of removed plugins."""
        if self._plugin_generation == plugins.generation() and self._plugin_generation >= 0:
            return
        impls = plugins.hookimpls("register_commands")  # loads the plugins (may bump the generation)
        live = {i.plugin_name: i.plugin for i in impls}
        for name, (plugin, added) in list(self._plugin_commands.items()):
            if live.get(name) is not plugin:
                _remove(added)
                del self._plugin_commands[name]
        for impl in impls:
            if impl.plugin_name in self._plugin_commands:
                continue
            added: list[tuple[CommandGroup, str]] = []
            CommandGroup._adding = (impl.plugin_name, added)
            try:
                plugins.call_impl(impl, cli=self)
            except Exception as exc:  # noqa: BLE001 - a broken plugin loses its commands, the CLI keeps working
                _remove(added)
                added = []
                plugins.record_hook_failure(impl.plugin_name, "register_commands", exc)
            finally:
                CommandGroup._adding = None
            self._plugin_commands[impl.plugin_name] = (impl.plugin, added)
        self._plugin_generation = plugins.generation()

    # ---------------------------------------------------------------- error handling
    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Run the CLI; in standalone mode every error becomes one `Error: ...` line and a non-zero exit.

        Notes, warnings and progress lines go to stderr through the `zoo` logger at INFO (`zoo -q` / `-v` change the
        level); Python warnings become one line each (zoo/log.py). All of it is undone when the command ends."""
        restore = zlog.configure_cli(0)
        try:
            if not standalone_mode:
                return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            try:
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except Exception as exc:
                if debug_enabled() and not is_click_error(exc):
                    raise
                sys.exit(report(exc))
            sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)
        finally:
            restore()


def _remove(added: list[tuple[CommandGroup, str]]) -> None:
    for group, name in added:
        group.commands.pop(name, None)
        group.origins.pop(name, None)
