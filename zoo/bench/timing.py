"""Inference time: per-image latency at batch size 1 after warm-up, and throughput at a larger batch.

The raw data are the per-image seconds each inverter reports (`Inversion.seconds`, measured with
`Inverter.clock()`, which synchronises CUDA). Weights are loaded by `inverter.prepare(domain)` before anything is
timed. On CUDA the wall time of every call is also measured with CUDA events as a cross-check.
"""

from __future__ import annotations

import hashlib
import platform
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from .results import cpu_frequency, cpu_name, machine_load
from .units import canonical_json, image_sha256, is_batchable, resolved_options

if TYPE_CHECKING:
    from ..domain import Domain
    from ..inverter import Inverter
    from .cache import ResultCache


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """median, quartiles, IQR, min, max, mean and n of `seconds` (pytest-benchmark / asv style)."""
    xs = sorted(float(s) for s in seconds)
    if not xs:
        return {"n": 0}
    if len(xs) == 1:
        q1 = q3 = xs[0]
    else:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return {"n": len(xs), "median_s": statistics.median(xs), "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1,
            "min_s": xs[0], "max_s": xs[-1], "mean_s": statistics.fmean(xs)}


def timing_env(inverter: Inverter, domain: Domain) -> dict[str, Any]:
    """Device (with GPU name), dtype of the method's generator, CPU thread count, TF32 / cuDNN flags."""
    dev = inverter.device
    env: dict[str, Any] = {"device": str(dev), "threads": torch.get_num_threads(), "dtype": _dtype(inverter, domain),
                           "processor": cpu_name()}
    if dev.type == "cuda":
        env.update(device_name=torch.cuda.get_device_name(dev), cudnn_benchmark=torch.backends.cudnn.benchmark,
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    return env


def _dtype(inverter: Inverter, domain: Domain) -> str:
    state = inverter._prepared.get(domain.name)
    module = getattr(state, "generator", state)
    if isinstance(module, torch.nn.Module):
        p = next(module.parameters(), None)
        if p is not None:
            return str(p.dtype).removeprefix("torch.")
    return "float32"


class _EventTimer:
    """Elapsed seconds of a region measured with CUDA events (None on CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __enter__(self) -> _EventTimer:
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
        self.seconds = self.start.elapsed_time(self.end) / 1000 if self.cuda else None


def measure_latency(inverter: Inverter, domain: Domain, images: torch.Tensor, warmup: int = 1,
                    progress: bool | None = None) -> dict[str, Any]:
    """Invert `images` [N, 3, H, W] one at a time; the first `warmup` are discarded. Stats over the rest."""
    inverter.prepare(domain)
    reported, events = [], []
    for i in tqdm(range(len(images)), desc=f"time {inverter.name}", unit="img", leave=False,
                  disable=None if progress is None else not progress):
        with _EventTimer(inverter.device) as t:
            inv = inverter.invert(images[i : i + 1], domain)
        if i >= warmup:
            reported.append(float(inv.seconds.sum()))
            if t.seconds is not None:
                events.append(t.seconds)
    out = {**summarize(reported), "warmup": warmup, "raw_s": reported, "batch_size": 1}
    if events:
        out["cuda_event_median_s"] = statistics.median(events)
    return out


def measure_throughput(inverter: Inverter, domain: Domain, images: torch.Tensor) -> dict[str, Any]:
    """Images per second of one `invert` call on `images` [B, 3, H, W] (run after `measure_latency` warmed up)."""
    inverter.prepare(domain)
    with _EventTimer(inverter.device) as t:
        inv = inverter.invert(images, domain)
    total = float(inv.seconds.sum())
    out = {"batch_size": len(images), "seconds": total, "images_per_s": len(images) / total if total > 0 else None,
           "measured": True}
    if t.seconds is not None:
        out["cuda_event_s"] = t.seconds
    return out


def timing_key(inverter: Inverter, domain: Domain, weights: dict[str, str], images: torch.Tensor, warmup: int,
               throughput_batch: int) -> str:
    """Cache key of a timing result: method identity, domain, images, protocol and machine settings."""
    env = timing_env(inverter, domain)
    ident = {"method": inverter.name, "version": str(inverter.version), "options": resolved_options(inverter),
             "weights": weights, "domain": domain.name, "images": [image_sha256(x) for x in images],
             "warmup": warmup, "throughput_batch": throughput_batch, "device": env["device"],
             "threads": env["threads"], "dtype": env["dtype"], "node": platform.node()}
    return hashlib.sha256(canonical_json(ident).encode()).hexdigest()


def time_method(inverter: Inverter, domain: Domain, images: torch.Tensor, *, warmup: int = 1,
                throughput_batch: int = 8, weights: dict[str, str] | None = None, cache: ResultCache | None = None,
                progress: bool | None = None) -> dict[str, Any]:
    """Latency (batch 1, median/IQR after `warmup`) and throughput (batchable methods) on `images`, cached.

    Methods that invert one image at a time get throughput = 1 / median latency (`measured: False`).
    """
    weights = weights if weights is not None else inverter.weights_sha256(domain)
    inverter.prepare(domain)  # loading is never timed
    key = timing_key(inverter, domain, weights, images, warmup, throughput_batch)
    if cache is not None and (hit := cache.load_timing(key)) is not None:
        return hit
    load_before = machine_load()  # a busy machine makes the timing not leaderboard-eligible
    latency = measure_latency(inverter, domain, images, warmup, progress)
    if is_batchable(inverter) and throughput_batch > 1:
        reps = -(-throughput_batch // len(images))
        throughput = measure_throughput(inverter, domain, images.repeat(reps, 1, 1, 1)[:throughput_batch])
    else:
        med = latency.get("median_s")
        throughput = {"batch_size": 1, "images_per_s": 1 / med if med else None, "measured": False}
    record = {"method": inverter.name, "domain": domain.name, "latency": latency, "throughput": throughput,
              **timing_env(inverter, domain), "host": platform.node(),
              "timer": "Inversion.seconds (Inverter.clock, CUDA-synchronised)",
              "load_before": load_before, "load_after": machine_load(), "cpu_freq": cpu_frequency()}
    if cache is not None:
        cache.save_timing(key, record)
        record["key"] = key
    return record
