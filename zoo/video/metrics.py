"""Video metrics: per-frame reconstruction quality and temporal consistency.

* Per frame: the registered `l2`, `lpips` and `id` metrics (the board's definitions: images clamped to [-1, 1],
  compared at 256 x 256) of each output frame against its input frame.
* Flicker: mean absolute difference of consecutive frames, mean over pixels and frame pairs, on [-1, 1] images
  (`flicker`). Reported for the output and for the input frames it corresponds to; `flicker_ratio` = output /
  input (1 = as much frame-to-frame change as the input; a shaky reconstruction of a smooth clip is > 1).
* Temporal error: mean |(y[t+1] - y[t]) - (x[t+1] - x[t])|, the part of the output's frame-to-frame change that the
  input does not have (0 for a perfect or a constant-error reconstruction).
* Ground truth (embedded clips): mean absolute difference of each output frame against the clean ground-truth
  frame (`gt_l1`), plus the ground truth's own flicker.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..domain import Domain

FRAME_METRICS = ("l2", "lpips", "id")


def flicker(frames: torch.Tensor) -> float:
    """Mean |x[t+1] - x[t]| over pixels and pairs of frames [T, 3, H, W] (clamped to [-1, 1]); nan for T < 2."""
    x = frames.detach().float().cpu().clamp(-1, 1)
    if x.shape[0] < 2:
        return float("nan")
    return float((x[1:] - x[:-1]).abs().mean())


def temporal_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean |(y[t+1] - y[t]) - (x[t+1] - x[t])| of output y against reference x, both [T, 3, H, W] (clamped)."""
    y = output.detach().float().cpu().clamp(-1, 1)
    x = reference.detach().float().cpu().clamp(-1, 1)
    if y.shape != x.shape:
        raise ValueError(f"output {tuple(y.shape)} and reference {tuple(x.shape)} differ")
    if y.shape[0] < 2:
        return float("nan")
    return float(((y[1:] - y[:-1]) - (x[1:] - x[:-1])).abs().mean())


class FrameScorer:
    """The per-frame metrics of a domain (metrics that are unavailable, e.g. LPIPS without its backbone, are left
    out and named in `notes`)."""

    def __init__(self, domain: Domain, device: str = "cpu", names: tuple[str, ...] = FRAME_METRICS) -> None:
        from .. import registry

        self.domain = domain
        self.device = torch.device(device)
        self.metrics: dict[str, Any] = {}
        self.notes: list[str] = []
        for name in names:
            metric = registry.create_metric(name, device=device)
            reason = metric.unavailable_reason(domain)
            if reason:
                self.notes.append(f"{name} unavailable: {reason}")
            else:
                self.metrics[name] = metric

    @torch.no_grad()
    def score(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, list[float]]:
        """{metric: per-frame values} of output vs target [T, 3, H, W] (clamped to [-1, 1] first)."""
        y = output.detach().to(self.device, torch.float32).clamp(-1, 1)
        x = target.detach().to(self.device, torch.float32).clamp(-1, 1)
        out = {}
        for name, metric in self.metrics.items():
            out[name] = [float(v) for v in metric.score(y, x, self.domain).detach().float().cpu().reshape(-1)]
        return out


def summarise(output: torch.Tensor, inputs: torch.Tensor, scorer: FrameScorer | None,
              truth: torch.Tensor | None = None) -> dict[str, Any]:
    """All video metrics of `output` [T, 3, H, W] against the corresponding `inputs` (and `truth`) frames:
    {"frames": T, "per_frame": {metric: [T]}, "mean": {metric: mean}, "flicker", "input_flicker", "flicker_ratio",
    "temporal_error", and with truth "gt_l1" [T], "gt_l1_mean", "truth_flicker"}."""
    res: dict[str, Any] = {"frames": int(output.shape[0])}
    per = scorer.score(output, inputs) if scorer is not None else {}
    res["per_frame"] = per
    res["mean"] = {k: _mean(v) for k, v in per.items()}
    res["flicker"] = flicker(output)
    res["input_flicker"] = flicker(inputs)
    res["flicker_ratio"] = res["flicker"] / res["input_flicker"] if res["input_flicker"] > 0 else float("nan")
    res["temporal_error"] = temporal_error(output, inputs)
    if truth is not None:
        gt = (output.detach().float().cpu().clamp(-1, 1) - truth.detach().float().cpu().clamp(-1, 1)).abs()
        res["gt_l1"] = [float(v) for v in gt.flatten(1).mean(1)]
        res["gt_l1_mean"] = _mean(res["gt_l1"])
        res["truth_flicker"] = flicker(truth)
        res["temporal_error_vs_truth"] = temporal_error(output, truth)
    return res


def _mean(values: list[float]) -> float:
    ok = [v for v in values if not math.isnan(v)]
    return sum(ok) / len(ok) if ok else float("nan")
