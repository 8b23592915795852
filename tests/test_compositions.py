"""Composed methods `refiner@embedder` (zoo.composition, zoo.refiner): every built-in refiner on a tiny embedder and a
tiny domain, the built-in hybrids pinned to their composed forms, incompatible pairs, the option grammar, the CLI
and the bench's shared embeddings (the embedder runs once per image for every composition that shares it).

The domain is a seeded random 16 px StyleGAN2 (w_dim 32, 6 styles) saved to a file, with randomly initialised tiny
pSp / HyperStyle / IDInvert weights whose metadata name that generator; the embedder stand-in is a W "encoder" (a
fixed linear map of the pooled image, counting its calls). Losses are MSE only (no LPIPS weights needed), steps few.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import zoo
from zoo import plugins, registry
from zoo.bench import BenchConfig, ResultCache, run_bench
from zoo.bench.evaluate import Evaluator
from zoo.bench.units import make_units, run_units
from zoo.cards import Card, WeightSpec, sha256_file
from zoo.composition import ComposedInverter, same_generator
from zoo.domain import Domain
from zoo.errors import CheckpointError, InputError, ZooError
from zoo.inversion import Inversion, TunedWeights, WeightOffsets
from zoo.inverter import Inverter
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import LoadedGenerator, save_generator

try:
    import zoo_optim  # noqa: F401
except ImportError:  # source tree before `pip install -e .` picked up the plugins
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

import zoo_metrics
from zoo_encoders.configs import SmallSizes, build_module, small_config, weight_role
from zoo_encoders.weights_io import save_encoder_file
from zoo_optim.idinvert import EncoderConfig, IDInvertEncoder, IDInvertInverter, save_encoder
from zoo_optim.pti import PTIInverter

RES, W_DIM = 16, 32
TINY = SmallSizes(irse_channels=(4, 8, 8, 16), irse_units=(1, 1, 1, 1), resnet_channels=(4, 8, 8, 16),
                  resnet_units=(1, 1, 1, 1), hyper_z_dim=8, hyper_refine_inner=8, hyper_refine_out=16, hyper_inner=8)
# few steps, MSE only: what each refiner runs in these tests
FAST: dict[str, dict[str, Any]] = {
    "pti": {"steps": 6, "lr": 3e-3, "lpips_weight": 0, "lpips_threshold": 0},
    "optim": {"steps": 8, "mse": 1.0, "lpips_weight": 0, "w_avg_samples": 256},
    "optim_wplus": {"steps": 8, "mse": 1.0, "lpips_weight": 0, "w_avg_samples": 256},
    "idinvert": {"steps": 8, "perceptual_weight": 0},
    "hyperstyle": {"n_iters": 2},
}
REFINERS = tuple(FAST)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ---------------------------------------------------------------------------------------------------- stand-ins
class TinyDomain(Domain):
    """A random 16 px StyleGAN2 saved to `root` (images: its own renders) with tiny pSp / HyperStyle / IDInvert weights
    trained 'for' generator `trained_for` (default: its own sha256)."""

    resolution = RES
    card = Card(title="tiny composition-test domain")

    def __init__(self, root: Path, name: str = "tiny_comp", trained_for: str | None = None) -> None:
        super().__init__()
        self.name = name  # type: ignore[misc]
        torch.manual_seed(0)
        g = Generator(RES, W_DIM, 2, channels={4: 32, 8: 32, 16: 16}).eval()
        with torch.no_grad():
            for rgb in [g.to_rgb1, *g.to_rgbs]:
                rgb.conv.weight.mul_(0.2)  # images inside [-1, 1]
            latent_avg = g.style(torch.randn(256, W_DIM, generator=torch.Generator().manual_seed(1))).mean(0)
            z = torch.randn(12, W_DIM, generator=torch.Generator().manual_seed(2))
            self._images = g([z], randomize_noise=False)[0].clamp(-1, 1)
        root.mkdir(parents=True, exist_ok=True)
        path = save_generator(root / "generator.pt", g, latent_avg) or root / "generator.pt"
        self._weights = {"generator": WeightSpec("tiny/generator", "generator.pt", sha256_file(path), path=str(path))}
        sha = trained_for or self._weights["generator"].sha256
        torch.manual_seed(3)
        slots = g.layer_slots()
        for method in ("psp", "hyperstyle"):
            cfg = small_config(method, g.n_latent, W_DIM, RES, sizes=TINY)
            module = build_module(cfg, slots)
            if method == "hyperstyle":  # the official init gives ~0 offsets; make them visible
                with torch.no_grad():
                    for p in module.shared_weight_hypernet.parameters():
                        p.mul_(20)
            f = save_encoder_file(root / f"{method}.safetensors", module, cfg,
                                  latent_avg.reshape(1, -1).expand(g.n_latent, -1), {"generator_sha256": sha})
            self.add_weights(weight_role(method), f)
        enc = IDInvertEncoder(EncoderConfig(RES, g.n_latent, W_DIM, 8, 16))
        enc.init_output(latent_avg, torch.full((W_DIM,), 0.5))
        self.add_weights("encoder/idinvert", save_encoder(root / "idinvert.safetensors", enc,
                                                          extra={"generator_sha256": sha}))

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return self._weights

    def add_weights(self, role: str, path: Path) -> None:
        self._weights[role] = WeightSpec(f"tiny/{role}", Path(path).name, sha256_file(path), path=str(path))

    def splits(self) -> list[str]:
        return ["test"]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return self._images[:limit].clone()


class Calls:
    invert = 0
    images = 0


class TinyW(Inverter):
    """A W 'encoder': latent_avg + a fixed linear map of the 4x4-pooled image, repeated over the layers (counts its
    calls and images)."""

    name = "tiny_w"
    kind = "encoder"
    latent_space = "W"
    batchable = True
    card = Card(title="tiny W encoder", authors="test", url="https://example.org/tiny")

    @torch.no_grad()
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        Calls.invert += 1
        Calls.images += len(images)
        x = self.check_images(images, domain)
        loaded = self.prepare(domain)
        start = self.clock()
        proj = torch.linspace(-1, 1, 48 * W_DIM).reshape(48, W_DIM) * 0.05
        w = loaded.latent_avg + F.adaptive_avg_pool2d(x, 4).flatten(1) @ proj
        latents = w[:, None].repeat(1, loaded.generator.n_latent, 1)
        img, _ = loaded.generator([latents], input_is_latent=True, randomize_noise=False)
        return Inversion(latents, img, torch.full((len(x),), (self.clock() - start) / len(x)), method=self.name,
                         domain=domain)


class TinyWOther(TinyW):
    """The same encoder for another generator (e.g. an official checkpoint's decoder that is not the domain's)."""

    name = "tiny_w_other"

    def load(self, domain: Domain) -> LoadedGenerator:
        torch.manual_seed(9)
        g = Generator(RES, W_DIM, 2, channels={4: 32, 8: 32, 16: 16}).eval().requires_grad_(False)
        return LoadedGenerator(g, domain.generator().latent_avg, "zoo")


class CompositionPlugin:
    def __init__(self, root: Path) -> None:
        self.domain = TinyDomain(root)

    @zoo.hookimpl
    def register_inverters(self, register: Any) -> None:
        register(TinyW)
        register(TinyWOther)

    @zoo.hookimpl
    def register_domains(self, register: Any) -> None:
        register(self.domain)


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The built-in optim / encoders / metrics plugins plus the tiny domain and embedder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_LOAD_PLUGINS", "optim,encoders,metrics")
        plugins.reset_plugins()
        try:
            plugin = CompositionPlugin(tmp_path_factory.mktemp("tiny_comp"))
            with plugins.temporary_plugin(plugin, "composition_test_plugin"):
                yield plugin.domain
        finally:
            plugins.reset_plugins()


@pytest.fixture(autouse=True)
def _calls() -> None:
    Calls.invert = Calls.images = 0


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).mean((1, 2, 3))


def fast(name: str) -> dict[str, Any]:
    """'refiner.key' options of FAST for `name` = 'refiner@embedder'."""
    return {f"refiner.{k}": v for k, v in FAST[name.split("@")[0]].items()}


# ---------------------------------------------------------------------------------------------------- registry
def test_refiners_register_through_the_hook_with_cards_and_typed_options(domain: Any) -> None:
    assert set(REFINERS) <= set(registry.list_refiners())
    for name in REFINERS:
        cls = registry.get_refiner_class(name)
        card = cls.describe()["card"]
        assert all(card.get(k) for k in ("title", "authors", "year", "url", "citation")), name
        assert dataclasses.is_dataclass(cls.Options) and cls.accepts in ("W", "W+")
    assert registry.find("pti").kind == "inverter"  # the inverter keeps its name; the refiner needs --type
    assert registry.describe("pti", "refiner")["type"] == "refiner"
    info = registry.describe("pti@tiny_w")
    assert info["type"] == "inverter" and (info["refiner"], info["embedder"]) == ("pti", "tiny_w")
    assert "Pivotal Tuning" in info["card"]["title"] and "tiny W encoder" in info["card"]["title"]
    assert len(info["papers"]) == 2 and info["changes_generator"] and info["latent_space"] == "W & weights"
    assert "pti.steps" in [o["name"] for o in info["options"]]
    assert registry.get_inverter_class("pti@optim_wplus@tiny_w").embedder_cls.name == "optim_wplus@tiny_w"


def test_option_grammar_and_configuration(domain: Any) -> None:
    cls = registry.get_inverter_class("pti@tiny_w")
    resolved = cls.configure({"pti.steps": "7", "refiner.lr": "0.002"}, quick=True)
    assert resolved == {"refiner": {**cls.refiner_cls.quick_options(), "steps": "7", "lr": "0.002"}, "embedder": {}}
    inv = registry.create_inverter_for("pti@tiny_w", domain, {"pti.steps": "7"})
    assert inv.options.refiner.steps == 7 and isinstance(inv, ComposedInverter)
    again = cls(json.loads(json.dumps(dataclasses.asdict(inv.options))))  # what results / cache keys record
    assert again.options == inv.options
    with pytest.raises(InputError, match="must name its part: pti.steps or tiny_w.steps"):
        cls.configure({"steps": 3})
    with pytest.raises(InputError, match="pti@tiny_w: refiner 'pti': unknown option 'step'; did you mean 'steps'"):
        cls.configure({"pti.step": 3})
    with pytest.raises(InputError, match="neither the refiner 'pti' nor the embedder 'tiny_w'"):
        cls.configure({"e4e.weights": "x"})


# ---------------------------------------------------------------------------------------------------- refiners
@pytest.mark.parametrize("refiner", REFINERS)
def test_every_refiner_refines_a_tiny_embedding(domain: Any, refiner: str) -> None:
    name = f"{refiner}@tiny_w"
    x = domain.images(limit=3)
    embedding = registry.create_inverter("tiny_w").invert(x, domain)
    inv = registry.create_inverter_for(name, domain, fast(name))
    out = inv.invert(x, domain)
    g = domain.generator().generator
    assert out.method == name and out.latents.shape == (3, g.n_latent, W_DIM)
    assert out.reconstructions.shape == x.shape and torch.isfinite(out.reconstructions).all()
    assert torch.equal(out.extras["embedding_latents"], embedding.latents)  # refined from the embedder's codes
    own = out.seconds - out.extras["embedding_seconds"]
    assert out.seconds.dtype == torch.float64 and bool((own > 0).all())  # embedding + refinement per image
    assert torch.allclose(out.render(), out.reconstructions, atol=1e-5)  # edits render the refined generator
    change = {"pti": TunedWeights, "hyperstyle": WeightOffsets}.get(refiner, type(None))
    assert isinstance(out.change, change)
    if refiner == "optim":
        assert bool((out.latents == out.latents[:, :1]).all())  # still one W code per image
    if refiner == "hyperstyle":
        plain = g([out.latents], input_is_latent=True, randomize_noise=False)[0]
        assert torch.equal(out.latents, embedding.latents) and not torch.allclose(plain, out.reconstructions)
    else:  # optimisations of the MSE: better than where they started
        assert bool((mse(out.reconstructions, x) < mse(embedding.reconstructions, x)).all())


def test_optimisation_refiners_start_from_the_embedding(domain: Any) -> None:
    """0 effective steps (lr 0, no latent noise) leave the embedding's codes and image as they were."""
    x = domain.images(limit=2)
    embedding = registry.create_inverter("tiny_w").invert(x, domain)
    still = {"optim_wplus@tiny_w": {"refiner.lr": 0, "refiner.noise": 0},
             "idinvert@tiny_w": {"refiner.lr": 0}}
    for name, opts in still.items():
        out = registry.create_inverter_for(name, domain, {**fast(name), **opts}).invert(x, domain)
        assert torch.allclose(out.latents, embedding.latents) and \
            torch.allclose(out.reconstructions, embedding.reconstructions, atol=1e-5), name


# ---------------------------------------------------------------------------------------------------- pinned hybrids
def test_idinvert_is_idinvert_at_idinvert_encoder(domain: Any) -> None:
    x = domain.images(limit=3)
    opts = {"steps": 6, "perceptual_weight": 0}
    built_in = IDInvertInverter(opts).invert(x, domain)
    composed = registry.create_inverter("idinvert@idinvert_encoder", {f"idinvert.{k}": v for k, v in opts.items()})
    out = composed.invert(x, domain)
    assert torch.equal(out.latents, built_in.latents) and torch.equal(out.reconstructions, built_in.reconstructions)
    assert torch.equal(out.extras["embedding_latents"], built_in.extras["encoder_latents"])


def test_pti_is_pti_at_optim_with_its_pivot_projection(domain: Any) -> None:
    """PTI's stage 1 is the Karras W projector with PTI's settings: `pti` = `pti@optim` given those settings
    (`PTIInverter.pivot_options`, LPIPS size included)."""
    x = domain.images(limit=2)
    pti = PTIInverter(pivot_steps=5, pivot_lr=0.05, w_avg_samples=256, pivot_mse=1.0, steps=3, lr=3e-3,
                      lpips_weight=0, lpips_threshold=0)
    built_in = pti.invert(x, domain)
    pivot = {**dataclasses.asdict(pti.pivot_options(pti.prepare(domain).perceptual is not None)),
             "lpips_size": pti.options.lpips_size}
    tune = {f.name: getattr(pti.options, f.name) for f in dataclasses.fields(registry.get_refiner_class("pti").Options)}
    composed = registry.create_inverter("pti@optim", {**{f"optim.{k}": v for k, v in pivot.items()},
                                                      **{f"pti.{k}": v for k, v in tune.items()}})
    out = composed.invert(x, domain)
    assert torch.equal(out.latents, built_in.latents) and torch.equal(out.reconstructions, built_in.reconstructions)
    for a, b in zip(out.change.deltas, built_in.change.deltas):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------------- compatibility
def test_incompatible_pairs_are_one_line_errors_before_any_work(domain: Any, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="refiner 'optim' optimises one W code per image, but 'psp' gives W\\+ codes"):
        registry.get_inverter_class("optim@psp")
    with pytest.raises(InputError, match="'pti' changes the generator"):
        registry.get_inverter_class("optim_wplus@pti")
    with pytest.raises(ZooError, match="unknown refiner 'ptii'; did you mean 'pti'"):
        registry.get_inverter_class("ptii@tiny_w")
    # a hypernetwork trained for another generator: refused when the inverter is made for the domain
    other = TinyDomain(tmp_path / "other", name="tiny_comp", trained_for="0" * 64)
    with pytest.raises(InputError, match="hyperstyle@tiny_w: hyperstyle: the hypernetwork hyperstyle.safetensors was "
                                         "trained for generator 000000000000…"):
        registry.create_inverter_for("hyperstyle@tiny_w", other, {})
    with pytest.raises(ZooError, match="trained for generator 000000000000"):
        registry.create_inverter_for("idinvert@tiny_w", other, {})
    assert Calls.invert == 0
    result = CliRunner().invoke(_main(), ["show", "optim@psp"])
    assert result.exit_code == 1 and result.stderr.strip().count("\n") == 0 and "Error: optim@psp" in result.stderr


def test_an_embedder_of_another_generator_is_refused(domain: Any) -> None:
    g = domain.generator().generator
    assert same_generator(g, copy.deepcopy(g)) and not same_generator(g, Generator(RES, W_DIM, 2, channels={
        4: 32, 8: 32, 16: 16}))
    inv = registry.create_inverter_for("pti@tiny_w_other", domain, fast("pti@tiny_w_other"))
    with pytest.raises(CheckpointError, match="pti@tiny_w_other: 'tiny_w_other' gives codes of another generator"):
        inv.invert(domain.images(limit=1), domain)
    assert Calls.invert == 0


# ---------------------------------------------------------------------------------------------------- bench
def test_bench_embeds_each_image_once_for_compositions_sharing_the_embedder(domain: Any, tmp_path: Path) -> None:
    x = domain.images(limit=6)
    evaluator = Evaluator(domain, {"l2": zoo_metrics.L2()}, {}, [], ["test"])
    cache = ResultCache(tmp_path / "cache")
    names = ("pti@tiny_w", "optim_wplus@tiny_w")
    records = {}
    for name in names:
        inv = registry.create_inverter_for(name, domain, fast(name))
        units = make_units(inv, domain, "test", x)
        records[name] = run_units(units, inv, evaluator, images=x, cache=cache, batch_size=4, seed=0)
    assert (Calls.invert, Calls.images) == (2, 6)  # blocks [0-3], [4-5] of the embedder, for both compositions
    direct = registry.create_inverter("tiny_w").invert(x, domain)
    # the stored embedding is the embedder's own bench inversion of each image (same key, same blocks)
    emb_units = make_units(registry.create_inverter("tiny_w"), domain, "test", x)
    stored = [Inversion.load(cache.root / "embeddings" / u.key[:2] / f"{u.key}.inversion.safetensors", domain)
              for u in emb_units]
    assert torch.allclose(torch.cat([s.latents for s in stored]), direct.latents)
    for name in names:  # per-image seconds = the shared embedding's + the refinement's
        assert [r["unit"]["method"] for r in records[name]] == [name] * 6
        assert all("l2" in r["scores"] and r["seconds"] > float(s.seconds[0]) for r, s in zip(records[name], stored))
    # composed in the bench = composed directly (same embedding, same seed)
    inv = registry.create_inverter_for("optim_wplus@tiny_w", domain, fast("optim_wplus@tiny_w"))
    rerun = run_units(make_units(inv, domain, "test", x), inv, evaluator, images=x, cache=ResultCache(tmp_path / "b"),
                      batch_size=4, seed=0)
    assert [r["scores"] for r in rerun] == [r["scores"] for r in records["optim_wplus@tiny_w"]]


def test_zoo_bench_and_invert_take_composition_names(domain: Any, tmp_path: Path) -> None:
    cfg = BenchConfig(methods=["pti@tiny_w", "idinvert@tiny_w"], domains=["tiny_comp"], metrics=["l2"], editors=[],
                      limit=3, out=str(tmp_path / "run"), batch_size=4, timing_images=2, throughput_batch=2,
                      device="cpu", progress=False, threads=1,
                      options={n: fast(n) for n in ("pti@tiny_w", "idinvert@tiny_w")})
    outcome = run_bench(cfg, log=lambda line: None)
    assert not outcome.failures
    methods = outcome.results["methods"]
    assert methods["pti@tiny_w"]["options"]["refiner"]["steps"] == FAST["pti"]["steps"]
    assert methods["pti@tiny_w"]["refiner"] == "pti" and methods["idinvert@tiny_w"]["embedder"] == "tiny_w"
    assert {a["method"] for a in outcome.results["aggregates"]} == {"pti@tiny_w", "idinvert@tiny_w"}
    from zoo.bench.report import leaderboard_frame

    board = leaderboard_frame(outcome.results, "tiny_comp", "test", numeric=False)
    assert list(board["embedding"]) == ["tiny_w", "tiny_w"]  # rows grouped by their embedding
    out = tmp_path / "inv"
    args = ["invert", "pti@tiny_w", "--domain", "tiny_comp", "--limit", "2", "--out", str(out),
            *[w for k, v in FAST["pti"].items() for w in ("-o", f"pti.{k}={v}")]]
    result = CliRunner().invoke(_main(), args)
    assert result.exit_code == 0, result.output
    saved = sorted(out.glob("*.inversion.safetensors"))
    assert len(saved) == 2
    loaded = Inversion.load(saved[0])
    assert loaded.method == "pti@tiny_w" and isinstance(loaded.change, TunedWeights)
    assert loaded.options["refiner"]["steps"] == FAST["pti"]["steps"]
    assert torch.allclose(loaded.render(), loaded.reconstructions, atol=1e-5)


def _main() -> Any:
    from zoo.cli import main

    return main


def test_show_lists_each_parts_options_with_their_sources(domain: Any) -> None:
    from zoo.cli.show_cmd import resolved_option_sources

    rows = {r["name"]: r for r in resolved_option_sources("optim_wplus@tiny_w", domain.name,
                                                          ("optim_wplus.steps=10",), False)}
    assert rows["optim_wplus.steps"]["value"] == 10 and rows["optim_wplus.steps"]["source"] == "user"
    assert rows["optim_wplus.lr"]["source"] == "paper" and all(n.startswith(("optim_wplus.", "tiny_w.")) for n in rows)
