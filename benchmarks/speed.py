"""CPU speed of the hot paths (issue 20): the code before the speed work ("baseline": commit 13bb0df, extracted from
git at run time by `baseline_tree`, and the `lpips` package) against the current code ("optimised"), on random weights of the official configurations, in the
same process with interleaved rounds (the machine is shared and noisy: read the ratios, not the seconds).

    python benchmarks/speed.py                          # every row, 7 rounds, 1 thread, table on stdout
    python benchmarks/speed.py --rows g256_b1,lpips_b1 --rounds 9 --threads 2
    python benchmarks/speed.py --json out.json          # raw record (machine, per-round times, peak RSS)
    python benchmarks/speed.py --save LABEL             # benchmarks/speed/<date>-<LABEL>.{json,md}
    python benchmarks/speed.py --list

Each row runs in its own child process (so one row's allocations do not inflate the next row's peak RSS). The child
builds both implementations with the same weights, warms each up (`--warmup` calls), then runs `--rounds` rounds; in
every round both run once, in alternating order (A B, B A, ...). Reported per implementation: median and IQR of the
per-call seconds, and the peak RSS while it ran (Linux: VmHWM after resetting it through /proc/self/clear_refs, else
the process's ru_maxrss). `ratio` = optimised median / baseline median (the issue's goal: <= 0.5). The load average
before and after each row is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMPLS = ("baseline", "optimised")


# --------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """One benchmark row: `build(impl, shared)` returns the zero-argument call to time; `shared` is a dict the two
    builds share (the baseline builds first and leaves its modules there, the optimised build copies their weights)."""

    name: str
    what: str
    build: Callable[[str, dict], Callable[[], Any]]


BASELINE_REV = "13bb0df"  # the last commit before the issue-20 speed work
# (git path at BASELINE_REV, package it becomes, files of it to keep; None = all)
BASELINE_PARTS = (("zoo", "_baseline", None),
                  ("plugins/zoo_metrics", "_baseline_metrics", ("msssim.py", "resize.py")),
                  ("plugins/zoo_optim", "_baseline_optim", ("_common.py",)))


def baseline_tree(rev: str = BASELINE_REV) -> Path:
    """A folder holding the baseline code as importable packages (`_baseline` = the whole `zoo` package at `rev`,
    `_baseline_metrics.msssim`, `_baseline_optim._common`), extracted from git once into the user cache
    (~/.cache/inversion-zoo/speed-baseline/<rev>). The baseline is never copied into the working tree. Relative
    imports resolve inside the old copy; absolute `zoo.*` imports bind to the current package (errors, cards).
    Raises SystemExit with one line when this is not a git clone holding `rev`."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "inversion-zoo" / "speed-baseline" / rev
    if (cache / "complete").is_file():
        return cache
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
    for src, pkg, keep in BASELINE_PARTS:
        dest = tmp / pkg
        dest.mkdir(parents=True, exist_ok=True)
        try:
            names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", rev, src + "/"],
                                   capture_output=True, text=True, check=True).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            raise SystemExit(f"speed.py: the baseline needs a git clone holding commit {rev} (git -C {ROOT})") from None
        for name in names:
            rel = name[len(src) + 1:]
            if not rel.endswith(".py") or (keep is not None and rel not in keep):
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{name}"],
                                                    capture_output=True, check=True).stdout)
        (dest / "__init__.py").touch()  # plugin packages: only the kept modules, no registration side effects
    (tmp / "complete").write_text(rev + "\n")
    if cache.exists():
        import shutil

        shutil.rmtree(cache)
    tmp.rename(cache)
    return cache


def _paths() -> None:
    for p in (str(ROOT), str(baseline_tree()), str(ROOT / "plugins")):
        if p not in sys.path:
            sys.path.insert(0, p)


def _generator_cls(impl: str) -> type:
    if impl == "baseline":
        from _baseline.stylegan2 import Generator
    else:
        from zoo.stylegan2 import Generator
    return Generator


def _encoders(impl: str) -> Any:
    if impl == "baseline":
        import _baseline.encoders as enc
    else:
        import zoo.encoders as enc
    return enc


def _twin(impl: str, shared: dict, key: str, make: Callable[[str], Any]) -> Any:
    """The baseline's module (random weights, seed 0) or an optimised module holding exactly the same weights."""
    import torch

    if impl == "baseline":
        torch.manual_seed(0)
        m = make(impl)
        shared[key] = m
        return m
    m = make(impl)
    m.load_state_dict(shared[key].state_dict(), strict=True)
    return m


def _generator(impl: str, shared: dict, size: int = 256) -> Any:
    return _twin(impl, shared, f"G{size}", lambda i: _generator_cls(i)(size, channel_multiplier=2).eval())


def _g_forward(batch: int, size: int = 256) -> Callable[[str, dict], Callable[[], Any]]:
    def build(impl: str, shared: dict) -> Callable[[], Any]:
        import torch

        g = _generator(impl, shared, size)
        g.requires_grad_(False)
        w = torch.randn(batch, g.n_latent, 512, generator=torch.Generator().manual_seed(1))

        def call() -> Any:
            with torch.no_grad():
                return g([w], input_is_latent=True, randomize_noise=False)[0]
        return call
    return build


def _g_grad_wplus(impl: str, shared: dict) -> Callable[[], Any]:
    """A projector step's core: forward, MSE to a target, backward to W+ (generator frozen, as in the projectors)."""
    import torch

    g = _generator(impl, shared)
    g.requires_grad_(False)
    w = torch.randn(1, g.n_latent, 512, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    target = torch.zeros(1, 3, 256, 256)

    def call() -> Any:
        img, _ = g([w], input_is_latent=True, randomize_noise=False)
        loss = (img - target).square().mean()
        loss.backward()
        w.grad = None
        return loss
    return call


def _lpips_model(impl: str, shared: dict) -> Any:
    """lpips.LPIPS(alex, v0.1) with random weights (baseline), or the zoo's LPIPS network with the same weights."""
    import torch

    if "lpips" not in shared:
        import warnings

        import lpips

        torch.manual_seed(2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shared["lpips"] = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True,
                                          verbose=False).eval().requires_grad_(False)
    base = shared["lpips"]
    if impl == "baseline":
        return base
    from zoo_metrics.lpips_net import LPIPSAlex

    return LPIPSAlex.from_lpips(base)


def _pti_step(impl: str, shared: dict) -> Callable[[], Any]:
    """PTI's tuning step: G(pivot) with fixed noise, MSE + LPIPS-Alex (target features cached) to a target,
    backward into every generator parameter, Adam(3e-4) step."""
    import torch
    import torch.nn.functional as F

    g = _twin(impl, shared, "G256_pti", lambda i: _generator_cls(i)(256, channel_multiplier=2).train())
    g.requires_grad_(True)
    net = _lpips_model(impl, shared)
    if impl == "baseline":
        from _baseline_optim._common import Perceptual
    else:
        from zoo_optim._common import Perceptual
    perc = Perceptual(net, None)
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(1, g.n_latent, 512, generator=gen)
    target = torch.rand(1, 3, 256, 256, generator=gen) * 2 - 1
    with torch.no_grad():
        tf = perc.features(target)
    opt = torch.optim.Adam(g.parameters(), lr=3e-4)
    noise = g.fixed_noise()

    def call() -> Any:
        img, _ = g([w], input_is_latent=True, noise=noise)
        loss = F.mse_loss(img, target) + perc.distance(perc.features(img), tf).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss
    return call


def _encoder_forward(kind: str, batch: int) -> Callable[[str, dict], Callable[[], Any]]:
    def build(impl: str, shared: dict) -> Callable[[], Any]:
        import torch

        cls = {"psp": "GradualStyleEncoder", "e4e": "Encoder4Editing"}[kind]
        enc = _twin(impl, shared, kind, lambda i: getattr(_encoders(i), cls)(18, 3, 512).eval())
        enc.requires_grad_(False)
        x = torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(4)) * 2 - 1

        def call() -> Any:
            with torch.no_grad():
                return enc(x)
        return call
    return build


def _restyle(kind: str) -> Callable[[str, dict], Callable[[], Any]]:
    def build(impl: str, shared: dict) -> Callable[[], Any]:
        import torch

        enc_mod = _encoders(impl)
        cls = {"psp": "BackboneEncoder", "e4e": "ProgressiveBackboneEncoder"}[kind]
        g = _generator(impl, shared)
        g.requires_grad_(False)
        enc = _twin(impl, shared, f"restyle_{kind}", lambda i: getattr(_encoders(i), cls)(g.n_latent, 6, 512).eval())
        enc.requires_grad_(False)
        lat = torch.randn(512, generator=torch.Generator().manual_seed(5))
        x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(4)) * 2 - 1
        avg = enc_mod.average_image(g, lat, enc_mod.pool_to(x.shape[-2:]))

        def call() -> Any:
            with torch.no_grad():
                return enc_mod.run_restyle(enc, g, lat, x, 5, avg_image=avg).images[-1]
        return call
    return build


def _hyperstyle(impl: str, shared: dict) -> Callable[[], Any]:
    import torch

    enc_mod = _encoders(impl)
    g = _generator(impl, shared)
    g.requires_grad_(False)
    slots = g.layer_slots()
    hyper = _twin(impl, shared, "hypernet", lambda i: _encoders(i).SharedWeightsHyperNetResNet(slots).eval())
    w_enc = _twin(impl, shared, "w_encoder", lambda i: _encoders(i).WEncoder(g.n_latent, 3, 512).eval())
    hyper.requires_grad_(False)
    w_enc.requires_grad_(False)
    lat = torch.randn(512, generator=torch.Generator().manual_seed(5))
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(4)) * 2 - 1

    def call() -> Any:
        with torch.no_grad():
            return enc_mod.run_hyperstyle(hyper, g, x, 5, w_encoder=w_enc, latent_avg=lat).images[-1]
    return call


def _lpips_row(batch: int) -> Callable[[str, dict], Callable[[], Any]]:
    def build(impl: str, shared: dict) -> Callable[[], Any]:
        import torch

        net = _lpips_model(impl, shared)
        gen = torch.Generator().manual_seed(6)
        p = torch.rand(batch, 3, 256, 256, generator=gen) * 2 - 1
        t = torch.rand(batch, 3, 256, 256, generator=gen) * 2 - 1

        def call() -> Any:
            with torch.no_grad():
                return net(p, t)
        return call
    return build


def _msssim_row(batch: int) -> Callable[[str, dict], Callable[[], Any]]:
    def build(impl: str, shared: dict) -> Callable[[], Any]:
        import torch

        if impl == "baseline":
            from _baseline_metrics.msssim import ms_ssim
        else:
            from zoo_metrics.msssim import ms_ssim
        gen = torch.Generator().manual_seed(7)
        p = torch.rand(batch, 3, 256, 256, generator=gen) * 2 - 1
        t = (p + 0.2 * torch.randn(batch, 3, 256, 256, generator=gen)).clamp(-1, 1)

        def call() -> Any:
            with torch.no_grad():
                return ms_ssim(p, t)
        return call
    return build


ROWS: dict[str, Row] = {r.name: r for r in [
    Row("g256_b1", "generator forward, W+, 256 px cm 2, batch 1", _g_forward(1)),
    Row("g256_b4", "generator forward, W+, 256 px cm 2, batch 4", _g_forward(4)),
    Row("g256_grad", "forward + backward w.r.t. W+ (projector step core), batch 1", _g_grad_wplus),
    Row("pti_step", "PTI tuning step (G + MSE + LPIPS-Alex + Adam), batch 1", _pti_step),
    Row("g1024_b1", "generator forward, W+, 1024 px cm 2, batch 1", _g_forward(1, 1024)),
    Row("psp_b1", "pSp encoder (IR-SE50, 18 styles) forward, batch 1", _encoder_forward("psp", 1)),
    Row("psp_b4", "pSp encoder (IR-SE50, 18 styles) forward, batch 4", _encoder_forward("psp", 4)),
    Row("e4e_b1", "e4e encoder forward, batch 1", _encoder_forward("e4e", 1)),
    Row("e4e_b4", "e4e encoder forward, batch 4", _encoder_forward("e4e", 4)),
    Row("restyle_psp", "ReStyle-pSp (IR-SE50) + G256, 5 iterations, batch 1", _restyle("psp")),
    Row("restyle_e4e", "ReStyle-e4e (IR-SE50) + G256, 5 iterations, batch 1", _restyle("e4e")),
    Row("hyperstyle", "HyperStyle (W-encoder + ResNet34 hypernet) + G256, 5 iterations, batch 1", _hyperstyle),
    Row("lpips_b1", "LPIPS-Alex v0.1 at 256, batch 1", _lpips_row(1)),
    Row("lpips_b4", "LPIPS-Alex v0.1 at 256, batch 4", _lpips_row(4)),
    Row("msssim_b1", "MS-SSIM at 256, batch 1", _msssim_row(1)),
]}


# --------------------------------------------------------------------------------------------- measuring
def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stats(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    return {"median_s": round(statistics.median(times), 5), "iqr_s": round(q[2] - q[0], 5),
            "min_s": round(min(times), 5)}


def run_child(name: str, rounds: int, warmup: int, threads: int) -> dict[str, Any]:
    """Build both implementations of one row and time them in interleaved rounds (runs inside the child)."""
    import torch

    _paths()
    torch.set_num_threads(threads)
    shared: dict = {}
    t0 = time.perf_counter()
    calls = {impl: ROWS[name].build(impl, shared) for impl in IMPLS}
    setup_s = time.perf_counter() - t0
    peaks = {impl: 0.0 for impl in IMPLS}
    warm_s = {}
    for impl in IMPLS:
        t = time.perf_counter()
        for _ in range(warmup):
            calls[impl]()
        warm_s[impl] = round((time.perf_counter() - t) / max(warmup, 1), 4)
    times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for r in range(rounds):
        order = IMPLS if r % 2 == 0 else IMPLS[::-1]
        for impl in order:
            can_reset = _reset_peak()
            t = time.perf_counter()
            calls[impl]()
            times[impl].append(time.perf_counter() - t)
            if can_reset:
                peaks[impl] = max(peaks[impl], _peak_mb())
    out: dict[str, Any] = {"row": name, "what": ROWS[name].what, "rounds": rounds, "warmup": warmup,
                           "threads": torch.get_num_threads(), "setup_s": round(setup_s, 2)}
    for impl in IMPLS:
        out[impl] = {**_stats(times[impl]), "first_call_s": warm_s[impl],
                     "times_s": [round(t, 5) for t in times[impl]],
                     "peak_rss_mb": round(peaks[impl] or _peak_mb(), 1)}
    out["ratio"] = round(out["optimised"]["median_s"] / out["baseline"]["median_s"], 3)
    out["speedup"] = round(1 / out["ratio"], 2)
    return out


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version and build details, load average: what the numbers need next to them."""
    import torch

    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    commit = commit or "unknown (not a git checkout)"
    return {"cpu": model, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
            "parallel": torch.__config__.parallel_info().splitlines()[0:3], "git_head": commit,
            "loadavg_start": list(os.getloadavg())}


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = [f"# Speed ({record['label']}, {record['date']})", "",
             f"CPU {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {record['threads']} thread(s), "
             f"{record['rounds']} interleaved rounds after {record['warmup']} warm-up call(s); load average at start "
             f"{m['loadavg_start'][0]:.2f} (shared machine: compare the ratios). Baseline = the code at commit "
             f"{BASELINE_REV} (extracted from git, lpips 0.1.4); git HEAD {m['git_head']} + working tree."
             + ("" if record.get("complete", True) else " **Incomplete run: the rows measured so far.**"), "",
             "| row | baseline median (IQR) s | optimised median (IQR) s | ratio | speed-up | peak RSS MB base / opt "
             "| load before / after |",
             "|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        b, o = r["baseline"], r["optimised"]
        lines.append(f"| {r['row']}: {r['what']} | {b['median_s']:.4f} ({b['iqr_s']:.4f}) | {o['median_s']:.4f} "
                     f"({o['iqr_s']:.4f}) | {r['ratio']:.2f} | {r['speedup']:.2f}x | {b['peak_rss_mb']:.0f} / "
                     f"{o['peak_rss_mb']:.0f} | {r['load_before']:.2f} / {r['load_after']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="", help="comma-separated row names (default: all; see --list)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds per row (>= 1; default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per implementation first (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", metavar="FILE", help="write the full record as JSON")
    parser.add_argument("--save", metavar="LABEL", help="write benchmarks/speed/<date>-<LABEL>.json and .md")
    parser.add_argument("--out-dir", help="folder for --save (default benchmarks/speed)")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list:
        for r in ROWS.values():
            print(f"{r.name:12} {r.what}")
        return 0
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.child:
        print(json.dumps(run_child(args.child, args.rounds, args.warmup, args.threads)))
        return 0
    names = [n for n in args.rows.split(",") if n] or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    _paths()
    record: dict[str, Any] = {"label": args.save or "", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%MZ"),
                              "rounds": args.rounds, "warmup": args.warmup, "threads": args.threads,
                              "machine": machine(), "rows": []}
    for name in names:
        load_before = os.getloadavg()[0]
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--rounds", str(args.rounds),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=str(ROOT))
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            record["rows"].append({"row": name, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["load_before"], row["load_after"] = load_before, os.getloadavg()[0]
        record["rows"].append(row)
        print(f"{name:12} baseline {row['baseline']['median_s']:.4f}s  optimised {row['optimised']['median_s']:.4f}s"
              f"  ratio {row['ratio']:.2f}  ({row['speedup']:.2f}x)  load {row['load_before']:.1f}", flush=True)
        write(record, args, final=False)  # a checkpoint after every row: a long run cut short keeps its rows
    text = write(record, args, final=True)
    print("\n" + text)
    ok_rows = [r for r in record["rows"] if "error" not in r]
    return 1 if len(ok_rows) < len(record["rows"]) else 0


def write(record: dict[str, Any], args: argparse.Namespace, final: bool) -> str:
    """Write the --json / --save files (also after every row, `complete` false until the last one)."""
    record["machine"]["loadavg_end"] = list(os.getloadavg())
    record["complete"] = final
    text = markdown({**record, "rows": [r for r in record["rows"] if "error" not in r]})
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    if args.save:
        out = Path(args.out_dir) if args.out_dir else HERE / "speed"
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{record['date'][:10]}-{args.save}"
        (out / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
        (out / f"{stem}.md").write_text(text)
        if final:
            print(f"wrote {out / stem}.json and .md")
    return text


if __name__ == "__main__":
    sys.exit(main())
