"""`python -m zoo_lorelei.measure [N] [PTI_STEPS] [N_PTI]` (or `--bootstrap-only`, `--pti-only STEPS N_PTI`):
issue 18 item 5 on the shipped models — domain adaptation
peeps -> lorelei (layer ablation of the HyperStyle offsets, codes only, PTI transferred) and encoder bootstrapping vs
the target encoder alone — written to `weights/evaluation.json` (the README / docs tables are made from it).

Inputs: the first N peeps test identities, variation 0 (exact lorelei counterparts: same index, same options).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import torch

from zoo import registry
from zoo.adaptation.evaluate import evaluate
from zoo.adaptation.layers import filter_deltas, select_layers
from zoo.adaptation.transfer import AdaptOptions, adapt, source_codes, source_offsets
from zoo.errors import ZooError
from zoo.inversion import WeightOffsets, render_with_change

from .domain import WEIGHTS_DIR

ABLATION = ("none", "res:4", "res:8", "res:16", "res:32", "res:8,16", "res:16,32", "all")


def _inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    peeps, lorelei = registry.get_domain("peeps"), registry.get_domain("lorelei")
    labels = lorelei.labels("test")
    rows = labels.index[labels["variation"] == 0][:n].to_numpy()
    return peeps.images("test")[rows], lorelei.images("test")[rows], labels.iloc[rows].reset_index(drop=True)


@torch.no_grad()
def source_side(x: torch.Tensor, labels: Any) -> dict[str, Any]:
    """Reference: the same measures on the *source* side — the peeps generator with the same codes (and offsets),
    scored by the peeps scorers / identity embedder against the peeps inputs: what the source inversion already
    loses before any transfer."""
    peeps = registry.get_domain("peeps")
    g = peeps.generator().generator
    codes, deltas = source_codes(x, peeps, 2), source_offsets(x, peeps, 2)
    layers = select_layers("default", g.layer_slots())
    out = {}
    for name, change in (("codes only", None), ("codes + offsets (default layers)",
                                                 WeightOffsets(filter_deltas(deltas, layers)))):
        img = render_with_change(g, codes, change).clamp(-1, 1)
        out[name] = evaluate(img, x, labels, peeps)
    return out


def _save(result: dict[str, Any]) -> None:
    (WEIGHTS_DIR / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")


@torch.no_grad()
def measure(n: int = 64, pti_steps: int = 100, n_pti: int = 24) -> dict[str, Any]:
    peeps, lorelei = registry.get_domain("peeps"), registry.get_domain("lorelei")
    x, renders, labels = _inputs(n)
    out: dict[str, Any] = {"n_images": int(len(x)), "inputs": "peeps test identities, variation 0",
                           "ceiling (lorelei renders themselves)": evaluate(renders, renders, labels, lorelei)}
    g_t = lorelei.generator().generator
    t0 = time.perf_counter()
    codes = source_codes(x, peeps, 2)
    deltas = source_offsets(x, peeps, 2)
    out["source seconds per image (codes + offsets)"] = round((time.perf_counter() - t0) / len(x), 4)
    slots = g_t.layer_slots()
    ablation = {}
    for spec in ABLATION:
        layers = select_layers(spec, slots)
        img = render_with_change(g_t, codes, WeightOffsets(filter_deltas(deltas, layers))).clamp(-1, 1)
        ablation[spec] = {"layers": layers, **evaluate(img, renders, labels, lorelei)}
    out["hyperstyle layer ablation (codes + offsets on these slots)"] = ablation
    _save(out)
    res = adapt(x, peeps, lorelei, ("codes", "hyperstyle"))
    out["adaptation"] = {m: {**evaluate(res.targets[m], renders, labels, lorelei), "seconds": res.seconds[m]}
                         for m in res.targets}
    # PTI tunes image by image (the costly baseline): the first n_pti images, with codes / hyperstyle on the same
    # images for a like-for-like row.
    k = min(n_pti, len(x))
    sub = labels.iloc[:k].reset_index(drop=True)
    rows: dict[str, Any] = {m: evaluate(res.targets[m][:k], renders[:k], sub, lorelei) for m in ("codes", "hyperstyle")}
    _save(out)
    try:
        with torch.enable_grad():
            pti = adapt(x[:k], peeps, lorelei, ("pti",), AdaptOptions(pti_steps=pti_steps))
        rows["pti"] = {**evaluate(pti.targets["pti"], renders[:k], sub, lorelei), "seconds": pti.seconds["pti"],
                       "pti_steps": pti_steps}
    except Exception as exc:  # noqa: BLE001 - report the baseline as unavailable, keep the other rows
        rows["pti"] = {"unavailable": f"{type(exc).__name__}: {exc}"[:300]}
    out[f"adaptation, first {k} images"] = rows
    _save(out)
    out["bootstrapping"] = bootstrapping(x, renders, labels)
    _save(out)
    return out


@torch.no_grad()
def bootstrapping(x: torch.Tensor, renders: torch.Tensor, labels: Any) -> dict[str, Any]:
    """Bootstrapped ReStyle-e4e (1 peeps step + k lorelei steps) vs the lorelei encoder alone (from the lorelei
    average image); unavailable (with the train command) without lorelei encoder weights."""
    lorelei = registry.get_domain("lorelei")
    runs = {"target encoder only, 2 iterations": {"n_iters": 2},
            "target encoder only, 5 iterations": {"n_iters": 5},
            "bootstrap peeps -> lorelei, 1 target step": {"bootstrap": "peeps"},
            "bootstrap peeps -> lorelei, 2 target steps": {"bootstrap": "peeps", "target_steps": 2}}
    out: dict[str, Any] = {}
    for name, opts in runs.items():
        try:
            inv = registry.create_inverter_for("restyle_e4e", lorelei, opts).invert(x, lorelei)
        except ZooError as exc:
            out[name] = {"unavailable": str(exc).splitlines()[0],
                         "train": "python -m zoo_lorelei.encoder_training restyle_e4e OUT 20 && "
                                  "python -m zoo_lorelei.encoder_training --install restyle_e4e OUT"}
            continue
        out[name] = evaluate(inv.reconstructions.clamp(-1, 1), renders, labels, lorelei)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1:2] == ["--pti-only"]:  # refresh the PTI row of an earlier evaluation.json: --pti-only STEPS N_PTI
        result = json.loads((WEIGHTS_DIR / "evaluation.json").read_text())
        x, renders, labels = _inputs(result["n_images"])
        steps, k = int(sys.argv[2]), int(sys.argv[3])
        key = next(key for key in result if key.startswith("adaptation, first"))
        with torch.enable_grad():
            pti = adapt(x[:k], registry.get_domain("peeps"), registry.get_domain("lorelei"), ("pti",),
                        AdaptOptions(pti_steps=steps))
        result[key]["pti"] = {**evaluate(pti.targets["pti"], renders[:k], labels.iloc[:k].reset_index(drop=True),
                                         registry.get_domain("lorelei")), "seconds": pti.seconds["pti"],
                              "pti_steps": steps}
        _save(result)
        print(json.dumps(result[key], indent=2))
        raise SystemExit(0)
    if sys.argv[1:2] == ["--bootstrap-only"]:  # refresh the bootstrapping rows of an earlier evaluation.json
        result = json.loads((WEIGHTS_DIR / "evaluation.json").read_text())
        x, renders, labels = _inputs(result["n_images"])
        result["bootstrapping"] = bootstrapping(x, renders, labels)
        result["source side (peeps generator and scorers vs the peeps inputs)"] = source_side(x, labels)
        (WEIGHTS_DIR / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: result[k] for k in ("bootstrapping", "source side (peeps generator and scorers vs the "
                                                 "peeps inputs)")}, indent=2))
        raise SystemExit(0)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    n_pti = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    result = measure(n, steps, n_pti)
    (WEIGHTS_DIR / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
