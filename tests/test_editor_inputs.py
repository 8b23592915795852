"""Editor layer ranges are checked against the generator's n_styles; `zoo bench --editors none` says it skipped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import zoo
from zoo import plugins
from zoo.cards import Card, WeightSpec
from zoo.cli.bench import bench_command
from zoo.cli.group import ZooCLI
from zoo.domain import Domain
from zoo.editor import Editor, check_layer_range
from zoo.errors import InputError
from zoo.inversion import Inversion
from zoo.inverter import Inverter
from zoo.registry import create_editor, get_domain
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import LoadedGenerator

try:
    import zoo_metrics
except ImportError:  # source tree before `pip install -e .` picked up the plugin
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    import zoo_metrics


# ------------------------------------------------------------------------------------------ layer ranges (peeps)
@pytest.fixture(scope="module")
def inversion() -> Inversion:
    """Two sampled peeps codes as an inversion: latents [2, n_styles=8, 128]."""
    peeps = get_domain("peeps")
    g = peeps.generator().generator
    with torch.no_grad():
        w = g.style(torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(5)))
        latents = w[:, None].repeat(1, g.n_latent, 1)
        img, _ = g([latents], input_is_latent=True, randomize_noise=False)
    return Inversion(latents, img, torch.zeros(2), method="sampled", domain=peeps)


def test_peeps_generator_has_8_styles(inversion: Inversion) -> None:
    assert inversion.latents.shape[1] == 8


def test_ganspace_range_beyond_the_styles_is_an_input_error(inversion: Inversion) -> None:
    """'pc3@20-25' on a generator with 8 styles used to edit nothing, silently."""
    ed = create_editor("ganspace", n_components=4, n_samples=500)
    msg = r"^ganspace 'pc3@20-25': layer range 20-25 is outside the generator's 8 styles \(n_styles=8: layers 0-7\)$"
    with pytest.raises(InputError, match=msg):
        ed.edit(inversion, "pc3@20-25", 1.0)
    with pytest.raises(InputError, match=msg):
        ed.edit_latents(inversion.latents, "pc3@20-25", 1.0, inversion.domain)
    with pytest.raises(InputError, match=r"layer range 5-9 goes beyond the generator's 8 styles \(n_styles=8"):
        ed.edit(inversion, "pc3@5-9", 1.0)  # edited 5-7 only, silently
    with pytest.raises(InputError, match=r"^ganspace 'pc0@4-2': layer range 4-2 is empty \(reversed"):
        ed.edit(inversion, "pc0@4-2", 1.0)
    assert ed.edit(inversion, "pc3@7-7", 1.0).shape == inversion.reconstructions.shape  # the last layer is fine


@pytest.mark.parametrize("editor", ["ganspace", "interfacegan"])
def test_first_layer_option_beyond_the_styles_is_an_input_error(editor: str, inversion: Inversion) -> None:
    extra: dict[str, Any] = {"n_components": 2, "n_samples": 500} if editor == "ganspace" else {}
    direction = "pc0" if editor == "ganspace" else "smile"
    ed = create_editor(editor, first_layer=20, **extra)
    msg = (rf"^{editor} first_layer=20, last_layer=None: layer range 20-end is outside the generator's 8 styles "
           r"\(n_styles=8: layers 0-7\)$")
    with pytest.raises(InputError, match=msg):
        ed.edit(inversion, direction, 1.0)
    with pytest.raises(InputError, match=msg):
        ed.edit_latents(inversion.latents, direction, 1.0, inversion.domain)
    edited = create_editor(editor, first_layer=6, **extra).edit_latents(inversion.latents, direction, 1.0,
                                                                         inversion.domain)
    changed = (edited - inversion.latents).abs().sum(-1).sum(0) > 0
    assert changed.tolist() == [i >= 6 for i in range(8)]


@pytest.mark.parametrize("editor", ["ganspace", "interfacegan"])
def test_reversed_or_negative_option_ranges_fail_at_construction(editor: str) -> None:
    with pytest.raises(InputError, match=rf"^{editor} first_layer=5, last_layer=2: layer range 5-2 is empty"):
        create_editor(editor, first_layer=5, last_layer=2)
    with pytest.raises(InputError, match=r"layer range -1-end has a negative layer"):
        create_editor(editor, first_layer=-1)


def test_check_layer_range() -> None:
    assert check_layer_range(0, None, 8, "x") == (0, 7)
    assert check_layer_range(2, 4, 8, "x") == (2, 4)
    assert check_layer_range(3, None, None, "x") == (3, None)
    with pytest.raises(InputError, match=r"^x: layer range 8-end is outside the generator's 8 styles"):
        check_layer_range(8, None, 8, "x")


# ------------------------------------------------------------------------------- zoo bench --editors none (tiny)
RES = 16


class _TinyDomain(Domain):
    name = "tiny_noedit"
    resolution = RES
    card = Card(title="tiny domain")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        g = Generator(RES, 32, 2, channels={4: 16, 8: 16, 16: 8}).eval().requires_grad_(False)
        self.loaded = LoadedGenerator(g, g.mean_latent(256)[0], "zoo")
        with torch.no_grad():
            self.data = g([torch.randn(4, 32, generator=torch.Generator().manual_seed(1))],
                          randomize_noise=False)[0].clamp(-1, 1)

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return {"generator": WeightSpec(name="tiny/g", filename="tiny.pt", sha256="ab" * 32)}

    def generator(self, device: str | torch.device = "cpu") -> LoadedGenerator:
        return self.loaded

    def splits(self) -> list[str]:
        return ["test"]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return self.data[:limit].clone()


class _TinyEncoder(Inverter):
    name = "tiny_noedit_enc"
    kind = "encoder"
    latent_space = "W"
    card = Card(title="tiny encoder")

    @torch.no_grad()
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        x = self.check_images(images, domain)
        loaded = self.prepare(domain)
        w = loaded.latent_avg + F.adaptive_avg_pool2d(x, 4).flatten(1) @ (torch.ones(48, 32) * 0.01)
        latents = w[:, None].repeat(1, loaded.generator.n_latent, 1)
        img, _ = loaded.generator([latents], input_is_latent=True, randomize_noise=False)
        return Inversion(latents, img, torch.zeros(len(x)), method=self.name, domain=domain)


class _TinyEditor(Editor):
    name = "tiny_noedit_shift"
    card = Card(title="tiny editor")

    def directions(self, domain: Domain) -> list[str]:
        return ["up"]

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        return latents + step


class _Plugin:
    def __init__(self) -> None:
        self.domain = _TinyDomain()

    @zoo.hookimpl
    def register_inverters(self, register: Any) -> None:
        register(_TinyEncoder)

    @zoo.hookimpl
    def register_editors(self, register: Any) -> None:
        register(_TinyEditor)

    @zoo.hookimpl
    def register_metrics(self, register: Any) -> None:
        register(zoo_metrics.L2)

    @zoo.hookimpl
    def register_domains(self, register: Any) -> None:
        register(self.domain)


@pytest.fixture()
def tiny_plugin() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_LOAD_PLUGINS", "")
        plugins.reset_plugins()
        try:
            with plugins.temporary_plugin(_Plugin(), "editor_inputs_test_plugin"):
                yield
        finally:
            plugins.reset_plugins()


def _cli() -> click.Group:
    group = ZooCLI("zoo")
    group.add_command(bench_command)
    return group


def _bench(tmp_path: Path, *extra: str) -> Any:
    return CliRunner().invoke(_cli(), ["bench", "--domains", "tiny_noedit", "--limit", "2", "--metrics", "l2",
                                       "--quick", "--threads", "1", "--no-report", "--device", "cpu",
                                       "--out", str(tmp_path / "run"), *extra])


def test_bench_editors_none_says_the_sweep_was_skipped(tiny_plugin: Any, tmp_path: Path) -> None:
    res = _bench(tmp_path, "--editors", "none")
    assert res.exit_code == 0, res.output
    assert "editing sweep skipped (--editors none)" in res.stderr
    assert "no editors registered" not in res.stderr and "no editors registered" not in res.stdout


def test_bench_editors_empty_list_is_an_input_error(tiny_plugin: Any, tmp_path: Path) -> None:
    res = _bench(tmp_path, "--editors", " , ")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines()[-1] == (
        "Error: --editors needs editor names (A,B) or 'none' to skip the editing sweep")
