"""The `zoo` CLI: JSON output, one-line errors, plugin commands."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import click
import pytest
import torch
from click.testing import CliRunner, Result

import zoo
from zoo import plugins
from zoo.cards import Card, WeightSpec
from zoo.cli import main
from zoo.domain import Domain
from zoo.editor import Editor
from zoo.errors import CheckpointError
from zoo.inverter import Inverter
from zoo.metric import Metric


@dataclass(frozen=True)
class CliOptions:
    steps: int = field(default=5, metadata={"help": "optimisation steps"})
    lr: float = 0.1


class CliInverter(Inverter):
    name = "cli_optim"
    kind = "optimization"
    latent_space = "W+"
    card = Card(title="Optimise it", year=2020)
    Options = CliOptions

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Any:
        raise NotImplementedError


class CliEditor(Editor):
    name = "cli_shift"
    card = Card(title="Shift")

    def directions(self, domain: Domain) -> list[str]:
        return ["up"]

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        return latents + step


class CliMetric(Metric):
    name = "cli_l2"
    higher_is_better = False
    card = Card(title="L2")

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        return (pred - target).pow(2).flatten(1).mean(1)


class CliDomain(Domain):
    name = "cli_faces"
    resolution = 16
    card = Card(title="Faces")

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return {"generator": WeightSpec(name="g", filename="g.pt", sha256="cd" * 32, size_bytes=2**20)}

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return torch.zeros(1, 3, 16, 16)


class CliPlugin:
    """Registers one of everything, a `zoo train toy` command and a failing `zoo boom` command."""

    @zoo.hookimpl
    def register_inverters(self, register: Any) -> None:
        register(CliInverter)

    @zoo.hookimpl
    def register_editors(self, register: Any) -> None:
        register(CliEditor)

    @zoo.hookimpl
    def register_metrics(self, register: Any) -> None:
        register(CliMetric)

    @zoo.hookimpl
    def register_domains(self, register: Any) -> None:
        register(CliDomain)

    @zoo.hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.commands["train"].command("toy")
        def toy() -> None:
            """Train a toy."""
            click.echo("trained")

        @cli.command("boom")
        @click.option("--kind", default="runtime")
        def boom(kind: str) -> None:
            if kind == "zoo":
                raise CheckpointError("weights 'x' are missing:\nexpected weights/x.pt")
            raise RuntimeError("kaboom\nsecond line")


@pytest.fixture
def cli_plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Only the test plugin is loaded (ZOO_LOAD_PLUGINS=''), unregistered afterwards."""
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    plugins.reset_plugins()
    try:
        with plugins.temporary_plugin(CliPlugin(), "cli_test_plugin"):
            yield
    finally:
        plugins.reset_plugins()


def run(*args: str, **kwargs: Any) -> Result:
    return CliRunner().invoke(main, list(args), **kwargs)


def assert_one_line_error(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"zoo {zoo.__version__}"


def test_list_json(cli_plugin: Any) -> None:
    result = run("list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {(r["type"], r["name"]) for r in rows} == {
        ("inverter", "cli_optim"), ("editor", "cli_shift"), ("domain", "cli_faces"), ("metric", "cli_l2")}
    assert all(r["plugin"] == "cli_test_plugin" for r in rows)
    rows = json.loads(run("list", "inverters", "--json", "--filter", "optim").stdout)
    assert [(r["name"], r["kind"]) for r in rows] == [("cli_optim", "optimization")]
    assert json.loads(run("list", "metrics", "--json", "--filter", "nothing*").stdout) == []


def test_list_table(cli_plugin: Any) -> None:
    result = run("list")
    assert result.exit_code == 0
    assert "Inverters (1)" in result.stdout and "cli_optim" in result.stdout and "Optimise it" in result.stdout
    assert "lower" in run("list", "metrics").stdout


def test_show_json_and_text(cli_plugin: Any) -> None:
    info = json.loads(run("show", "cli_optim", "--json").stdout)
    assert info["type"] == "inverter" and info["plugin"] == "cli_test_plugin"
    assert info["options"] == [{"name": "steps", "type": "int", "default": 5, "help": "optimisation steps"},
                               {"name": "lr", "type": "float", "default": 0.1, "help": ""}]
    domain = json.loads(run("show", "cli_faces", "--json").stdout)
    assert domain["weights"]["generator"]["sha256"] == "cd" * 32
    text = run("show", "cli_faces").stdout
    assert "cd" * 32 in text and "1.0 MiB" in text
    text = run("show", "cli_optim").stdout
    assert "optimisation steps" in text and "latent space: W+" in text


def test_plugins_json(cli_plugin: Any) -> None:
    rows = [r for r in json.loads(run("plugins", "--json").stdout) if r["status"] != "disabled"]
    assert [r["name"] for r in rows] == ["cli_test_plugin"]
    assert rows[0]["status"] == "loaded" and "register_commands" in rows[0]["hooks"]
    assert "cli_test_plugin" in run("plugins").stdout


def test_unknown_name_is_one_line(cli_plugin: Any) -> None:
    line = assert_one_line_error(run("show", "cli_optin"))
    assert "unknown name 'cli_optin'; did you mean 'cli_optim'" in line


def test_usage_errors_are_one_line(cli_plugin: Any) -> None:
    assert "No such command 'lsit'" in assert_one_line_error(run("lsit"), code=2)
    assert "'nope' is not one of" in assert_one_line_error(run("list", "nope"), code=2)


def test_plugin_commands(cli_plugin: Any) -> None:
    result = run("train", "toy")
    assert result.exit_code == 0 and result.stdout == "trained\n"
    assert "toy" in run("train", "--help").stdout


def test_plugin_commands_go_away_with_the_plugin(cli_plugin: Any) -> None:
    assert run("train", "toy").exit_code == 0
    plugins.unregister_plugin("cli_test_plugin")
    assert "No such command 'toy'" in assert_one_line_error(run("train", "toy"), code=2)


def test_zoo_error_and_unexpected_error(cli_plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    line = assert_one_line_error(run("boom", "--kind", "zoo"))
    assert line == "Error: weights 'x' are missing: expected weights/x.pt"
    line = assert_one_line_error(run("boom"))
    assert "unexpected RuntimeError: kaboom second line" in line and "ZOO_DEBUG=1" in line
    monkeypatch.setenv("ZOO_DEBUG", "1")
    result = run("boom")
    assert isinstance(result.exception, RuntimeError)


def test_command_clash_is_reported_not_fatal(cli_plugin: Any, capsys: Any) -> None:
    def register_commands(cli: click.Group) -> None:
        cli.add_command(click.Command("list", callback=lambda: None))

    clash = SimpleNamespace(register_commands=zoo.hookimpl(register_commands))
    with plugins.temporary_plugin(clash, "clash"):
        result = run("list", "inverters")
        assert result.exit_code == 0 and "cli_optim" in result.stdout
        assert "command 'zoo list' from plugin 'clash' clashes with the built-in one" in result.stderr
        info = {p["name"]: p for p in plugins.plugin_info()}["clash"]
        assert info["status"] == "error"
