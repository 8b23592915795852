"""Progress lines and log levels (zoo/progress.py, zoo/log.py): plain lines for log files, -q / -v, warnings."""

from __future__ import annotations

import logging
import warnings

import click
import pytest
from click.testing import CliRunner

from zoo import log as zlog
from zoo import plugins
from zoo import progress as zprogress
from zoo.cli.group import ZooCLI


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_lines_name_method_unit_elapsed_and_eta() -> None:
    clock, lines = FakeClock(), []
    p = zprogress.BenchProgress(3, lines.append, every=10, clock=clock)
    p.method("pti", "peeps")
    p.plan(8)
    assert lines == ["bench: method 1/3 pti on peeps, unit 0/8, elapsed 0s, method ETA ?"]
    p.advance(2, computed=False)  # from the cache: done, but not in the rate
    clock.t = 4.0
    p.advance(1)  # 4 s for one computed unit; under the interval: no line
    assert len(lines) == 1
    clock.t = 12.0
    p.advance(1)  # 8 s more: 6 s per unit, 4 units left
    assert lines[-1] == "bench: method 1/3 pti on peeps, unit 4/8, elapsed 12s, method ETA 24s"
    clock.t = 200.0
    p.advance(4)  # the method's last units: always a line
    assert lines[-1].endswith("unit 8/8, elapsed 3m20s, method ETA 0s")
    p.phase("timing 5 images at batch size 1")
    assert lines[-1] == "bench: method 1/3 pti on peeps, timing 5 images at batch size 1, elapsed 3m20s"
    p.method("psp", "peeps")
    p.plan(8)
    clock.t = 300.0
    assert p.line(heartbeat=True).endswith("unit 0/8, elapsed 5m00s, method ETA ?, still on unit 1 (1m40s)")
    assert "\r" not in "".join(lines)
    assert [zprogress.duration(s) for s in (None, 59.4, 61, 7300)] == ["?", "59s", "1m01s", "2h01m"]


def test_bars_follow_terminal_flag_and_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    assert zprogress.bars_enabled(None) is False  # pytest's stderr is not a terminal
    monkeypatch.setattr("sys.stderr", Tty())
    assert zprogress.bars_enabled(None) and not zprogress.bars_enabled(False)
    monkeypatch.setattr(zlog.logger, "level", logging.WARNING)  # zoo -q
    assert not zprogress.bars_enabled(None) and not zprogress.bars_enabled(True)


def _cli() -> click.Group:
    from zoo.cli import main

    @click.command("chatty")
    def chatty() -> None:
        zlog.note("a note")
        zlog.line("warning: a warning")
        zlog.line("bench: method 1/1 x, unit 1/1")
        zlog.debug("a detail")
        warnings.warn_explicit("torch says\nsecond line", UserWarning, "/venv/lib/site-packages/torch/nn/f.py", 7)
        warnings.warn_explicit("torch says\nsecond line", UserWarning, "/venv/lib/site-packages/torch/nn/f.py", 9)
        click.echo("result")

    group = ZooCLI("zoo", params=main.params, callback=main.callback)
    group.add_command(chatty)
    return group


@pytest.mark.parametrize("flags, expected", [
    ([], ["note: a note", "warning: a warning", "bench: method 1/1 x, unit 1/1",
          "warning: UserWarning from torch: torch says"]),
    (["-q"], ["warning: a warning", "warning: UserWarning from torch: torch says"]),
    (["-qq"], []),
    (["-v"], ["note: a note", "warning: a warning", "bench: method 1/1 x, unit 1/1", "debug: a detail",
              "warning: UserWarning from torch: torch says (/venv/lib/site-packages/torch/nn/f.py:7)"]),
])
def test_quiet_and_verbose_map_to_logging_levels(flags: list[str], expected: list[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")  # no plugin commands in this group
    plugins.reset_plugins()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        result = CliRunner().invoke(_cli(), [*flags, "chatty"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "result\n"
    assert result.stderr.splitlines() == expected  # one line per warning, shown once
    assert zlog.logger.level == logging.NOTSET and not zlog.logger.handlers  # undone after the command
    plugins.reset_plugins()


def test_invert_and_edit_count_images_in_plain_lines() -> None:
    clock, lines = FakeClock(), []
    p = zprogress.ItemProgress("invert", 10, lines.append, clock=clock, every=10)
    clock.t = 3.0
    p.advance(2)  # under the interval
    clock.t = 12.0
    p.advance(2)
    clock.t = 30.0
    p.advance(6)  # the last images: always a line
    assert lines == ["invert: 4/10 images, elapsed 12s, ETA 18s", "invert: 10/10 images, elapsed 30s, ETA 0s"]
