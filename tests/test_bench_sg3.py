"""`zoo bench` on a StyleGAN2 domain and a StyleGAN3 domain with poses (issue 16 item 6), on tiny stand-ins.

`tiny3`: a tiny StyleGAN3-T whose test images are aligned renders of known codes, with known poses; its unaligned
images are the same codes rendered with the pose. `tiny2`: a tiny StyleGAN2 domain whose test images are `tiny3`'s
unaligned images (image 2 changed), so the two are scored against the same images except one. Checked: `tiny3` is
scored in the unaligned frame against `unaligned_images` (and `aligned_*` in the aligned frame), edits are rendered
with the pose, the "StyleGAN2 vs StyleGAN3 (same renders)" section has the right n and sign, an SG2-only method is
unavailable on tiny3 with its reason (also when named), the domain's bench defaults cap the image count, and the
unaligned frame is part of the work units' keys.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

import zoo
from zoo import plugins
from zoo.bench import BenchConfig, run_bench
from zoo.bench.evaluate import Evaluator, round_fp16
from zoo.bench.paired import paired_stats
from zoo.bench.units import make_units
from zoo.cards import Card, WeightSpec
from zoo.domain import Domain
from zoo.editor import Editor
from zoo.inversion import Inversion, render_with_change
from zoo.inverter import Inverter
from zoo.stylegan2 import Generator
from zoo.stylegan2.checkpoints import LoadedGenerator
from zoo.stylegan3.checkpoints import LoadedGenerator as LoadedGenerator3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_files import tiny_sg3_generator  # noqa: E402

try:
    import zoo_metrics
except ImportError:  # source tree before `pip install -e .` picked up the plugin
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    import zoo_metrics

RES, N = 16, 8
POSES = torch.tensor([[10.0, 0.05, -0.03], [-20.0, 0.0, 0.08], [5.0, -0.1, 0.0], [30.0, 0.06, 0.06],
                      [-8.0, -0.04, 0.02], [15.0, 0.1, -0.1], [0.0, 0.0, 0.0], [-30.0, -0.07, 0.05]],
                     dtype=torch.float64)


def _embedder() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 7 * 7, 16)).eval().requires_grad_(False)


class Tiny3(Domain):
    """A tiny StyleGAN3: aligned renders of known codes + their poses (bench_defaults: at most 6 images)."""

    name = "tiny3"
    resolution = RES
    card = Card(title="tiny StyleGAN3 domain with poses")
    bench_defaults: ClassVar[dict[str, Any]] = {"limit": 6}

    def __init__(self) -> None:
        super().__init__()
        g = tiny_sg3_generator().requires_grad_(False)
        self.loaded = LoadedGenerator3(g, g.mapping.w_avg.clone(), "zoo", {})
        z = torch.randn(N, g.z_dim, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            self.ws = g.mapping(z, None)
            self.aligned = g.synthesis(self.ws).clamp(-1, 1)
            self.unaligned = g.synthesis(self.ws, transform=tuple(POSES.T)).clamp(-1, 1)
        self.poses_ = POSES.clone()
        self.embed = _embedder()

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return {"generator": WeightSpec(name="tiny3/g", filename="tiny3.pt", sha256="cd" * 32)}

    def generator(self, device: str | torch.device = "cpu") -> Any:
        return self.loaded

    def splits(self) -> list[str]:
        return ["test"]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return self.aligned[:limit].clone()

    def poses(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return self.poses_[:limit].clone()

    def unaligned_images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return self.unaligned[:limit].clone()

    def identity_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        return self.embed.to(device)

    def attribute_scorers(self, device: str | torch.device = "cpu") -> dict[str, Any]:
        return {"bright": lambda x: x.mean((1, 2, 3))}

    def edit_region(self, direction: str, device: str | torch.device = "cpu") -> torch.Tensor | None:
        """The left half (an aligned-frame mask, as peeps3's)."""
        mask = torch.zeros(RES, RES, device=device)
        mask[:, : RES // 2] = 1
        return mask

    def true_latents(self, images: torch.Tensor) -> torch.Tensor:
        """The codes of `images` (aligned renders of this domain) [B, num_ws, w_dim]."""
        d = (images[:, None] - self.aligned[None]).abs().flatten(2).amax(2)  # [B, N]
        return self.ws[d.argmin(1)]


class Tiny2(Domain):
    """A tiny StyleGAN2 whose test images are tiny3's unaligned images, except image 2 (brightened)."""

    name = "tiny2"
    resolution = RES
    card = Card(title="tiny StyleGAN2 domain on the same renders")

    def __init__(self, unaligned: torch.Tensor) -> None:
        super().__init__()
        torch.manual_seed(0)
        g = Generator(RES, 32, 2, channels={4: 16, 8: 16, 16: 8}).eval().requires_grad_(False)
        self.loaded = LoadedGenerator(g, g.mean_latent(256)[0], "zoo")
        self.data = unaligned.clone()
        self.data[2] = (self.data[2] + 0.5).clamp(-1, 1)
        self.embed = _embedder()

    @property
    def weights(self) -> dict[str, WeightSpec]:
        return {"generator": WeightSpec(name="tiny2/g", filename="tiny2.pt", sha256="ef" * 32)}

    def generator(self, device: str | torch.device = "cpu") -> LoadedGenerator:
        return self.loaded

    def splits(self) -> list[str]:
        return ["test"]

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        return self.data[:limit].clone()

    def identity_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        return self.embed.to(device)

    def attribute_scorers(self, device: str | torch.device = "cpu") -> dict[str, Any]:
        return {"bright": lambda x: x.mean((1, 2, 3))}


def _n_ws(g: Any) -> int:
    return g.num_ws if hasattr(g, "num_ws") else g.n_latent


class MeanW(Inverter):
    """latent_avg for every image, on both generator families (batchable)."""

    name = "meanw"
    kind = "encoder"
    latent_space = "W"
    card = Card(title="mean latent")
    generators = ("stylegan2", "stylegan3")

    def codes(self, x: torch.Tensor, domain: Domain, loaded: Any) -> torch.Tensor:
        return loaded.latent_avg.reshape(1, 1, -1).repeat(len(x), _n_ws(loaded.generator), 1)

    @torch.no_grad()
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        x = self.check_images(images, domain)
        loaded = self.prepare(domain)
        ws = self.codes(x, domain, loaded)
        img = render_with_change(loaded.generator, ws, None)
        return Inversion(ws, img, torch.zeros(len(x)), method=self.name, domain=domain)


class Oracle(MeanW):
    """The true codes where the domain knows them (tiny3: exact reconstructions), else latent_avg (tiny2)."""

    name = "oracle"

    def codes(self, x: torch.Tensor, domain: Domain, loaded: Any) -> torch.Tensor:
        true = getattr(domain, "true_latents", None)
        return true(x) if callable(true) else super().codes(x, domain, loaded)


class SG2Only(MeanW):
    name = "sg2only"
    generators = ("stylegan2",)


class Shift(Editor):
    name = "shift"
    card = Card(title="shift")

    def directions(self, domain: Domain) -> list[str]:
        return ["bright"]

    def edit_latents(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> torch.Tensor:
        return latents + step * direction_of(latents.shape[-1])


def direction_of(dim: int) -> torch.Tensor:
    return 0.8 * torch.randn(dim, generator=torch.Generator().manual_seed(7))


class Plugin:
    def __init__(self) -> None:
        self.tiny3 = Tiny3()
        self.tiny2 = Tiny2(self.tiny3.unaligned)

    @zoo.hookimpl
    def register_inverters(self, register: Any) -> None:
        for cls in (MeanW, Oracle, SG2Only):
            register(cls)

    @zoo.hookimpl
    def register_editors(self, register: Any) -> None:
        register(Shift)

    @zoo.hookimpl
    def register_metrics(self, register: Any) -> None:
        register(zoo_metrics.L2)
        register(zoo_metrics.IdentitySimilarity)

    @zoo.hookimpl
    def register_domains(self, register: Any) -> None:
        register(self.tiny2)
        register(self.tiny3)


@pytest.fixture(scope="module")
def plugin() -> Any:
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_LOAD_PLUGINS", "")
        plugins.reset_plugins()
        p = Plugin()
        try:
            with plugins.temporary_plugin(p, "bench_sg3_test_plugin"):
                yield p
        finally:
            plugins.reset_plugins()


def config(out: Path, **kw: Any) -> BenchConfig:
    base = dict(domains=["tiny2", "tiny3"], metrics=["l2", "id"], steps=[0.0, 1.0], out=str(out), batch_size=4,
                timing_images=2, throughput_batch=2, device="cpu", progress=False, threads=1)
    return BenchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run(plugin: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return run_bench(config(tmp_path_factory.mktemp("sg3") / "run"), log=lambda line: None)


def rows(run: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run.run_dir / "rows.jsonl").read_text().splitlines()]


def recon_rows(run: Any, method: str, domain: str) -> dict[int, dict[str, Any]]:
    return {r["index"]: r for r in rows(run) if r["kind"] == "reconstruction" and r["method"] == method
            and r["domain"] == domain}


# ---------------------------------------------------------------------------------------------------- tests
def test_posed_domain_is_scored_in_the_unaligned_frame(plugin: Any, run: Any) -> None:
    assert not run.failures
    t3 = plugin.tiny3
    g = t3.loaded.generator
    mine = recon_rows(run, "meanw", "tiny3")
    assert sorted(mine) == list(range(6))  # tiny3's bench_defaults: 6 images (tiny2 gets the default 8)
    assert len(recon_rows(run, "meanw", "tiny2")) == N
    l2 = zoo_metrics.L2()
    ws = t3.loaded.latent_avg.reshape(1, 1, -1).repeat(6, g.num_ws, 1)
    with torch.no_grad():
        unaligned = round_fp16(g.synthesis(ws, transform=tuple(POSES[:6].T))).clamp(-1, 1)
        aligned = round_fp16(g.synthesis(ws)).clamp(-1, 1)
    expect = l2.score(unaligned, t3.unaligned[:6]).tolist()
    expect_aligned = l2.score(aligned, t3.aligned[:6]).tolist()
    got = [mine[i]["l2"] for i in range(6)]
    got_aligned = [mine[i]["aligned_l2"] for i in range(6)]
    assert got == pytest.approx(expect, rel=1e-4, abs=1e-7)
    assert got_aligned == pytest.approx(expect_aligned, rel=1e-4, abs=1e-7)
    assert max(abs(a - b) for a, b in zip(expect, expect_aligned)) > 1e-3  # the two frames really differ
    assert all(r["frame"] == "unaligned" and r["id"] is not None and r["aligned_id"] is not None
               for r in mine.values())
    # oracle: exact codes -> both frames reconstructed up to float16 rounding
    oracle = recon_rows(run, "oracle", "tiny3")
    assert max(r["l2"] for r in oracle.values()) < 1e-6 and max(r["aligned_l2"] for r in oracle.values()) < 1e-6
    # the board: aligned_* columns only on the posed domain, with the note saying which frame
    board = (run.run_dir / "leaderboard.md").read_text()
    t2_table = board.split("## tiny2 / test")[1].split("##")[0]
    t3_table = board.split("## tiny3 / test")[1].split("##")[0]
    assert "aligned_l2" in t3_table and "aligned_l2" not in t2_table
    assert "scored in the unaligned frame" in t3_table
    agg = {(a["method"], a["domain"], a["metric"]): a for a in run.results["aggregates"]}
    assert agg[("meanw", "tiny3", "l2")]["mean"] == pytest.approx(sum(expect) / 6, rel=1e-4)
    assert ("meanw", "tiny2", "aligned_l2") not in agg


def test_edits_are_rendered_with_the_pose(plugin: Any, run: Any) -> None:
    t3 = plugin.tiny3
    g = t3.loaded.generator
    edits = [r for r in rows(run) if r["kind"] == "edit" and r["method"] == "oracle" and r["domain"] == "tiny3"]
    assert {r["step"] for r in edits} == {0.0, 1.0}
    with torch.no_grad():
        base = round_fp16(g.synthesis(t3.ws[:6], transform=tuple(POSES[:6].T))).clamp(-1, 1)
        moved = g.synthesis(t3.ws[:6] + direction_of(g.w_dim), transform=tuple(POSES[:6].T)).clamp(-1, 1)
        moved_aligned = g.synthesis(t3.ws[:6] + direction_of(g.w_dim)).clamp(-1, 1)
    change = (moved - base).abs().mean((1, 2, 3))
    change_aligned = (moved_aligned - round_fp16(t3.aligned[:6])).abs().mean((1, 2, 3))
    got = {r["index"]: r for r in edits if r["step"] == 1.0}
    assert [got[i]["change"] for i in range(6)] == pytest.approx(change.tolist(), rel=1e-3, abs=1e-6)
    assert max(abs(a - b) for a, b in zip(change.tolist(), change_aligned.tolist())) > 1e-3
    assert all(r["change"] == pytest.approx(0, abs=1e-3) for r in edits if r["step"] == 0.0)
    # the edited-region change is measured in the aligned frame, where the region mask lives
    with torch.no_grad():
        plain_base = g.synthesis(t3.ws[:6]).clamp(-1, 1)
    region = (moved_aligned - plain_base).abs().mean(1)[:, :, : RES // 2].mean((1, 2))
    assert [got[i]["change_region"] for i in range(6)] == pytest.approx(region.tolist(), rel=1e-3, abs=1e-6)
    bright = [got[i]["attr.bright"] for i in range(6)]
    assert bright == pytest.approx((moved.mean((1, 2, 3)) - base.mean((1, 2, 3))).tolist(), rel=1e-3, abs=1e-5)


def test_sg2_vs_sg3_section_pairs_the_same_renders(run: Any) -> None:
    pairs = {(r["method"], r["metric"]): r for r in run.results["paired_domains"]}
    assert {m for m, _ in pairs} == {"meanw", "oracle"}  # sg2only has no tiny3 rows
    r = pairs[("oracle", "l2")]
    # tiny3 used 6 images, tiny2's image 2 differs from tiny3's unaligned image 2: 5 pairs
    assert (r["a"], r["b"], r["n"], r["n_matched"]) == ("tiny2", "tiny3", 5, 5)
    # the oracle reconstructs tiny3 exactly and tiny2 only by its mean image: SG3 - SG2 < 0, significant
    direct = [recon_rows(run, "oracle", "tiny3")[i]["l2"] - recon_rows(run, "oracle", "tiny2")[i]["l2"]
              for i in (0, 1, 3, 4, 5)]
    assert r["mean"] == pytest.approx(sum(direct) / 5, rel=1e-9) and r["mean"] < 0
    assert r["ci_high"] < 0 and r["p"] < 0.05 and r["verdict"] == "B better"
    rid = pairs[("oracle", "id")]
    assert rid["mean"] > 0 and rid["verdict"] in ("B better", "no significant difference")
    board = (run.run_dir / "leaderboard.md").read_text()
    section = board.split("## StyleGAN2 vs StyleGAN3 (same renders)")[1].split("\n## ")[0]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("| oracle")]
    assert ["oracle", "l2 ↓"] == cells[0][:2] and cells[0][-2:] == ["5", "better"] and "5 matched" in section
    assert "StyleGAN2 vs StyleGAN3 (same renders)" in (run.run_dir / "report.html").read_text()


def test_sg2_only_method_is_unavailable_on_sg3_with_its_reason(plugin: Any, run: Any, tmp_path: Path) -> None:
    un = [u for u in run.results["unavailable_methods"] if u["method"] == "sg2only"]
    assert [u["domain"] for u in un] == ["tiny3"]
    assert "cannot run on a StyleGAN3 generator yet" in un[0]["reason"]
    assert len(recon_rows(run, "sg2only", "tiny2")) == N
    board = (run.run_dir / "leaderboard.md").read_text()
    assert "sg2only cannot run on a StyleGAN3 generator yet" in board.split("Not benchmarked")[1].split("\n\n")[1]
    assert "sg2only on tiny3: CheckpointError: sg2only cannot run" in (run.run_dir / "report.html").read_text()
    cross = board.split("## Cross-domain summary")[1].split("\n## ")[0]
    sg2only = [line.split("|")[1:-1] for line in cross.splitlines() if line.startswith("| sg2only")]
    assert len(sg2only) == 1 and sg2only[0][2].strip() == "—" and sg2only[0][1].strip() != "—"  # tiny2, tiny3
    # named explicitly, it is still unavailable there (not a failure) and runs on tiny2
    out = run_bench(config(tmp_path / "named", methods=["sg2only"], editors=[], metrics=["l2"], limit=2),
                    log=lambda line: None)
    assert not out.failures and [u["domain"] for u in out.results["unavailable_methods"]] == ["tiny3"]


def test_rerun_recomputes_nothing_and_the_frame_is_in_the_unit_keys(plugin: Any, run: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = MeanW.invert
    monkeypatch.setattr(MeanW, "invert", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    again = run_bench(config(run.run_dir), log=lambda line: None)
    assert not calls and again.results["aggregates"] == run.results["aggregates"]
    t3 = plugin.tiny3
    inverter = MeanW()
    ev = Evaluator(t3, {}, {}, [], ["test"])
    frames = ev.frame_keys("test", 3)
    keys = [u.key for u in make_units(inverter, t3, "test", t3.images(limit=3), {}, frames=frames)]
    plain = [u.key for u in make_units(inverter, t3, "test", t3.images(limit=3), {})]
    assert all(f.startswith("unaligned:") for f in frames) and not set(keys) & set(plain)
    monkeypatch.setattr(t3, "poses_", POSES + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    moved = Evaluator(t3, {}, {}, [], ["test"]).frame_keys("test", 3)
    moved_keys = [u.key for u in make_units(inverter, t3, "test", t3.images(limit=3), {}, frames=moved)]
    assert not set(moved_keys) & set(keys)  # another pose: other units, never the old records
    assert ev.fingerprint != Evaluator(plugin.tiny2, {}, {}, [], ["test"]).fingerprint


def test_paired_stats_against_scipy() -> None:
    from scipy import stats

    d = [0.3, -0.1, 0.4, 0.2, 0.25, 0.05]
    got = paired_stats(d)
    ref = stats.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval(0.95)
    assert got["n"] == 6 and got["p"] == pytest.approx(ref.pvalue) and got["t"] == pytest.approx(ref.statistic)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert paired_stats([0.1])["ci_low"] is None


def test_domain_bench_defaults_cap_only_what_the_user_left_unset() -> None:
    from types import SimpleNamespace

    from zoo.bench.config import domain_settings
    from zoo.errors import InputError

    slow = SimpleNamespace(name="slow", bench_defaults={"limit": 4, "ood": False, "timing_images": 3,
                                                        "throughput_batch": 2})
    user = BenchConfig()
    st = domain_settings(user, user.resolved(), slow)
    assert (st["limit"], st["ood"], st["timing_images"], st["throughput_batch"]) == (4, False, 3, 2)
    assert st["capped"] == ["limit", "ood", "timing_images", "throughput_batch"]
    explicit = BenchConfig(limit=32, timing_images=5, throughput_batch=8)
    st = domain_settings(explicit, explicit.resolved(), slow)
    assert (st["limit"], st["timing_images"], st["throughput_batch"], st["capped"]) == (32, 5, 8, ["ood"])
    plain = domain_settings(user, user.resolved(), SimpleNamespace(name="plain"))
    assert plain["capped"] == [] and plain["limit"] == user.resolved().limit
    with pytest.raises(InputError, match="bench_defaults"):
        domain_settings(user, user.resolved(), SimpleNamespace(name="bad", bench_defaults={"steps": 3}))


def test_missing_scores_and_edits_are_completed_in_the_unaligned_frame(plugin: Any, run: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "patch"
    run_bench(config(out, domains=["tiny3"], methods=["meanw"], metrics=["l2"], editors=[], limit=4),
              log=lambda line: None)
    calls = []
    original = MeanW.invert
    monkeypatch.setattr(MeanW, "invert", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    done = run_bench(config(out, domains=["tiny3"], methods=["meanw"], limit=4), log=lambda line: None)
    assert not calls  # the id scores and the edits come from the cached reconstructions and latents
    got = {r["index"]: r for r in rows(done) if r["kind"] == "reconstruction"}
    ref = recon_rows(run, "meanw", "tiny3")
    for i in range(4):
        for name in ("l2", "aligned_l2", "id", "aligned_id"):
            assert got[i][name] == pytest.approx(ref[i][name], rel=1e-4, abs=1e-6), (i, name)
    edits = {(r["index"], r["step"]): r["change"] for r in rows(done) if r["kind"] == "edit"}
    ref_edits = {(r["index"], r["step"]): r["change"] for r in rows(run) if r["kind"] == "edit"
                 and r["method"] == "meanw" and r["domain"] == "tiny3"}
    assert edits == pytest.approx({k: ref_edits[k] for k in edits}, rel=1e-4, abs=1e-6) and len(edits) == 8
