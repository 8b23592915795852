"""The third-party example plugin: pip-installed, found through its entry point, inverts with a tiny generator.

Installing modifies the test virtualenv (the plugin stays installed afterwards).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import zoo
from zoo import plugins, registry
from zoo.cards import Card, WeightSpec
from zoo.domain import Domain
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import LoadedGenerator

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zoo-example-plugin"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pip") is None, reason="pip is not available")


class TinyRandomDomain(Domain):
    """A randomly initialised 16x16 StyleGAN2 (w_dim 32): weight-free, fast on CPU."""

    name = "tiny_random"
    resolution = 16
    card = Card(title="Tiny random StyleGAN2 (tests)")

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return {}

    def generator(self, device: str | torch.device = "cpu") -> LoadedGenerator:
        key = str(torch.device(device))
        if key not in self._generators:
            torch.manual_seed(0)
            g = Generator(16, 32, 2, channels={4: 16, 8: 16, 16: 8}).eval().requires_grad_(False).to(device)
            self._generators[key] = LoadedGenerator(g, g.mean_latent(256)[0], source_format="zoo")
        return self._generators[key]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(1)
        return torch.rand(limit or 4, 3, 16, 16, generator=gen) * 2 - 1


class TinyDomainPlugin:
    @zoo.hookimpl
    def register_domains(self, register: Any) -> None:
        register(TinyRandomDomain)


@pytest.fixture(scope="module")
def installed() -> None:
    """pip-install the example plugin (no deps, no build isolation: works offline)."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", str(EXAMPLE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    importlib.invalidate_caches()


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZOO_LOAD_PLUGINS": "example"}
    env.pop("ZOO_DISABLE_PLUGINS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_visible_through_entry_point(installed: None) -> None:
    proc = run_python("import json; from zoo.registry import list_inverters; from zoo.plugins import plugin_info; "
                      "print(json.dumps([list_inverters(), plugin_info()]))")
    assert proc.returncode == 0, proc.stderr
    names, info = json.loads(proc.stdout)
    assert "mean_latent" in names
    example = next(p for p in info if p["name"] == "example")
    assert example["distribution"] == "zoo-example-plugin" and example["version"] == "0.1.0"
    assert example["status"] == "loaded" and example["hooks"] == ["register_inverters"]


def test_inverts_with_tiny_generator(installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "example")
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS", raising=False)
    plugins.reset_plugins()
    try:
        with plugins.temporary_plugin(TinyDomainPlugin(), "tiny_domain"):
            assert registry.describe("mean_latent")["plugin"] == "example"
            inverter = registry.create_inverter("mean_latent", batch_size=2)
            domain = registry.get_domain("tiny_random")
            images = domain.images(limit=3)
            inv = inverter.invert(images, domain)
    finally:
        plugins.reset_plugins()
    loaded = domain.generator()
    assert inv.latents.shape == (3, loaded.generator.n_latent, 32)
    assert torch.allclose(inv.latents, loaded.latent_avg.expand_as(inv.latents))
    assert inv.reconstructions.shape == (3, 3, 16, 16) and torch.isfinite(inv.reconstructions).all()
    assert torch.allclose(inv.reconstructions[0], inv.reconstructions[2], atol=1e-5)  # same latent and noise
    assert torch.allclose(inv.render(), inv.reconstructions, atol=1e-5)
    assert inv.seconds.shape == (3,) and (inv.seconds >= 0).all()
    assert inv.method == "mean_latent" and inv.domain is domain


def test_conformance_kit_passes_on_the_example_plugin(installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import testing

    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "example")
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS", raising=False)
    plugins.reset_plugins()
    try:
        from zoo_example_plugin import MeanLatentInverter

        report = testing.check_inverter(MeanLatentInverter, plugin="example")
    finally:
        plugins.reset_plugins()
    assert report["checks"] == ["registration", "card", "shapes_and_ranges", "determinism", "batch_independence"]
    assert report["advice"] == ["MeanLatentInverter: card has no `year`", "MeanLatentInverter: card has no `url`",
                                "MeanLatentInverter: card has no `citation`"]
