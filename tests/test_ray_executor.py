"""`zoo bench --executor ray` on a real local Ray cluster (2 CPUs) with the tiny stand-ins of test_bench.py:
equality with the in-process run, resume from the cache, a worker killed mid-run, a bad image reported once, and
the one-line error without Ray.

One cluster serves the whole module: `ray.init(num_cpus=2, include_dashboard=False)` in a private temporary
directory, with HOME pointed at a temporary folder so Ray's token authentication (on by default for new local
clusters since 2.59) writes its token there and not into the user's ~/.ray. Workers get this folder on
PYTHONPATH and register the stand-in plugin through Ray's `worker_process_setup_hook`.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

ray = pytest.importorskip("ray")

from test_bench import BenchPlugin, TinyDomain, TinyEncoder, TinyOptimizer, _scores, cli
from test_bench import config as bench_config

import zoo
from zoo import plugins
from zoo.bench import ResultCache, run_bench
from zoo.bench.ray_executor import shipping_groups
from zoo.bench.units import WorkUnit
from zoo.errors import InputError

HERE = Path(__file__).resolve().parent
PLUGIN = "ray_test_plugin"
SCRATCH_ENV = "ZOO_RAY_TEST_DIR"  # where stand-ins in worker processes leave their traces
DRIVER_ENV = "ZOO_RAY_TEST_DRIVER"  # the pytest process, which must never kill itself
PARTS = ("aggregates", "edit_aggregates")


# ---------------------------------------------------------------------------------------------------- stand-ins
def _trace(name: str, line: str) -> None:
    folder = os.environ.get(SCRATCH_ENV)
    if folder:
        with open(Path(folder) / name, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class BadDomain(TinyDomain):
    """The tiny domain with a blank image (all pixels equal) at test index 2."""

    name = "tiny_bad"

    def __init__(self) -> None:
        super().__init__()
        self.data["test"][2] = 0.0


class FragileOptimizer(TinyOptimizer):
    """tiny_opt that refuses a blank image (a deterministic failure: retrying cannot help)."""

    name = "tiny_fragile"

    def invert(self, images: torch.Tensor, domain: Any, *, progress: bool = False) -> Any:
        blank = bool((images.flatten(1).std(1) == 0).any())
        _trace("fragile_calls", f"{os.getpid()} blank={blank}")
        if blank:
            raise InputError("blank image (all pixels equal): nothing to invert")
        return super().invert(images, domain, progress=progress)


class KillOnceOptimizer(TinyOptimizer):
    """tiny_opt whose first call in any Ray worker kills that worker's process (os.kill on its own pid, SIGKILL)
    in the middle of a task; every later call (the retry on the restarted actor) runs normally."""

    name = "tiny_kill"

    def invert(self, images: torch.Tensor, domain: Any, *, progress: bool = False) -> Any:
        folder = os.environ.get(SCRATCH_ENV)
        if folder and str(os.getpid()) != os.environ.get(DRIVER_ENV):
            try:
                fd = os.open(Path(folder) / "killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return super().invert(images, domain, progress=progress)


class RayTestPlugin(BenchPlugin):
    def __init__(self) -> None:
        # The stand-in domains compute their generator's mean latent and images at construction: with one torch
        # thread, as in a Ray worker (OMP_NUM_THREADS=1), so every process has the very same bits.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            super().__init__()
            self.bad = BadDomain()
        finally:
            torch.set_num_threads(threads)

    @zoo.hookimpl
    def register_inverters(self, register: Any) -> None:
        for cls in (TinyEncoder, TinyOptimizer, FragileOptimizer, KillOnceOptimizer):
            register(cls)

    @zoo.hookimpl
    def register_domains(self, register: Any) -> None:
        register(self.domain)
        register(self.bad)


def register_worker_plugin() -> None:
    """Ray `worker_process_setup_hook`: the stand-ins in every worker process (no entry points there either)."""
    os.environ["ZOO_LOAD_PLUGINS"] = ""
    plugins.reset_plugins()
    plugins.register_plugin(RayTestPlugin(), PLUGIN)


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, session_home: Path) -> Any:
    """A 2-CPU local Ray cluster for this module, the stand-in plugin in the driver and in every worker."""
    home = tmp_path_factory.mktemp("ray_home")
    scratch = tmp_path_factory.mktemp("ray_traces")
    temp_dir = tempfile.mkdtemp(prefix="zr", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))  # token auth writes ~/.ray/auth_token here
        for var in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
            mp.delenv(var, raising=False)
        mp.setenv("ZOO_LOAD_PLUGINS", "")
        mp.setenv(SCRATCH_ENV, str(scratch))
        mp.setenv(DRIVER_ENV, str(os.getpid()))
        env = {"PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]),
               "ZOO_LOAD_PLUGINS": "", "ZOO_HOME": str(session_home), SCRATCH_ENV: str(scratch),
               DRIVER_ENV: str(os.getpid()), "HOME": str(home)}
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, logging_level="WARNING",
                 runtime_env={"env_vars": env, "worker_process_setup_hook": f"{__name__}.register_worker_plugin"})
        plugins.reset_plugins()
        try:
            with plugins.temporary_plugin(RayTestPlugin(), PLUGIN):
                yield {"home": home, "scratch": scratch}
        finally:
            plugins.reset_plugins()
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def config(out: Path, **kw: Any) -> Any:
    """Small runs: 4 test + 4 ood images, batch size 2 (several blocks per split), l2 + id, 2 edit steps."""
    base = dict(methods=["tiny_enc", "tiny_opt"], limit=4, batch_size=2, throughput_batch=2, timing_images=2,
                metrics=["l2", "id"], steps=[-1.0, 1.0], report=False)
    return bench_config(out, **{**base, **kw})


@pytest.fixture(scope="module")
def runs(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same bench in this process and on 2 Ray workers."""
    root = tmp_path_factory.mktemp("runs")
    lines: list[str] = []
    local = run_bench(config(root / "local"), log=lambda line: None)
    remote = run_bench(config(root / "ray", executor="ray", workers=2), log=lines.append)
    return {"local": local, "ray": remote, "log": lines}


# ---------------------------------------------------------------------------------------------------- tests
def test_token_auth_is_on_and_isolated(cluster: Any) -> None:
    assert (cluster["home"] / ".ray" / "auth_token").is_file()
    assert ray.cluster_resources()["CPU"] == 2


def test_ray_run_equals_the_in_process_run(runs: dict[str, Any]) -> None:
    local, remote = runs["local"].results, runs["ray"].results
    assert not local["failures"] and not remote["failures"]
    assert [remote[p] for p in PARTS] == [local[p] for p in PARTS]  # exact: the same fixed blocks and seeds
    rows = [(r.run_dir / "rows.jsonl").read_text() for r in (runs["local"], runs["ray"])]
    assert _scores(rows[1]) == _scores(rows[0])
    keys = [sorted(ResultCache(r.run_dir / "cache").keys()) for r in (runs["local"], runs["ray"])]
    assert keys[0] == keys[1] and len(keys[0]) == 16  # the driver wrote every record
    ex = remote["executor"]
    assert ex["name"] == "ray" and len(ex["workers"]) == 2 and ex["threads"] == 1
    assert sum(w["units"] for w in ex["workers"]) == 16 and all(w["units"] for w in ex["workers"])
    assert local["executor"]["name"] == "inprocess"


def test_timings_name_the_one_worker_that_measured_them(runs: dict[str, Any]) -> None:
    remote = runs["ray"].results
    worker = remote["executor"]["timing_worker"]
    assert {t["host"] for t in remote["timing"]} == {worker["host"]} and worker["threads"] == 1
    assert all(t["worker"]["pid"] == worker["pid"] and t["processor"] == worker["processor"] for t in remote["timing"])
    assert len(remote["timing_machines"]) == 1 and set(remote["timing_machines"][0]["methods"]) == {
        "tiny_enc on tiny", "tiny_opt on tiny"}
    assert any(line.startswith("ray: tiny_opt on tiny: 8 units in ") and "worker 1" in line for line in runs["log"])


def test_rerun_resumes_from_the_cache(runs: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(runs["ray"].run_dir, out)  # as if the driver was killed after some groups were committed
    cache = ResultCache(out / "cache")
    recs = [cache.load(k) for k in cache.keys()]
    lost = [r["key"] for r in recs if r["unit"]["method"] == "tiny_opt" and r["unit"]["split"] == "ood"][:3]
    for key in lost:
        cache.json_path(key).unlink()
    (out / "results.json").unlink()
    again = run_bench(config(out, executor="ray", workers=1), log=lambda line: None)
    assert sum(w["units"] for w in again.results["executor"]["workers"]) == 3  # only the lost units travelled
    assert [again.results[p] for p in PARTS] == [runs["local"].results[p] for p in PARTS]


@pytest.fixture(scope="module")
def faults(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One Ray run with both faults (fewer worker start-ups): tiny_kill's first call kills its worker process,
    tiny_fragile fails on the blank image of tiny_bad; and tiny_kill's in-process run for comparison."""
    root = tmp_path_factory.mktemp("faults")
    cfg = dict(domains=["tiny_bad"], ood=False, editors=[], timing_images=2)
    lines: list[str] = []
    remote = run_bench(config(root / "ray", methods=["tiny_kill", "tiny_fragile"], executor="ray", workers=2, **cfg),
                       log=lines.append)
    local = run_bench(config(root / "local", methods=["tiny_kill"], **cfg), log=lambda line: None)
    return {"ray": remote, "local": local, "log": lines}


def test_a_killed_worker_is_restarted_and_its_units_run_again(cluster: Any, faults: dict[str, Any]) -> None:
    killed = int((cluster["scratch"] / "killed").read_text())
    remote, local = faults["ray"].results, faults["local"].results
    workers = remote["executor"]["workers"]
    assert sum(w["restarts"] for w in workers) == 1 and killed not in {w["pid"] for w in workers}
    assert sum("was restarted" in line for line in faults["log"]) == 1
    assert [f["method"] for f in remote["failures"]] == ["tiny_fragile"]  # not tiny_kill: its units were rerun

    def mine(results: dict[str, Any], part: str) -> list[Any]:
        return [a for a in results[part] if a["method"] == "tiny_kill"]
    assert [mine(remote, p) for p in PARTS] == [mine(local, p) for p in PARTS]
    assert next(a for a in mine(remote, "aggregates") if a["metric"] == "l2")["n"] == 4


def test_a_bad_image_is_reported_once_and_not_retried(cluster: Any, faults: dict[str, Any]) -> None:
    failure = faults["ray"].failures[0]
    assert "images [2]" in failure["error"] and "blank image" in failure["error"]
    calls = (cluster["scratch"] / "fragile_calls").read_text().splitlines()
    assert sum("blank=True" in c for c in calls) == 1  # tried once: Ray does not retry application errors
    assert sum(line.startswith("error: tiny_fragile on tiny_bad failed") for line in faults["log"]) == 1
    l2 = next(a for a in faults["ray"].results["aggregates"] if a["method"] == "tiny_fragile" and a["metric"] == "l2")
    assert l2["n"] == 3 and l2["n_expected"] == 4  # the other images were computed and saved


def test_without_ray_the_executor_is_a_one_line_error(cluster: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    res = CliRunner().invoke(cli(), ["bench", "--domains", "tiny", "--methods", "tiny_enc", "--limit", "2",
                                     "--executor", "ray", "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        "Error: --executor ray needs Ray, which is not installed: pip install 'inversion-zoo[ray]'"]
    bad = CliRunner().invoke(cli(), ["bench", "--domains", "tiny", "--workers", "2", "--out", str(tmp_path / "y")])
    assert bad.exit_code == 1 and "--workers apply only with --executor ray" in bad.stderr


def test_shipping_groups_are_unions_of_whole_blocks() -> None:
    units = [WorkUnit("m", "1", {}, {}, "d", split, i, "x") for split in ("test", "ood") for i in range(6)]
    assert shipping_groups(units, [2]) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert shipping_groups(units, [2, 3]) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert shipping_groups(units, [1]) == [[i] for i in range(12)]
    assert shipping_groups(units[:4], [4, 2]) == [[0, 1, 2, 3]]


def test_a_board_with_times_from_two_machines_says_so() -> None:
    from zoo.bench.report import leaderboard_markdown
    from zoo.bench.results import timing_machines

    def timed(method: str, host: str) -> dict[str, Any]:
        return {"method": method, "domain": "tiny", "host": host, "processor": "Xeon", "device": "cpu",
                "device_name": None, "threads": 1, "latency": {"median_s": 0.5}}
    one = [timed("a", "node-1"), timed("b", "node-1")]
    two = [timed("a", "node-1"), timed("b", "node-2")]
    assert len(timing_machines(one)) == 1 and timing_machines(one)[0]["methods"] == ["a on tiny", "b on tiny"]
    assert [m["host"] for m in timing_machines(two)] == ["node-1", "node-2"]
    old = [timed("a", "node-1"), {**timed("b", "node-1"), "host": None}]  # a cached record of an older run
    assert len(timing_machines(old)) == 1
    assert "different machines" not in leaderboard_markdown({"timing": one, "timing_machines": timing_machines(one)})
    md = leaderboard_markdown({"timing": two, "timing_machines": timing_machines(two)})
    assert "Measured on 2 different machines, not comparable with each other: node-1 (Xeon, cpu, 1 threads): a on " \
           "tiny; node-2 (Xeon, cpu, 1 threads): b on tiny." in md


def test_cache_files_travel_to_a_worker_and_back(tmp_path: Path) -> None:
    from zoo.bench.ray_executor import commit_files, seed_files
    from zoo.bench.ray_worker import read_files, write_files

    driver = ResultCache(tmp_path / "driver")
    driver.save("ab" * 32, {"x": 1}, {"reconstruction": torch.zeros(3, 2, 2, dtype=torch.float16)})
    emb = driver.root / "embeddings" / "cd" / f"{'cd' * 32}.inversion.safetensors"
    emb.parent.mkdir(parents=True)
    emb.write_bytes(b"embedding")
    files = seed_files(driver, ["ab" * 32, "ef" * 32], ["cd" * 32, "01" * 32])  # missing ones are left out
    assert sorted(files) == [f"ab/{'ab' * 32}.json", f"ab/{'ab' * 32}.safetensors",
                             f"embeddings/cd/{'cd' * 32}.inversion.safetensors"]
    scratch = ResultCache(tmp_path / "worker")  # the worker's private cache, seeded, then a new record saved
    write_files(scratch.root, files)
    scratch.save("ef" * 32, {"y": 2}, {"latents": torch.ones(2, 4)})
    back = {k: v for k, v in read_files(scratch.root).items() if files.get(k) != v}
    assert sorted(back) == [f"ef/{'ef' * 32}.json", f"ef/{'ef' * 32}.safetensors"]
    commit_files(driver, back)
    assert driver.load("ef" * 32)["y"] == 2 and driver.load("ab" * 32)["x"] == 1
    assert not list(driver.root.rglob(".*.tmp"))


def test_unreachable_address_is_one_line_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray retries an unreachable GCS address for ever; the executor probes it first (issue 15 trial)."""
    from zoo.bench.ray_executor import check_reachable
    from zoo.errors import InputError, ZooError

    with pytest.raises(ZooError, match=r"--address 127\.0\.0\.1:1: no Ray cluster answers"):
        check_reachable("127.0.0.1:1", timeout_s=2)
    with pytest.raises(InputError, match="expected auto or HOST:PORT"):
        check_reachable("nonsense")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(ZooError, match="no Ray cluster answers at 127.0.0.1:1"):
        check_reachable("auto", timeout_s=2)
    check_reachable(None)  # a local cluster: nothing to probe
