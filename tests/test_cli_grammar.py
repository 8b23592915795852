"""One CLI grammar: the same step syntax, device default, option forms and message prefixes in every command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pytest

from zoo.bench.config import parse_steps
from zoo.cli import main
from zoo.cli.edit_cmd import parse_steps as cli_steps
from zoo.cli.edit_cmd import unknown_direction
from zoo.errors import InputError
from zoo.options import parse_option_strings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, expected", [
    ("-3..3", [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]),
    ("-3:3", [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]),
    ("-1:1:0.5", [-1.0, -0.5, 0.0, 0.5, 1.0]),
    ("-1..1..0.5", [-1.0, -0.5, 0.0, 0.5, 1.0]),
    ("-2,0,2", [-2.0, 0.0, 2.0]),
    ("0.1:0.3:0.1", [0.1, 0.2, 0.3]),
])
def test_one_step_syntax(text: str, expected: list[float]) -> None:
    assert parse_steps(text) == expected == cli_steps(text)


@pytest.mark.parametrize("bad", ["3:1", "a:b", "-1:1:0", "", "1:2:3:4", "-1000:1000:0.001"])
def test_bad_steps_name_every_form(bad: str) -> None:
    with pytest.raises(InputError, match="LOW:HIGH"):
        parse_steps(bad)
    with pytest.raises(click.BadParameter):
        cli_steps(bad)


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[str, click.Command]]:
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += [(f"{name} {n}", c) for n, c in _commands(cmd, ctx)]
        elif cmd is not None:
            out.append((name, cmd))
    return out


def test_every_device_option_defaults_to_auto() -> None:
    ctx = click.Context(main)
    devices = {name: p.default for name, cmd in _commands(main, ctx) for p in cmd.params if p.name == "device"}
    assert {"bench", "invert", "edit"} <= set(devices)
    assert set(devices.values()) == {"auto"}, devices


def test_quiet_and_verbose_are_top_level_options() -> None:
    names = {opt for p in main.params for opt in p.opts}
    assert {"-q", "--quiet", "-v", "--verbose"} <= names


def test_unknown_direction_suggests_and_lists_every_direction() -> None:
    known = {"interfacegan": ["smile", "glasses"], "stylespace": ["smile", "rotation"], "ganspace": ["pc0", "pc1"]}
    msg = str(unknown_direction("smiel", known, "peeps"))
    assert msg.startswith("unknown direction 'smiel' on peeps; did you mean 'smile'?")
    assert "interfacegan: smile, glasses; stylespace: smile, rotation; ganspace: pc0, pc1" in msg
    assert "did you mean 'stylespace:rotation'?" in str(unknown_direction("stylespace:rotaton", known, "peeps"))


def test_method_options_accept_both_forms() -> None:
    assert parse_option_strings(["pti.steps=3", "lr=0.1"], "pti") == {"steps": "3", "lr": "0.1"}
    with pytest.raises(InputError, match="is for 'psp'"):
        parse_option_strings(["psp.steps=3"], "pti")
    from zoo.cli.bench import _method_options

    assert _method_options(("steps=3",), ["pti"]) == {"pti": {"steps": "3"}}
    with pytest.raises(InputError, match="METHOD.KEY=VALUE"):
        _method_options(("steps=3",), ["pti", "psp"])


def test_run_without_target_lists_every_target() -> None:
    proc = subprocess.run(["bash", str(ROOT / "run")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    targets = [line.split()[1] for line in proc.stdout.splitlines() if line.strip().startswith("./run ")]
    assert targets == ["setup", "test", "bench", "zoo", "help"]
    bad = subprocess.run(["bash", str(ROOT / "run"), "nope"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: unknown target 'nope'") and "setup" in bad.stderr


def test_show_method_on_a_domain_names_each_options_source() -> None:
    from click.testing import CliRunner

    res = CliRunner().invoke(main, ["show", "pti", "--domain", "peeps", "-o", "lr=0.02", "--json"])
    assert res.exit_code == 0, res.output
    import json

    rows = {r["name"]: r for r in json.loads(res.stdout)["resolved_options"]}
    assert rows["lr"] == {"name": "lr", "value": 0.02, "source": "user"}
    assert rows["steps"]["source"] == "embedded" and rows["seed"]["source"] == "paper"
    quick = CliRunner().invoke(main, ["show", "pti", "--domain", "peeps", "--quick", "--json"])
    assert any(r["source"] == "quick" for r in json.loads(quick.stdout)["resolved_options"])
    bad = CliRunner().invoke(main, ["show", "pti", "-o", "lr=1"])
    assert bad.exit_code == 2 and "need --domain" in bad.stderr
