"""The `zoo` command line (click). One module per command; plugins add commands with `register_commands(cli)`.

Every ZooError or usage error prints one `Error: ...` line on stderr and exits non-zero (ZOO_DEBUG=1 shows
tracebacks of unexpected errors).
"""

from __future__ import annotations

import click

from .. import __version__
from .. import log as zlog
from .adapt_cmd import adapt_command
from .align_cmd import align_command
from .bench import bench_command, compare_command, report_command
from .domain_cmd import domain_group
from .group import CommandGroup, ZooCLI
from .invert_cmd import directions_command, edit_command, invert_command
from .list_cmd import list_command
from .plugins_cmd import plugins_command
from .show_cmd import show_command
from .train_cmd import train_group
from .video_cmd import video_group
from .weights_cmd import weights_command


@click.group("zoo", cls=ZooCLI)
@click.version_option(__version__, "--version", prog_name="zoo", message="%(prog)s %(version)s")
@click.option("-q", "--quiet", count=True, help="Fewer lines on stderr: -q hides notes and progress (warnings and "
              "errors stay), -qq warnings too.")
@click.option("-v", "--verbose", count=True, help="More lines on stderr: debug details and where each warning "
              "was raised.")
def main(quiet: int, verbose: int) -> None:
    """inversion-zoo: StyleGAN inversion methods, editors, domains and metrics from plugins.

    Results go to stdout; notes, warnings and progress to stderr (plain lines when stderr is not a terminal, e.g.
    `zoo bench > log 2>&1`; tqdm bars on a terminal)."""
    zlog.logger.setLevel(zlog.level_for(verbose - quiet))


for _command in (list_command, show_command, plugins_command, train_group, bench_command, report_command,
                 compare_command, weights_command, invert_command, edit_command, directions_command, domain_group,
                 video_group, adapt_command, align_command):
    main.add_command(_command)

__all__ = ["CommandGroup", "ZooCLI", "main"]
