"""Plugin loading (entry points, env vars, failures) and the registry built from the plugins' hooks."""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo import plugins, registry
from zoo.cards import Card, WeightSpec
from zoo.domain import Domain
from zoo.errors import DuplicateNameError, PluginLoadError, UnknownNameError
from zoo.inverter import Inverter
from zoo.metric import Metric


# ---------------------------------------------------------------------------------------------------- test plugins
@dataclass(frozen=True)
class DummyOptions:
    steps: int = 3


class DummyInverter(Inverter):
    name = "dummy_psp"
    kind = "encoder"
    latent_space = "W+"
    card = Card(title="A dummy inverter")
    Options = DummyOptions

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Any:
        raise NotImplementedError


class OtherInverter(DummyInverter):
    name = "dummy_e4e"


class DummyMetric(Metric):
    name = "dummy_l1"
    higher_is_better = False
    card = Card(title="L1")

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        return (pred - target).abs().flatten(1).mean(1)


class DummyDomain(Domain):
    name = "dummy_faces"
    resolution = 16
    card = Card(title="Dummy faces")
    created = 0

    def __init__(self) -> None:
        super().__init__()
        DummyDomain.created += 1

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return {"generator": WeightSpec(name="g", filename="g.pt", sha256="ab" * 32)}

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return torch.zeros(limit or 1, 3, 16, 16)


def make_plugin(**hooks: list[Any]) -> SimpleNamespace:
    """A plugin object whose `hook(register)` implementations register the given objects."""
    plugin = SimpleNamespace()
    for hook, objs in hooks.items():
        def impl(register: Any, _objs: tuple = tuple(objs)) -> None:
            for obj in _objs:
                register(obj)

        impl.__name__ = hook
        setattr(plugin, hook, zoo.hookimpl(impl))
    return plugin


class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint (name, value, dist, load)."""

    def __init__(self, name: str, value: str, dist: str = "fake-dist", obj: Any = None) -> None:
        self.name, self.value, self.group, self._obj = name, value, "zoo", obj
        self.dist = SimpleNamespace(name=dist, version="1.2.3")

    def load(self) -> Any:
        return self._obj if self._obj is not None else importlib.import_module(self.value)


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    """Replace the installed `zoo` entry points by a list the test fills; plugin state is reset around the test."""
    fake: list[FakeEntryPoint] = []

    def _entry_points(**kwargs: Any) -> list[FakeEntryPoint]:
        return list(fake) if kwargs.get("group") == "zoo" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points)
    monkeypatch.delenv("ZOO_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS", raising=False)
    plugins.reset_plugins()
    try:
        yield fake
    finally:
        plugins.reset_plugins()


def status(name: str) -> dict[str, Any]:
    return next(p for p in plugins.plugin_info() if p["name"] == name)


# ---------------------------------------------------------------------------------------------------- registry
def test_programmatic_plugin_is_listed_and_created(entry_points: list) -> None:
    plugin = make_plugin(register_inverters=[DummyInverter, OtherInverter], register_metrics=[DummyMetric],
                         register_domains=[DummyDomain])
    with plugins.temporary_plugin(plugin, "dummies"):
        assert registry.list_inverters() == ["dummy_e4e", "dummy_psp"]
        assert registry.list_inverters("*PSP") == ["dummy_psp"]
        assert registry.get_inverter_class("dummy_psp") is DummyInverter
        inv = registry.create_inverter("dummy_psp", steps="7")
        assert inv.options.steps == 7 and inv.device.type == "cpu"
        assert registry.list_metrics() == ["dummy_l1"]
        assert isinstance(registry.create_metric("dummy_l1"), DummyMetric)
        info = registry.describe("dummy_psp")
        assert info["type"] == "inverter" and info["kind"] == "encoder" and info["plugin"] == "dummies"
        assert info["options"][0]["name"] == "steps"
        assert plugins.plugin_info()[0]["hooks"] == ["register_domains", "register_inverters", "register_metrics"]
    assert registry.list_inverters() == []  # unregistering invalidates the cache


def test_domains_are_created_lazily_once(entry_points: list) -> None:
    DummyDomain.created = 0
    with plugins.temporary_plugin(make_plugin(register_domains=[DummyDomain]), "doms"):
        assert registry.list_domains() == ["dummy_faces"]
        assert DummyDomain.created == 0
        d = registry.get_domain("dummy_faces")
        assert registry.get_domain("dummy_faces") is d and DummyDomain.created == 1
        assert registry.describe("dummy_faces")["weights"]["generator"]["sha256"] == "ab" * 32


def test_duplicate_names_name_both_plugins(entry_points: list) -> None:
    with plugins.temporary_plugin(make_plugin(register_inverters=[DummyInverter]), "first_plugin"), \
            plugins.temporary_plugin(make_plugin(register_inverters=[DummyInverter]), "second_plugin"):
        with pytest.raises(DuplicateNameError) as err:
            registry.list_inverters()
    msg = str(err.value)
    assert "first_plugin" in msg and "second_plugin" in msg and "dummy_psp" in msg
    assert "ZOO_DISABLE_PLUGINS=second_plugin" in msg


def test_unknown_name_suggests(entry_points: list) -> None:
    with plugins.temporary_plugin(make_plugin(register_inverters=[DummyInverter]), "dummies"):
        with pytest.raises(UnknownNameError, match="did you mean 'dummy_psp'"):
            registry.get_inverter_class("dummy_pps")
        with pytest.raises(UnknownNameError, match="did you mean 'dummy_psp'"):
            registry.describe("dumy_psp")


def test_invalid_registration_names_the_plugin(entry_points: list) -> None:
    class NoName(DummyInverter):
        name = None  # type: ignore[assignment]

    for bad, expected in [(DummyMetric, "not a subclass of zoo.Inverter"), (NoName, "class attribute `name`")]:
        with plugins.temporary_plugin(make_plugin(register_inverters=[bad]), "sloppy"):
            with pytest.raises(PluginLoadError, match=expected) as err:
                registry.list_inverters()
            assert "plugin 'sloppy'" in str(err.value)


def test_raising_hook_is_recorded_and_others_keep_working(entry_points: list, capsys: Any) -> None:
    def register_inverters(register: Any) -> None:
        raise RuntimeError("weights server down")

    crashing = SimpleNamespace(register_inverters=zoo.hookimpl(register_inverters))
    with plugins.temporary_plugin(crashing, "crashing"), \
            plugins.temporary_plugin(make_plugin(register_inverters=[DummyInverter]), "fine"):
        assert registry.list_inverters() == ["dummy_psp"]
        assert status("crashing")["status"] == "error"
        assert "weights server down" in status("crashing")["error"]
    assert "plugin 'crashing' raised in register_inverters" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- loading
def test_misspelled_hook_is_reported_and_the_rest_works(entry_points: list, capsys: Any) -> None:
    typo = SimpleNamespace(register_inverter=zoo.hookimpl(lambda register: register(OtherInverter)))
    entry_points += [FakeEntryPoint("typo", "typo_mod", obj=typo),
                     FakeEntryPoint("good", "good_mod", obj=make_plugin(register_inverters=[DummyInverter]))]
    assert registry.list_inverters() == ["dummy_psp"]
    info = status("typo")
    assert info["status"] == "failed"
    assert "'register_inverter'" in info["error"] and "did you mean 'register_inverters'" in info["error"]
    assert status("good")["status"] == "loaded"
    err = capsys.readouterr().err
    assert "plugin 'typo' (fake-dist 1.2.3) failed to load" in err and "ZOO_DISABLE_PLUGINS=typo" in err
    # the same mistake through the programmatic API raises at once
    with pytest.raises(PluginLoadError, match="unknown hook 'register_inverter'"):
        plugins.register_plugin(SimpleNamespace(register_inverter=zoo.hookimpl(lambda register: None)), "typo2")
    assert plugins.get_plugin_manager().get_plugin("typo2") is None


def test_import_error_is_reported_by_name(entry_points: list, tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    from zoo.cli import main

    (tmp_path / "zoo_broken_plugin_mod.py").write_text("raise ImportError('needs libfoo >= 2')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_points += [FakeEntryPoint("broken", "zoo_broken_plugin_mod", dist="zoo-broken"),
                     FakeEntryPoint("good", "good_mod", obj=make_plugin(register_inverters=[DummyInverter]))]
    result = CliRunner().invoke(main, ["list", "inverters"])
    assert result.exit_code == 0, result.output
    assert "dummy_psp" in result.stdout
    assert "plugin 'broken' (zoo-broken 1.2.3) failed to load: ImportError: needs libfoo >= 2" in result.stderr
    assert "switch it off with ZOO_DISABLE_PLUGINS=broken" in result.stderr
    result = CliRunner().invoke(main, ["plugins", "--json"])
    rows = {p["name"]: p for p in json.loads(result.stdout)}
    assert rows["broken"]["status"] == "failed" and rows["broken"]["distribution"] == "zoo-broken"
    assert "needs libfoo" in rows["broken"]["error"] and rows["good"]["status"] == "loaded"


def test_disable_and_load_env_vars(entry_points: list, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    entry_points += [FakeEntryPoint("a", "a_mod", dist="zoo-a", obj=make_plugin(register_inverters=[DummyInverter])),
                     FakeEntryPoint("b", "b_mod", dist="zoo-b", obj=make_plugin(register_inverters=[OtherInverter]))]

    def loaded(**env: str) -> list[str]:
        for var in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        plugins.reset_plugins()
        return registry.list_inverters()

    assert loaded() == ["dummy_e4e", "dummy_psp"]
    assert loaded(ZOO_DISABLE_PLUGINS="a") == ["dummy_e4e"]
    assert status("a")["status"] == "disabled" and "ZOO_DISABLE_PLUGINS" in status("a")["note"]
    assert loaded(ZOO_DISABLE_PLUGINS="zoo-b, a") == []  # distribution names work too
    assert loaded(ZOO_LOAD_PLUGINS="b") == ["dummy_e4e"]
    assert loaded(ZOO_LOAD_PLUGINS="") == []
    assert loaded(ZOO_LOAD_PLUGINS="a,nope") == ["dummy_psp"]
    assert "ZOO_LOAD_PLUGINS names 'nope'" in capsys.readouterr().err


def test_programmatic_name_clash_is_an_error(entry_points: list) -> None:
    with plugins.temporary_plugin(make_plugin(), "same"):
        with pytest.raises(PluginLoadError, match="already registered"):
            plugins.register_plugin(make_plugin(), "same")
