"""`zoo bench` on a tiny stand-in domain: outputs, resume, crash safety, image folders, report and compare."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import click
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo import plugins
from zoo.errors import ZooError
from zoo.bench import BenchConfig, ResultCache, WorkUnit, execute_units, load_run, run_bench
from zoo.bench.cache import atomic_write_json, read_json
from zoo.bench.units import image_sha256
from zoo.cards import Card, WeightSpec
from zoo.cli.bench import bench_command, compare_command, report_command
from zoo.cli.group import ZooCLI
from zoo.domain import Domain
from zoo.editor import Editor
from zoo.inversion import Inversion
from zoo.inverter import Inverter
from zoo.metric import Metric
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import LoadedGenerator

try:
    import zoo_metrics
except ImportError:  # source tree before `pip install -e .` picked up the plugin
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    import zoo_metrics

RES = 16


# ---------------------------------------------------------------------------------------------------- stand-ins
class TinyDomain(Domain):
    """A random 16x16 StyleGAN2 with images sampled from it, a fixed random identity net and two scorers."""

    name = "tiny"
    resolution = RES
    card = Card(title="tiny stand-in domain")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        g = Generator(16, 32, 2, channels={4: 16, 8: 16, 16: 8}).eval().requires_grad_(False)
        self.loaded = LoadedGenerator(g, g.mean_latent(256)[0], "zoo")
        self.embed = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2), torch.nn.Flatten(),
                                         torch.nn.Linear(8 * 7 * 7, 16)).eval().requires_grad_(False)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1)
            self.data = {"test": g([torch.randn(10, 32, generator=gen)], randomize_noise=False)[0].clamp(-1, 1),
                         "ood": torch.rand(4, 3, RES, RES, generator=gen) * 2 - 1}

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return {"generator": WeightSpec(name="tiny/g", filename="tiny.pt", sha256="ab" * 32)}

    def generator(self, device: str | torch.device = "cpu") -> LoadedGenerator:
        return self.loaded

    def splits(self) -> list[str]:
        return ["test", "ood"]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return self.data[split][:limit].clone()

    def identity_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        return torch.nn.Sequential(self.embed, torch.nn.Flatten()).to(device)

    def attribute_scorers(self, device: str | torch.device = "cpu") -> dict[str, Any]:
        return {"bright": lambda x: x.mean((1, 2, 3)), "red": lambda x: (x[:, 0] - x[:, 1:].mean(1)).mean((1, 2))}


class Calls:
    """Counts of expensive calls (inversions, metric scores) and a crash switch."""

    invert = 0
    score = 0
    crash_after: int | None = None

    @classmethod
    def reset(cls) -> None:
        cls.invert = cls.score = 0
        cls.crash_after = None


class TinyEncoder(Inverter):
    """latent_avg + a fixed linear map of the 4x4-pooled image (batchable). Like an encoder with batch statistics,
    its output depends on the other images of the batch: a resumed run must recompute the very same batches."""

    name = "tiny_enc"
    kind = "encoder"
    latent_space = "W"
    card = Card(title="tiny encoder")

    @torch.no_grad()
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        Calls.invert += 1
        if Calls.crash_after is not None and Calls.invert > Calls.crash_after:
            raise RuntimeError("simulated crash")
        x = self.check_images(images, domain)
        loaded = self.prepare(domain)
        start = self.clock()
        proj = torch.linspace(-1, 1, 48 * 32).reshape(48, 32) * 0.05
        w = loaded.latent_avg + F.adaptive_avg_pool2d(x, 4).flatten(1) @ proj
        w = w + 0.05 * w.mean(0, keepdim=True)  # batch dependence
        latents = w[:, None].repeat(1, loaded.generator.n_latent, 1)
        img, _ = loaded.generator([latents], input_is_latent=True, randomize_noise=False)
        seconds = torch.full((len(x),), (self.clock() - start) / len(x))
        return Inversion(latents, img, seconds, method=self.name, domain=domain)


@dataclass(frozen=True)
class OptOptions:
    steps: int = field(default=3, metadata={"help": "gradient steps"})


class TinyOptimizer(Inverter):
    """A few gradient steps on W+ from latent_avg (one image at a time)."""

    name = "tiny_opt"
    kind = "optimization"
    latent_space = "W+"
    card = Card(title="tiny optimiser")
    Options = OptOptions

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"steps": 2}

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        Calls.invert += 1
        x = self.check_images(images, domain)
        g = self.prepare(domain).generator
        start = self.clock()
        w = self.prepare(domain).latent_avg.reshape(1, 1, -1).repeat(len(x), g.n_latent, 1).clone().requires_grad_()
        for _ in range(self.options.steps):  # plain gradient steps (torch.optim's first use is slow to import)
            loss = (g([w], input_is_latent=True, randomize_noise=False)[0] - x).pow(2).mean()
            (grad,) = torch.autograd.grad(loss, [w])
            with torch.no_grad():
                w -= 0.5 * grad
        with torch.no_grad():
            img = g([w], input_is_latent=True, randomize_noise=False)[0]
        seconds = torch.full((len(x),), (self.clock() - start) / len(x))
        return Inversion(w.detach(), img, seconds, method=self.name, domain=domain)


class TinyEditor(Editor):
    """Moves W+ along fixed random directions 'bright' (matches a scorer) and 'tilt' (measured by all)."""

    name = "tiny_shift"
    card = Card(title="tiny editor")

    def directions(self, domain: Domain) -> list[str]:
        return ["bright", "tilt"]

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        d = torch.Generator().manual_seed(7 if direction == "bright" else 8)
        return latents + 0.5 * step * torch.randn(latents.shape[-1], generator=d)


class CountedL2(zoo_metrics.L2):
    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        Calls.score += 1
        return super().score(pred, target, domain)


class SmallMSSSIM(zoo_metrics.MSSSIM):
    """MS-SSIM at 176x176 (the smallest size with 5 scales of an 11x11 window) to keep the tests fast."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        super().__init__(device, size=176)


class NeverMetric(Metric):
    """Weights 'missing': must be reported unavailable and never computed."""

    name = "never"
    higher_is_better = True
    card = Card(title="never")

    def unavailable_reason(self, domain: Domain | None = None) -> str | None:
        return "weights missing: run `zoo weights`"

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        raise AssertionError("an unavailable metric was computed")


class BenchPlugin:
    metrics: ClassVar[tuple[type, ...]] = (CountedL2, SmallMSSSIM, zoo_metrics.IdentitySimilarity, NeverMetric)

    def __init__(self) -> None:
        self.domain = TinyDomain()

    @zoo.hookimpl
    def register_inverters(self, register: Any) -> None:
        register(TinyEncoder)
        register(TinyOptimizer)

    @zoo.hookimpl
    def register_editors(self, register: Any) -> None:
        register(TinyEditor)

    @zoo.hookimpl
    def register_metrics(self, register: Any) -> None:
        for cls in self.metrics:
            register(cls)

    @zoo.hookimpl
    def register_domains(self, register: Any) -> None:
        register(self.domain)


@pytest.fixture(scope="module")
def tiny_plugin() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_LOAD_PLUGINS", "")
        plugins.reset_plugins()
        try:
            with plugins.temporary_plugin(BenchPlugin(), "bench_test_plugin"):
                yield
        finally:
            plugins.reset_plugins()


@pytest.fixture(autouse=True)
def _calls() -> None:
    Calls.reset()


def config(out: Path, **kw: Any) -> BenchConfig:
    base = dict(domains=["tiny"], limit=6, steps=[-1.0, 0.0, 1.0], out=str(out), batch_size=4, timing_images=3,
                throughput_batch=4, device="cpu", progress=False, threads=1)
    return BenchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def first_run(tiny_plugin: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    Calls.reset()
    return run_bench(config(tmp_path_factory.mktemp("run") / "a"), log=lambda line: None)


def cli() -> click.Group:
    group = ZooCLI("zoo")
    for cmd in (bench_command, report_command, compare_command):
        group.add_command(cmd)
    return group


def comparable(results: dict[str, Any]) -> list[Any]:
    """Aggregates with floats rounded to 6 significant digits (batch composition may differ in the last bits)."""
    def rounded(v: Any) -> Any:
        return float(f"{v:.6g}") if isinstance(v, float) else v

    return [[{k: rounded(v) for k, v in a.items()} for a in results[part]]
            for part in ("aggregates", "edit_aggregates")]


# ---------------------------------------------------------------------------------------------------- tests
def test_run_writes_every_output_with_every_metric(first_run: Any) -> None:
    r = first_run.results
    assert r["schema_version"] == 1 and r["zoo_version"] == zoo.__version__ and not r["failures"]
    assert {"python", "torch", "device", "threads", "platform"} <= set(r["env"])
    assert set(r["methods"]) == {"tiny_enc", "tiny_opt"} and r["methods"]["tiny_opt"]["options"] == {"steps": 3}
    assert r["methods"]["tiny_enc"]["weights_sha256"]["tiny"] == {"generator": "ab" * 32}
    for method in ("tiny_enc", "tiny_opt"):
        for split, n in (("test", 6), ("ood", 4)):
            got = {a["metric"]: a for a in r["aggregates"] if a["method"] == method and a["split"] == split}
            assert set(got) == {"l2", "ms_ssim", "id", "never"}
            for m in ("l2", "ms_ssim", "id"):  # ms_ssim is NaN (dropped) where a contrast term is negative
                assert got[m]["status"] == "ok" and 1 <= got[m]["n"] <= n and got[m]["n_expected"] == n
            assert got["l2"]["n"] == got["id"]["n"] == n and got["l2"]["stderr"] > 0
            assert got["never"]["status"] == "unavailable" and "zoo weights" in got["never"]["reason"]
    timing = {t["method"]: t for t in r["timing"]}
    assert timing["tiny_enc"]["latency"]["n"] == 2 and timing["tiny_enc"]["throughput"]["measured"]
    assert timing["tiny_opt"]["throughput"]["measured"] is False and timing["tiny_opt"]["threads"] >= 1
    ids = [e for e in r["edit_aggregates"] if e["measure"] == "id" and e["step"] == 0.0]
    assert len(ids) == 4 and all(e["mean"] == pytest.approx(1.0, abs=1e-3) for e in ids)  # 2 methods x 2 dirs
    attrs = {(e["direction"], e["scorer"]) for e in r["edit_aggregates"] if e["measure"] == "attribute"}
    assert attrs == {("bright", "bright"), ("tilt", "bright"), ("tilt", "red")}  # matching scorer, else all
    assert all(e["split"] == "test" for e in r["edit_aggregates"])

    run_dir = first_run.run_dir
    md = (run_dir / "leaderboard.md").read_text()
    assert "l2 ↓" in md and "ms_ssim ↑" in md and "id ↑" in md and "time (s) ↓" in md and "## tiny / ood" in md
    csv = (run_dir / "leaderboard.csv").read_text().splitlines()
    assert csv[0].startswith("domain,split,method,id,id_stderr,id_n,ms_ssim,ms_ssim_stderr,ms_ssim_n") and len(csv) == 5
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 6 and "tiny_opt" in html
    rows = [json.loads(line) for line in (run_dir / r["rows_path"]).read_text().splitlines()]
    assert sum(row["kind"] == "reconstruction" for row in rows) == 20
    assert load_run(run_dir / "results.json")[0]["run_id"] == r["run_id"]


def test_rerun_same_out_recomputes_nothing(first_run: Any) -> None:
    again = run_bench(config(first_run.run_dir, report=False), log=lambda line: None)
    assert Calls.invert == 0 and Calls.score == 0
    assert comparable(again.results) == comparable(first_run.results)
    assert again.results["timing"] == first_run.results["timing"]


def _scores(rows: str) -> list[Any]:
    """Per-image scores and edit measures of rows.jsonl (everything but times)."""
    return [{k: v for k, v in json.loads(line).items() if "second" not in k and "time" not in k and k != "batch_size"}
            for line in rows.splitlines()]


parts = ("aggregates", "edit_aggregates")


def test_crash_midway_then_resume_gives_identical_aggregates(first_run: Any, tmp_path: Path) -> None:
    Calls.crash_after = 1  # the encoder's second invert call dies: only its first batch of 4 was saved
    out = tmp_path / "b"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_bench(config(out, fail_fast=True), log=lambda line: None)
    assert not (out / "results.json").exists()
    cache = ResultCache(out / "cache")
    keys = list(cache.keys())
    assert len(keys) == 4
    torn = cache.json_path(keys[0])
    torn.write_text(torn.read_text()[:40])  # a torn record (as if written without the atomic rename)
    (torn.parent / f".{torn.name}.123.tmp").write_text("{")  # a stray temporary file
    assert cache.load(keys[0]) is None
    Calls.reset()
    resumed = run_bench(config(out, report=False), log=lambda line: None)
    assert not resumed.failures
    assert Calls.invert > 0  # exact: fixed batch blocks make the records independent of where the run stopped
    assert [resumed.results[p] for p in parts] == [first_run.results[p] for p in parts]
    rows = [(first_run.run_dir / "rows.jsonl").read_text(), (out / "rows.jsonl").read_text()]
    assert [_scores(r) for r in rows] == [_scores(rows[0])] * 2


def test_missing_metrics_and_edits_are_completed_without_inverting_again(first_run: Any, tmp_path: Path) -> None:
    out = tmp_path / "c"
    small = dict(limit=2, ood=False, report=False)
    run_bench(config(out, metrics=["l2"], editors=[], **small), log=lambda line: None)
    Calls.reset()
    patched = run_bench(config(out, metrics=["l2", "id"], **small), log=lambda line: None)
    assert Calls.invert == 0  # metrics from the cached reconstructions, edits rendered from the cached latents

    def values(run: Any) -> dict[tuple, Any]:
        rows = [json.loads(line) for line in (run.run_dir / "rows.jsonl").read_text().splitlines()]
        return {(r["kind"], r["index"], r.get("direction"), r.get("step")): (r.get("id"), r.get("attr.bright"))
                for r in rows if r["method"] == "tiny_enc" and r["split"] == "test" and r["index"] < 2}
    Calls.reset()
    fresh = run_bench(config(tmp_path / "fresh", metrics=["l2", "id"], **small), log=lambda line: None)
    new, old = values(patched), values(fresh)
    assert len(new) == 2 * (1 + 2 * 3)
    for k, v in new.items():
        for a, b in zip(v, old[k]):
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-5, abs=1e-6), k


def test_failing_method_is_recorded_and_the_others_still_run(tiny_plugin: Any, tmp_path: Path) -> None:
    Calls.crash_after = 0
    result = CliRunner().invoke(cli(), ["bench", "--domains", "tiny", "--limit", "2", "--editors", "none",
                                        "--metrics", "l2", "--quick", "--no-ood", "--threads", "1", "--no-report", "--out",
                                        str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 1
    assert "error: tiny_enc on tiny failed: RuntimeError: simulated crash" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: 1 method run(s) failed (tiny_enc on tiny)")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    l2 = {a["method"]: a for a in results["aggregates"]}
    assert l2["tiny_opt"]["n"] == 2 and results["methods"]["tiny_opt"]["options"] == {"steps": 2}  # quick options
    assert results["failures"][0]["method"] == "tiny_enc" and not results["leaderboard_eligible"]
    assert not (tmp_path / "run" / "report.html").exists()


def test_cache_rejects_tensors_that_do_not_match(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.save("ab" * 32, {"x": 1}, {"reconstruction": torch.zeros(3, 2, 2, dtype=torch.float16)})
    assert cache.load("ab" * 32)["x"] == 1
    cache.tensor_path("ab" * 32).write_bytes(b"garbage")
    assert cache.load("ab" * 32) is None
    atomic_write_json(tmp_path / "f.json", {"a": [1, 2]})
    assert read_json(tmp_path / "f.json") == {"a": [1, 2]} and not list(tmp_path.glob("*.tmp"))


def test_units_run_independently_from_their_description(first_run: Any, tiny_plugin: Any) -> None:
    results = first_run.results
    rows = [json.loads(line) for line in (first_run.run_dir / "rows.jsonl").read_text().splitlines()]
    cache = ResultCache(first_run.run_dir / "cache")
    recs = [cache.load(r["key"]) for r in rows if r["kind"] == "reconstruction" and r["method"] == "tiny_enc"][:4]
    units = [WorkUnit.from_dict(rec["unit"]) for rec in recs]
    assert [u.key for u in units] == [rec["key"] for rec in recs]
    out = execute_units(units, metrics=["l2", "id"], editors=["tiny_shift"], steps=[1.0], edit_splits=["test"],
                        batch_size=4)  # a whole block of the run's batch size: the very same batch
    for rec, new in zip(recs, out):
        assert new["scores"]["l2"]["value"] == rec["scores"]["l2"]["value"]
        assert set(new["edits"]) == {"tiny_shift@1|bright|1", "tiny_shift@1|tilt|1"}
    other = WorkUnit.from_dict({**units[0].to_dict(), "options": {"batch_size": 2}})
    assert other.key != units[0].key and results["config"]["seed"] == 0


def test_image_folder_with_bad_files(tiny_plugin: Any, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (RES, RES, 3), dtype=np.uint8)).save(folder / "a_ok.png")
    Image.fromarray(rng.integers(0, 255, (RES, RES), dtype=np.uint8), "L").save(folder / "b_gray.png")
    Image.fromarray(rng.integers(0, 255, (RES, RES, 4), dtype=np.uint8), "RGBA").save(folder / "c_rgba.png")
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / "d_big.jpg")
    (folder / "e_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli(), ["bench", "--domains", "tiny", "--methods", "tiny_enc", "--images",
                                        str(folder), "--editors", "none", "--metrics", "l2,id", "--out", str(out),
                                        "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    by_file = {name: [line for line in lines if name in line] for name in ("b_gray", "c_rgba", "d_big", "e_corrupt")}
    assert all(len(v) == 1 for v in by_file.values()), lines
    assert "grayscale" in by_file["b_gray"][0] and "composited on white" in by_file["c_rgba"][0]
    assert "resized to 16x16" in by_file["d_big"][0] and by_file["e_corrupt"][0].startswith("skipped:")
    assert not any("a_ok" in line for line in lines)
    results = json.loads((out / "results.json").read_text())
    l2 = next(a for a in results["aggregates"] if a["metric"] == "l2")
    assert l2["split"] == "images" and l2["n"] == 4 and results["inputs"]["n_used"] == 4
    assert f"images: 4 of 5 files in {folder}" in (out / "leaderboard.md").read_text()  # not 'limit 8 per split'


def test_unknown_method_fails_before_any_work(tiny_plugin: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["bench", "--domains", "tiny", "--methods", "tiny_enc,tiny_encc",
                                        "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: unknown inverter 'tiny_encc'; did you mean 'tiny_enc'")
    assert Calls.invert == 0 and not (tmp_path / "x").exists()


def test_report_and_compare(first_run: Any, tmp_path: Path) -> None:
    run_dir = first_run.run_dir
    (run_dir / "report.html").unlink()
    result = CliRunner().invoke(cli(), ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "report.html").exists() and "tiny / test" in result.stdout
    same = CliRunner().invoke(cli(), ["compare", str(run_dir), str(run_dir / "results.json"), "--fail-if-worse", "1"])
    assert same.exit_code == 0, same.output
    worse = json.loads((run_dir / "results.json").read_text())
    for a in worse["aggregates"]:
        if a["metric"] == "l2" and a["method"] == "tiny_enc" and a["split"] == "test":
            a["mean"] *= 1.5
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    result = CliRunner().invoke(cli(), ["compare", str(run_dir), str(tmp_path / "worse.json"), "--fail-if-worse", "5%"])
    assert result.exit_code == 3
    assert "+50.00%" in result.stdout
    assert result.stderr.strip().startswith("Error: 1 metric(s) worse by more than 5%: tiny_enc tiny/test l2")


def test_image_sha_and_quick_config() -> None:
    x = torch.zeros(3, 4, 4)
    assert image_sha256(x) != image_sha256(torch.zeros(3, 2, 8)) and image_sha256(x) == image_sha256(x.clone())
    c = BenchConfig(quick=True, device="cpu", out="o").resolved()
    assert c.limit == 8 and c.steps == [-2.0, 0.0, 2.0] and c.timing_images == 3
    assert BenchConfig(device="cpu", out="o").resolved().steps == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]


def test_invert_and_edit_commands(tiny_plugin: Any, tmp_path: Path) -> None:
    from zoo.cli.invert_cmd import edit_command, invert_command

    group = ZooCLI("zoo")
    group.add_command(invert_command)
    group.add_command(edit_command)
    runner = CliRunner()
    res = runner.invoke(group, ["invert", "tiny_enc", "--domain", "tiny", "--limit", "3", "--out",
                                str(tmp_path / "inv")])
    assert res.exit_code == 0, res.output
    saved = [Inversion.load(p) for p in sorted((tmp_path / "inv").glob("*.inversion.safetensors"))]
    assert [len(s) for s in saved] == [1, 1, 1] and len(list((tmp_path / "inv").glob("*.png"))) == 3
    direction = TinyEditor().directions(TinyDomain())[0]
    res = runner.invoke(group, ["edit", "--method", "tiny_enc", "--direction", f"tiny_shift:{direction}",
                                "--domain", "tiny", "--limit", "2", "--steps", "-1:1", "--out", str(tmp_path / "ed")])
    assert res.exit_code == 0, res.output
    strips = sorted((tmp_path / "ed").glob("*.png"))
    assert len(strips) == 2
    from PIL import Image

    res_px = TinyDomain.resolution
    with Image.open(strips[0]) as im:  # input | reconstruction | 3 steps
        assert im.size[0] > 4 * res_px and im.size[1] < 2 * res_px
    # files: a big RGB image (resized with a warning), grayscale, RGBA, and a file that is not an image
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (3 * res_px, 3 * res_px), (200, 30, 30)).save(src / "big.png")
    Image.new("L", (res_px, res_px), 128).save(src / "grey.png")
    Image.new("RGBA", (res_px, res_px), (0, 0, 255, 100)).save(src / "alpha.png")
    (src / "notes.png").write_text("not an image")
    files = [str(src / n) for n in ("big.png", "grey.png", "alpha.png", "notes.png")]
    res = runner.invoke(group, ["edit", *files, "-m", "tiny_enc", "-d", direction, "--editor", "tiny_shift",
                                "--domain", "tiny", "--steps", "-1,1", "--out", str(tmp_path / "ed_files")])
    assert res.exit_code == 0, res.output
    assert "resized" in res.output and "notes.png" in res.output and "Traceback" not in res.output
    assert len(list((tmp_path / "ed_files").glob("*.png"))) == 3
    res = runner.invoke(group, ["edit", str(src / "notes.png"), "-m", "tiny_enc", "-d", direction, "--domain", "tiny",
                                "--out", str(tmp_path / "ed3")])
    assert res.exit_code == 1 and "Traceback" not in res.output and res.output.strip().splitlines()[-1].startswith(
        "Error:")
    res = runner.invoke(group, ["edit", "-m", "tiny_enc", "-d", "nope", "--domain", "tiny", "--out",
                                str(tmp_path / "ed2")])
    assert res.exit_code == 1 and "unknown direction 'nope'" in res.output and "Traceback" not in res.output
    res = runner.invoke(group, ["edit", "-m", "tiny_enc", "-d", direction, "--domain", "tiny", "--steps", "3:1",
                                "--out", str(tmp_path / "ed4")])
    assert res.exit_code == 2 and "--steps" in res.output


class UntrainedEncoder(TinyEncoder):
    """A method whose weights for the domain are not installed yet."""

    name = "untrained_enc"

    def load(self, domain: Domain) -> Any:
        from zoo.errors import CheckpointError

        raise CheckpointError("no weights for this domain: run `zoo train untrained_enc --domain tiny`")


class UntrainedPlugin:
    @zoo.hookimpl
    def register_inverters(self, register: Any) -> None:
        register(UntrainedEncoder)


def test_method_without_weights_is_reported_unavailable_not_failed(tiny_plugin: Any, tmp_path: Path) -> None:
    with plugins.temporary_plugin(UntrainedPlugin(), "untrained_test_plugin"):
        outcome = run_bench(config(tmp_path / "run", editors=[], metrics=["l2"], limit=2), log=lambda line: None)
        assert not outcome.failures
        assert outcome.results["unavailable_methods"][0]["method"] == "untrained_enc"
        assert "zoo train untrained_enc" in (tmp_path / "run" / "leaderboard.md").read_text()
        with pytest.raises(ZooError, match="zoo train untrained_enc"):  # named explicitly: a failure
            run_bench(config(tmp_path / "run2", methods=["untrained_enc"], editors=[], metrics=["l2"], limit=2,
                             fail_fast=True), log=lambda line: None)


def test_retrained_encoder_does_not_invalidate_other_methods_scores() -> None:
    from types import SimpleNamespace

    from zoo.bench.evaluate import domain_fingerprint

    def fp(**shas: str) -> str:
        weights = {role.replace("__", "/"): WeightSpec(role, "f", sha) for role, sha in shas.items()}
        return domain_fingerprint(SimpleNamespace(weights=weights))  # type: ignore[arg-type]

    base = fp(generator="a" * 64, identity="b" * 64, encoder__psp="c" * 64)
    assert fp(generator="a" * 64, identity="b" * 64, encoder__psp="d" * 64) == base  # units carry encoder shas
    assert fp(generator="a" * 64, identity="e" * 64, encoder__psp="c" * 64) != base  # the ID metric changed


def test_paired_differences_verdicts_follow_metric_direction() -> None:
    import importlib.util

    import pandas as pd

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_differences.py"
    spec = importlib.util.spec_from_file_location("paired_differences", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, 16)
    rows = pd.DataFrame(
        [{"kind": "reconstruction", "split": "test", "method": "a", "index": i, "l2": b - 0.05, "id": b}
         for i, b in enumerate(base)]
        + [{"kind": "reconstruction", "split": "test", "method": "b", "index": i, "l2": b + rng.normal(0, 0.001),
            "id": b + 0.01 * (-1) ** i} for i, b in enumerate(base)])  # mean difference 0
    table = mod.paired_table(rows, [("a", "b")], {"l2": False, "id": True}, "test").set_index("metric")
    assert table.loc["l2", "a is"] == "better" and table.loc["l2", "mean a−b"] < -0.04
    assert table.loc["id", "a is"].startswith("tie")


def test_evaluator_scores_what_a_user_sees_clamped_reconstructions() -> None:
    from zoo.bench.evaluate import Evaluator
    from zoo_metrics.l2 import L2

    domain = TinyDomain()
    target = domain.images("test", limit=2)
    recon = target.clone()
    recon[:, :, :4] = 3.0  # a generator overshooting [-1, 1]
    ev = Evaluator(domain, {"l2": L2()}, {}, [0.0], ["test"])
    raw = ev.score(recon, target, ["l2"])
    clamped = ev.score(recon.clamp(-1, 1), target, ["l2"])
    assert [r["l2"]["value"] for r in raw] == [c["l2"]["value"] for c in clamped]
    assert raw[0]["l2"]["value"] < ((recon - target) ** 2).mean().item()


def test_progress_reaches_a_log_as_plain_lines(tiny_plugin: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_PROGRESS_INTERVAL", "0")  # a line per finished block
    lines: list[str] = []
    run_bench(config(tmp_path / "p", editors=[], metrics=["l2"], limit=2, ood=False, report=False), log=lines.append)
    prog = [line for line in lines if line.startswith("bench: ")]
    assert prog[0] == "bench: method 1/2 tiny_enc on tiny, unit 0/2, elapsed 0s, method ETA ?"
    assert any(p.startswith("bench: method 2/2 tiny_opt on tiny, unit 2/2, elapsed ") for p in prog)
    assert any(p.startswith("bench: method 1/2 tiny_enc on tiny, timing 3 images") for p in prog)
    assert prog[-1].startswith("bench: 2 method run(s) done in ")
    # the CLI with stderr redirected (not a terminal): the same lines, no tqdm bars; -q: none of them
    args = ["bench", "--domains", "tiny", "--limit", "2", "--editors", "none", "--metrics", "l2", "--no-ood",
            "--no-report", "--threads", "1", "--device", "cpu", "--out"]
    res = CliRunner().invoke(cli(), [*args, str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "bench: method 2/2 tiny_opt on tiny, unit 2/2" in res.stderr and "\r" not in res.stderr
    from zoo.cli import main

    quiet = CliRunner().invoke(main, ["-q", *args, str(tmp_path / "q")])
    assert quiet.exit_code == 0, quiet.output
    assert "bench:" not in quiet.stderr and "note:" not in quiet.stderr and "## tiny / test" in quiet.stdout


def test_compare_refuses_to_gate_runs_that_are_not_like_with_like(first_run: Any, tmp_path: Path) -> None:
    run_dir = first_run.run_dir
    other = json.loads((run_dir / "results.json").read_text())
    other["config"].update(limit=2, quick=True)
    other["domains"]["tiny"]["used_splits"]["test"].update(n=2, data_sha256="0" * 64)
    other["methods"]["tiny_opt"]["options"] = {"steps": 2}
    other["domains"]["tiny"]["evaluation"]["eval_fingerprint"] = "f" * 16
    for a in other["aggregates"]:
        a["mean"] = a["mean"] * 3 if a["mean"] else a["mean"]
    (tmp_path / "other.json").write_text(json.dumps(other))
    res = CliRunner().invoke(cli(), ["compare", str(run_dir), str(tmp_path / "other.json"), "--fail-if-worse", "5"])
    assert res.exit_code == 2  # refused: not the regression exit code 3
    err = res.stderr.strip().splitlines()
    assert err[-1].startswith("Error: --fail-if-worse refused: the runs are not comparable (5 setting(s) differ")
    assert "warning: runs differ: image limit per split (run): A 6, B 2" in err
    assert "warning: runs differ: options (tiny_opt): A {\"steps\": 3}, B {\"steps\": 2}" in err
    assert "number of images (tiny/test): A 6, B 2" in res.stdout and res.stdout.startswith("NOT COMPARABLE")
    shown = CliRunner().invoke(cli(), ["compare", str(run_dir), str(tmp_path / "other.json"), "--json"])
    data = json.loads(shown.stdout)
    assert shown.exit_code == 0 and data["comparable"] is False and len(data["differences"]) == 5
    same = CliRunner().invoke(cli(), ["compare", str(run_dir), str(run_dir), "--json"])
    assert json.loads(same.stdout)["comparable"] is True and "warning" not in same.stderr


def test_report_is_navigable_and_its_files_are_readable(first_run: Any, tmp_path: Path) -> None:
    import os
    import stat

    from zoo.bench.report import fmt, render_run

    assert [fmt(-0.00001, 0.00001), fmt(1.0, 0.0), fmt(-0.25, 0.01), fmt(None)] == [
        "0 ± 0", "1.0000 ± 0", "-0.2500 ± 0.0100", "—"]
    old = os.umask(0o022)
    try:
        paths = render_run(first_run.results, tmp_path)
    finally:
        os.umask(old)
    html = paths["html"].read_text()
    assert "<nav><h2>Contents</h2>" in html and 'href="#tiny-test"' in html and 'id="tiny-test"' in html
    n_tables = html.count("<details><summary>tiny/test")
    assert n_tables >= 6 and "-0.0000" not in html and "-0.0000" not in paths["markdown"].read_text()
    pngs = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert "quality_vs_time_tiny_test.png" in pngs and "edits_id_tiny_test.png" in pngs
    assert all((tmp_path / "figures" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    header = paths["csv"].read_text().splitlines()[0]
    assert "↑" not in header and "↓" not in header
    schema = {line.split(",")[0]: line.split(",")[1] for line in paths["csv_schema"].read_text().splitlines()[1:]}
    assert schema["l2"] == "False" and schema["id"] == "True" and schema["time_s"] == "False"
    assert schema["l2_stderr"] == ""
    for p in [*paths.values(), *(tmp_path / "figures").glob("*.png")]:
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    cache_file = next((first_run.run_dir / "cache").glob("??/*.json"))
    assert stat.S_IMODE(cache_file.stat().st_mode) & 0o044  # readable by others as any file (umask permitting)


def test_load_and_cpu_frequency_are_recorded_and_a_busy_machine_flags_timing(
        tiny_plugin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from zoo.bench import results as res

    env = res.environment("cpu")
    assert env["load"]["cores"] >= 1 and "busy" in env["load"] and "cpu_freq" in env
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 60.0, 50.0))  # far more runnable threads than cores
    lines: list[str] = []
    out = run_bench(config(tmp_path / "busy", methods=["tiny_enc"], editors=[], metrics=["l2"], limit=2, ood=False),
                    log=lines.append)
    r = out.results
    assert r["env"]["load"]["busy"] and r["env"]["load"]["load_avg"] == [64.0, 60.0, 50.0]
    assert r["timing_eligible"] is False and r["timing_busy"] == ["tiny_enc on tiny (load 64 on "
                                                                  f"{res.usable_cores()} cores)"]
    assert r["timing"][0]["load_before"]["busy"] and "cpu_freq" in r["timing"][0]
    assert any(line.startswith("warning: the machine is busy (load 64 on") for line in lines)
    assert any(line.startswith("warning: timed tiny_enc on tiny (load 64") for line in lines)
    assert "Timing not leaderboard-eligible" in (tmp_path / "busy" / "leaderboard.md").read_text()


def test_metric_notes_name_the_model_used_on_the_domain(first_run: Any) -> None:
    models = first_run.results["domains"]["tiny"]["evaluation"]["metric_models"]
    assert models["id"].startswith("the 'tiny' domain's own identity embedder") and "not CurricularFace" in models["id"]
    assert "`id` on tiny uses the 'tiny' domain's own identity embedder" in (
        first_run.run_dir / "leaderboard.md").read_text()


def test_compare_lets_a_new_method_version_be_gated(first_run: Any) -> None:
    from zoo.bench.compare import differences

    b = json.loads(json.dumps(first_run.results))
    b["methods"]["tiny_enc"]["version"] = "2"
    diffs = differences(first_run.results, b)
    assert [d["what"] for d in diffs] == ["method version"] and diffs[0]["blocking"] is False
    b["config"]["limit"] = 99
    assert any(d.get("blocking", True) for d in differences(first_run.results, b))


def test_verbose_shows_debug_lines(tiny_plugin: Any, tmp_path: Path) -> None:
    from zoo.cli import main as zoo_main

    res = CliRunner().invoke(zoo_main, ["-v", "bench", "--domains", "tiny", "--limit", "1", "--editors", "none",
                                        "--metrics", "l2", "--quick", "--no-ood", "--methods", "tiny_enc",
                                        "--no-report", "--device", "cpu", "--out", str(tmp_path / "v")])
    assert res.exit_code == 0, res.output
    assert "debug: bench: tiny_enc runs with options" in res.stderr


def test_partly_undefined_metric_says_how_many_images_were_dropped() -> None:
    """MS-SSIM is NaN when a contrast term is negative (official semantics: dropped); the board says so (trial)."""
    from zoo.bench.report import unavailable_notes
    from zoo.bench.results import aggregate_scores

    unit = {"method": "psp", "domain": "peeps", "split": "ood"}
    recs = [{"unit": unit, "scores": {"ms_ssim": {"value": v}, "l2": {"value": 0.1}}}
            for v in (0.2, None, 0.3, None)]
    aggs = aggregate_scores(recs, [("psp", "peeps", "ood", 4)], {"ms_ssim": True, "l2": False}, {})
    by = {a["metric"]: a for a in aggs}
    assert by["ms_ssim"]["n"] == 2 and by["ms_ssim"]["reason"] == "2 of 4 per-image scores undefined (NaN), dropped"
    assert by["l2"]["n"] == 4 and by["l2"]["reason"] is None
    notes = unavailable_notes({"aggregates": aggs}, "peeps")
    assert any("2 of 4" in n and "psp (ood)" in n for n in notes) and any("contrast-structure" in n for n in notes)


def test_compare_lists_a_thread_count_difference_without_blocking() -> None:
    from zoo.bench.compare import differences

    a = {"config": {"limit": 4}, "env": {"threads": 1}}
    b = {"config": {"limit": 4}, "env": {"threads": 2}}
    diff = differences(a, b)
    assert [d["blocking"] for d in diff if d["what"].startswith("torch threads")] == [False]
    assert differences(a, dict(b, env={"threads": 1})) == []
