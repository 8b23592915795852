"""Editing directions of peeps (`zoo train directions --domain peeps`): InterFaceGAN boundaries in W, StyleSpace
channels and the edited region of each attribute, labelled through the renderer's ground truth.

Recipe (each stage cached in the run directory with its wall time; rerunning resumes):

1. reconstructions: the pSp encoder inverts the train and test renders (whose true attributes the renderer knows).
2. labeller: an `AttributeNet` trained on those *reconstructions* with the renderer's labels, so it reads each
   attribute as the generator draws it (its accuracy on the test reconstructions is in the card). It only labels
   the samples below; the domain's attribute scorers (trained on renders, `zoo train attributes`), which the bench
   uses to measure edits, never take part, so their attribute change is an independent measure.
3. samples: `N_SAMPLES` mapped z (ψ = 1, fixed noise) rendered and scored by the labeller.
4. boundaries: InterFaceGAN's official `train_boundary` (top / bottom `ratio` by score, 70 / 30 split, linear
   SVM; `zoo_editors.fitting`) for smile, glasses, facial hair and rotation; each unit normal is stored scaled by
   the std of the samples' projection on it, so step 1 = one standard deviation of W along the direction, the unit
   of GANSpace's components. Edits apply to every W+ layer, as the official editors (`latents + f * n` on all
   codes). The official ratio is 0.02; `RATIOS` are tried and the one whose ±3 edits move the *labeller* most
   the right way on `SELECT_SAMPLES` other samples is kept (`edit_effect`; the domain's scorers are not used).
5. StyleSpace channels: the official signal-to-noise detection on the labeller's 1000 most positive samples
   (toRGB layers excluded) gives `CHANNEL_CANDIDATES` channels; as the paper verifies its channels by looking at
   them, each candidate and sign is checked with `edit_effect` and the best kept (`-s3_118` decreases channel 118
   of slot 3 for a positive step).
6. regions: per binary attribute, the pixels where toggling it changes the render (mean |on - off| over
   `REGION_PAIRS` identities in random poses >= `REGION_LEVEL` x its maximum): where a person looks for the edit.

Stored as safetensors {attribute: [w_dim], "region/<attribute>": [H, W] (0/1)}, with metadata "fit" (JSON: per
direction the boundary report and the labeller), "stylespace" (JSON {attribute: channel}) and "units".
"""

from __future__ import annotations

from collections.abc import Callable

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from .export import register_weights
from .models import ATTRIBUTES, AttributeNet

N_SAMPLES = 40_000
SEED = 11
RATIO = 0.02  # official chosen_num_or_ratio
SPLIT = 0.7  # official split_ratio
POSITIVE_BANK = 1000  # StyleSpace's positive examples
RATIOS = (0.02, 0.1, 0.25, 0.5)
CHANNEL_CANDIDATES = 5
STYLESPACE_SCALE = 5.0  # the StyleSpace editor's default: channel stds per step
SELECT_SAMPLES = 256
SELECT_SEED = 12
REGION_PAIRS = 128
REGION_LEVEL = 0.25
COMMAND = "zoo train directions --domain peeps"


def _timed(out: Path, stage: str, fn, times: dict[str, float]):
    """Run `fn()` once; its result is cached in out/<stage>.pt (weights-only tensors / lists) with its wall time."""
    path = out / f"{stage}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        times[stage] = float(saved["seconds"])
        return saved["value"]
    t0 = time.time()
    value = fn()
    times[stage] = round(time.time() - t0, 1)
    tmp = path.with_suffix(".tmp")
    torch.save({"value": value, "seconds": times[stage]}, tmp)
    tmp.replace(path)
    return value


@torch.no_grad()
def _reconstructions(domain, split: str) -> dict:
    import zoo
    from .dataset import load_split

    data = load_split(split, domain.resolution, progress=False)
    x = data.to_tensor()
    inverter = zoo.create_inverter_for("psp", domain)
    recon = torch.cat([inverter.invert(x[i : i + 256], domain).reconstructions.clamp(-1, 1).half()
                       for i in range(0, len(x), 256)])
    cols = [*ATTRIBUTES, "rotation", "tx", "ty"]
    return {"images": recon, "labels": {c: torch.tensor(data.labels[c].to_numpy(dtype=np.float32)) for c in cols}}


def _labels_frame(labels: dict):
    import pandas as pd

    return pd.DataFrame({k: v.numpy() for k, v in labels.items()})


def _train_labeller(train: dict, test: dict) -> dict:
    from .model_training import SmallNetConfig, evaluate_attributes, train_attributes

    cfg = SmallNetConfig(epochs=3, batch=128, lr=3e-3, seed=1, degrade=0.0)
    net, info = train_attributes(train["images"].float(), _labels_frame(train["labels"]), cfg)
    metrics = evaluate_attributes(net, test["images"].float(), _labels_frame(test["labels"]))
    return {"state": {k: v.clone() for k, v in net.state_dict().items()}, "metrics": metrics,
            "steps": info["steps"], "config": json.dumps(info["config"])}


def _labeller(saved: dict) -> AttributeNet:
    net = AttributeNet()
    net.load_state_dict(saved["state"])
    return net.eval()


@torch.no_grad()
def _samples(domain, labeller: AttributeNet, n: int, seed: int) -> dict:
    g = domain.generator().generator
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(seed))
    ws, scores = [], []
    for i in range(0, n, 500):
        w = g.style(z[i : i + 500])
        img, _ = g([w], input_is_latent=True, randomize_noise=False)
        ws.append(w)
        scores.append(labeller(img.clamp(-1, 1)))
    return {"w": torch.cat(ws), "scores": {k: torch.cat([s[k] for s in scores]) for k in scores[0]}}


def _toggle(attr: str, base, rng: np.random.Generator):
    from . import avatars

    if attr == "smile":
        on = replace(base, expression=avatars.SMILE_FACES[rng.integers(len(avatars.SMILE_FACES))])
        off = replace(base, expression=avatars.NON_SMILE_FACES[rng.integers(len(avatars.NON_SMILE_FACES))])
    elif attr == "glasses":
        on = replace(base, accessory=avatars.GLASSES[rng.integers(len(avatars.GLASSES))])
        off = replace(base, accessory=None)
    elif attr == "facial_hair":
        on = replace(base, facial_hair=avatars.FACIAL_HAIRS[rng.integers(len(avatars.FACIAL_HAIRS))], mask=None)
        off = replace(base, facial_hair=None, mask=None)
    else:
        raise ValueError(f"no region for attribute {attr!r}")
    return on, off


def edit_regions(size: int, pairs: int = REGION_PAIRS, level: float = REGION_LEVEL, seed: int = 0,
                 first_seed: int = 2_000_000) -> dict[str, torch.Tensor]:
    """Per binary attribute a 0/1 mask [size, size] of the pixels it occupies: the mean over `pairs` identities
    (seeds from `first_seed`, outside the train and test splits, each in its own random pose) of the channel-mean
    |render(attribute on) - render(off)| on [-1, 1] images, kept where it reaches `level` x its maximum."""
    from . import avatars

    rng = np.random.default_rng(seed)
    out = {}
    for attr in ATTRIBUTES:
        acc = np.zeros((size, size))
        for i in range(pairs):
            ident = avatars.sample_identity(first_seed + i)
            on, off = _toggle(attr, avatars.sample_attributes(first_seed + i, 0), rng)
            a = avatars.render(ident, on, size).astype(np.float64)
            b = avatars.render(ident, off, size).astype(np.float64)
            acc += np.abs(a - b).mean(-1) / 127.5
        acc /= pairs
        out[attr] = torch.from_numpy(acc >= level * acc.max()).float()
    return out


@torch.no_grad()
def edit_effect(domain, labeller: AttributeNet, attr: str, w: torch.Tensor, *, direction: torch.Tensor | None = None,
                channel: tuple[int, int, float] | None = None, step: float = 3.0) -> float:
    """How well an edit moves `labeller`'s `attr` on samples w [N, w_dim]: min(mean change at +step, -(mean change
    at -step)), > 0 when both steps move it the right way (probability units; degrees for rotation). The edit is
    `direction` [w_dim] on every W+ layer, or `channel` = (slot, channel, signed S offset per step)."""
    g = domain.generator().generator
    lat = w[:, None].repeat(1, g.n_latent, 1)

    def score(latents: torch.Tensor, offsets=None) -> torch.Tensor:
        img, _ = g([latents], input_is_latent=True, randomize_noise=False, style_offsets=offsets)
        return labeller(img.clamp(-1, 1))[attr]

    base = score(lat)
    moves = []
    for s in (step, -step):
        if direction is not None:
            edited = score(lat + s * direction)
        else:
            slot, ch, per_step = channel
            offsets: list[torch.Tensor | None] = [None] * len(g.layer_slots())
            off = torch.zeros(1, g.layer_slots()[slot].in_channels)
            off[0, ch] = s * per_step
            offsets[slot] = off
            edited = score(lat, offsets)
        moves.append(float((edited - base).mean()) * (1 if s > 0 else -1))
    return min(moves)


def _selection_samples(domain) -> torch.Tensor:
    g = domain.generator().generator
    with torch.no_grad():
        return g.style(torch.randn(SELECT_SAMPLES, g.style_dim, generator=torch.Generator().manual_seed(SELECT_SEED)))


@torch.no_grad()
def pick_stylespace_channels(g, w: torch.Tensor, scores: dict[str, torch.Tensor],
                             effect: Callable[[str, tuple[int, int, float]], float],
                             effect_key: str = "labeller_effect_at_3", candidates: int = CHANNEL_CANDIDATES
                             ) -> dict[str, dict]:
    """StyleSpace channel per attribute (Wu et al. 2021, official signal-to-noise detection): the
    `candidates` channels `rank_channels` finds for the style codes of `w` [N, w_dim] and `scores[attr]`
    [N], each tried with both signs at `STYLESPACE_SCALE` channel stds; `effect(attr, (slot, channel, offset))`
    scores a candidate edit and the best one is kept. Works for any generator with `style_codes` / `layer_slots`
    (StyleGAN2 and StyleGAN3). Returns {attr: {"channel", "layer", "relevance", effect_key, "candidates ..."}}."""
    from zoo_editors.fitting import rank_channels

    slots = g.layer_slots()
    parts = [g.style_codes(w[i : i + 5000, None].repeat(1, g.n_latent, 1)) for i in range(0, len(w), 5000)]
    codes = [torch.cat(p) for p in zip(*parts)]
    skip = {k for k, s in enumerate(slots) if s.is_torgb}
    out = {}
    for attr in ATTRIBUTES:
        top = rank_channels(codes, scores[attr], bank=POSITIVE_BANK, skip=skip, top=candidates)
        tried = {}
        for k, c, rel, mu in top:
            std = float(codes[k][:, c].std())
            for sign in (1.0, -1.0) if mu >= 0 else (-1.0, 1.0):
                name = f"{'-' if sign < 0 else ''}s{k}_{c}"
                tried[name] = (effect(attr, (k, c, sign * STYLESPACE_SCALE * std)), rel, k)
        best = max(tried, key=lambda n: tried[n][0])
        out[attr] = {"channel": best, "layer": slots[tried[best][2]].name, "relevance": round(tried[best][1], 3),
                     effect_key: round(tried[best][0], 4),
                     "candidates (s2n order, sign of the bank mean first)": {n: round(v[0], 4) for n, v in tried.items()}}
    return out


def _stylespace(domain, samples: dict, labeller: AttributeNet) -> dict[str, dict]:
    w_sel = _selection_samples(domain)
    return pick_stylespace_channels(
        domain.generator().generator, samples["w"], samples["scores"],
        lambda attr, channel: edit_effect(domain, labeller, attr, w_sel, channel=channel))


def fit_directions(samples: dict, domain=None, labeller: AttributeNet | None = None
                   ) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """InterFaceGAN boundaries of the labelled samples ({"w": [N, w_dim], "scores": {name: [N]}}): per attribute
    (binary ones and rotation) the unit normal x its step unit, and the boundary report. With `domain` and
    `labeller`, each of `RATIOS` is fitted and the one with the best `edit_effect` kept; else the official ratio."""
    from zoo_editors.fitting import step_unit, train_boundary

    w = samples["w"].float()
    w_sel = _selection_samples(domain) if labeller is not None else None
    dirs, report = {}, {}
    for name in (*ATTRIBUTES, "rotation"):
        fits = {}
        for ratio in RATIOS if labeller is not None else (RATIO,):
            b = train_boundary(w, samples["scores"][name].float(), ratio=ratio, split=SPLIT,
                               binary=name != "rotation")
            unit = step_unit(w, b.normal)
            effect = edit_effect(domain, labeller, name, w_sel, direction=b.normal * unit) if w_sel is not None \
                else None
            fits[ratio] = (b, unit, effect)
        ratio = max(fits, key=lambda r: fits[r][2]) if labeller is not None else RATIO
        b, unit, effect = fits[ratio]
        dirs[name] = (b.normal * unit).contiguous()
        report[name] = {**b.report, "ratio": ratio, "step_unit_w_norm": round(unit, 4)}
        if labeller is not None:
            report[name]["labeller_effect_at_3 per ratio"] = {str(r): round(v[2], 4) for r, v in fits.items()}
    return dirs, report


def run_directions(out: Path) -> dict:
    """`zoo train directions --domain peeps`: every stage above (cached in `out`), then the safetensors file,
    its model card and the manifest entry."""
    from .domain import WEIGHTS_DIR, PeepsDomain

    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    domain = PeepsDomain()
    train = _timed(out, "reconstructions_train", lambda: _reconstructions(domain, "train"), times)
    test = _timed(out, "reconstructions_test", lambda: _reconstructions(domain, "test"), times)
    saved = _timed(out, "labeller", lambda: _train_labeller(train, test), times)
    labeller = _labeller(saved)
    samples = _timed(out, "samples", lambda: _samples(domain, labeller, N_SAMPLES, SEED), times)
    t0 = time.time()
    dirs, report = fit_directions(samples, domain, labeller)
    stylespace = _stylespace(domain, samples, labeller)
    times["fit"] = round(time.time() - t0, 1)
    regions = _timed(out, "regions", lambda: edit_regions(domain.resolution), times)
    labeller_desc = ("AttributeNet trained on pSp reconstructions of the train renders with the renderer's labels "
                     f"(seed 1, 3 epochs); accuracy on the test reconstructions: {saved['metrics']}")
    for name in report:
        report[name]["labeller"] = "reconstruction-trained labeller (not the domain's attribute scorers)"
    tensors = {**dirs, **{f"region/{k}": v.contiguous() for k, v in regions.items()}}
    path = WEIGHTS_DIR / "directions.safetensors"
    units = ("each direction = unit normal x std of <w, n> over the samples: step 1 = one standard deviation of W "
             "along it (GANSpace's unit)")
    save_file(tensors, str(path), metadata={"fit": json.dumps(report), "units": units,
                                            "stylespace": json.dumps({k: v["channel"] for k, v in stylespace.items()})})
    card = {"method": "InterFaceGAN (Shen et al. 2020) boundaries in W, official train_boundary (top/bottom ratio "
                      f"by score, {SPLIT:.0%} fit / rest validation, linear SVM; ratio from {list(RATIOS)} by the "
                      "labeller's response to +-3 edits of other samples); StyleSpace (Wu et al. 2021) channels by "
                      f"the official signal-to-noise detection (top {CHANNEL_CANDIDATES}, sign and channel by the "
                      "same check)",
            "labels": labeller_desc, "samples": f"{N_SAMPLES} mapped z (psi 1, fixed noise), seed {SEED}",
            "wall time (s)": round(sum(times.values()), 1), "stage wall times (s)": dict(times),
            "fit": {k: json.dumps(v) for k, v in report.items()},
            "stylespace channels": {k: json.dumps(v) for k, v in stylespace.items()},
            "edited regions": {k: f"{int(v.sum())} of {v.numel()} pixels (renderer on/off difference >= "
                                  f"{REGION_LEVEL} x max over {REGION_PAIRS} identities)" for k, v in regions.items()},
            "units": units,
            "edits measured": "python benchmarks/edit_visibility.py (region / image change and the domain's "
                              "independent scorer at steps -3 / +3 on inverted test images; table below and in "
                              "benchmarks/board/peeps/edit_visibility.md)"}
    entry = register_weights("directions", path, command=COMMAND, card=card)
    return {"directions": report, "stylespace": stylespace, "labeller": saved["metrics"], "seconds": times,
            "weights": entry}
