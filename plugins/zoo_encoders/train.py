"""`train_encoder` / `export_encoder`: the papers' training recipes scaled to a small domain on the CPU.

Common recipe (pSp / e4e / ReStyle / HyperStyle READMEs, anchors §5-8): Ranger (RAdam + Lookahead + gradient
centralisation), batch 8, generator frozen, L2 1.0 + LPIPS-alex 0.8 + identity 0.1 (the faces recipe: the domain's
identity model stands in for ArcFace; HyperStyle's faces run uses the same weights), W-norm 0, inputs in [-1, 1] at
the domain resolution (32x32 for peeps), `latent_avg` added to the codes (`start_from_latent_avg`).

What is scaled, and why (the official runs are 120k-500k steps on a GPU for about a week; ours get <= 90 minutes
on one contended CPU core per method):
* steps / time: every method stops at `steps` or after `max_minutes` of accumulated wall time, whichever comes
  first (checkpointing on the way; rerunning resumes). Defaults: 90 minutes for pSp, e4e, ReStyle-pSp and
  ReStyle-e4e; HyperStyle's budget is split between its W-encoder (15 min) and the hypernetwork (75 min). The
  shipped pSp / e4e used 20 / 25 minutes (~3.9k / 3.8k steps); ReStyle and HyperStyle cost 3-10x more per step,
  so they need their whole budget to get comparable step counts (`benchmarks/encoder_learning_curves.py`).
* learning rate: 1e-4 officially; the small encoders use 5e-4 (`LR_SMALL`). Probe (pSp at peeps size, Ranger,
  batch 8, fresh generator samples as targets so the loss measures generalisation; 1 thread): mean training loss
  at 400 steps 0.265 / 0.232 / 0.211 / 0.202 for lr 1e-4 / 2e-4 / 5e-4 / 1e-3, at 1900 steps 0.170 (3e-4) vs
  0.162 (1e-3), all runs stable. With ~100x fewer steps than the official runs the higher rate clearly helps;
  5e-4 keeps most of 1e-3's gain with a margin for the longer runs and the hypernetwork (no lr decay, as
  officially). The latent discriminator keeps e4e's Adam 2e-5.
* LPIPS at 64x64 (bilinear upsampling of the 32x32 images), see `losses.py`.
* e4e progressive training: the W-only phase lasts 20 % of the budget, then one more delta every 5 % (official 20k
  then every 2k steps); progress = max(step / steps, wall time / budget), so all deltas are on well before a
  time-limited run ends. Delta reg 2e-4 (L2 norm), latent discriminator lambda 0.1 (4-layer MLP, Adam 2e-5, R1 10
  every 16 steps, pools of 50).
* ReStyle and HyperStyle: `n_iters_per_batch` = 5 as official (per-iteration backward, detach between
  iterations); a 5-iteration step costs ~0.9-1.0 s (ReStyle) / ~2.1 s (HyperStyle) at batch 8 on an idle core, i.e.
  ~4.7k / ~1.8k optimiser steps in the budget. If the
  box is much slower, `--set n_iters_per_batch=3` trades iterations for steps.
* data: the domain's train split minus its last `n_val` images (held out for validation metrics and grids; the
  test split is never touched). No horizontal flips (official transforms flip, but the peeps generator was trained
  without mirroring, so flipped avatars are slightly off its distribution). One epoch of peeps is 24k images,
  more than a 90-minute run sees, so generator samples are not mixed in (`synthetic_fraction` allows it).
* randomize_noise: True in pSp / e4e / ReStyle training forwards, False for HyperStyle (official); inference and
  validation always use the fixed noise buffers.
* StyleGAN3 domains (a generator with a Fourier-feature input): pSp, e4e, ReStyle-pSp and ReStyle-e4e train on the
  domain's aligned images against the frozen generator's aligned renders, predicting all num_ws (16 officially)
  codes; e4e keeps its progressive deltas and delta regularisation over them. The family's recipe differences
  (`SG3_RECIPES`) follow stylegan3-editing: ReStyle `n_iters_per_batch` 3 (train and test), ReStyle-e4e without
  progressive training (all deltas from the start, no delta regularisation) and real discriminator codes at
  truncation 0.7. HyperStyle / the W-encoder are StyleGAN2-only (an InputError says so).

Run directory: `state.pt` (atomic, every `checkpoint_every` steps, at each validation, on time-out and Ctrl-C),
`config.json`, `log.json`, `val/NNNNNN.png` grids (rows: input | reconstruction per iteration) and, after
`export_encoder`, `encoder_<method>.safetensors` (fp16) with its model card.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from zoo.cards import cache_dir, sha256_file
from zoo.errors import CheckpointError, InputError, ZooError
from zoo.options import make_options
from zoo.training.checkpointing import load_training_state, restoring, rng_state, save_atomic, set_rng_state
from zoo.training.stylegan2_gan import save_grid

from zoo.encoders.generators import STYLEGAN2, STYLEGAN3, generator_family, render_aligned, sample_w

from .configs import (
    DEFAULT_BACKBONE,
    METHODS,
    SG3_METHODS,
    PEEPS_SIZES,
    EncoderConfig,
    SmallSizes,
    build_module,
    count_parameters,
    small_config,
    weight_role,
)
from .losses import ReconstructionLoss, build_lpips
from .trainers import TRAINERS, Trainer
from .weights_io import load_encoder_file, save_encoder_file

LR_SMALL = 5e-4
# what every encoder run's state.pt holds (`save_state` in train_encoder)
STATE_KEYS = ("method", "config", "recipe", "trainer", "step", "wall_seconds", "log", "rng", "info")


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters (JSON-serialised into the run directory and the model card)."""

    steps: int = 8000
    batch: int = 8
    max_minutes: float | None = 90.0
    optimizer: str = "ranger"  # ranger | adamw | adam
    lr: float = LR_SMALL
    l2_lambda: float = 1.0
    lpips_lambda: float = 0.8
    id_lambda: float = 0.1
    w_norm_lambda: float = 0.0
    lpips_size: int = 64
    randomize_noise: bool = True
    n_iters_per_batch: int = 1
    # e4e / ReStyle-e4e
    progressive_start: float = 0.2
    progressive_step_every: float = 0.05
    delta_norm_lambda: float = 0.0
    w_discriminator_lambda: float = 0.0
    w_discriminator_lr: float = 2e-5
    r1: float = 10.0
    d_reg_every: int = 16
    w_pool_size: int = 50
    progressive: bool = True  # False: all deltas from the start, no delta reg (stylegan3-editing ReStyle-e4e)
    real_w_truncation: float = 1.0  # truncation psi of the discriminator's real codes (stylegan3-editing: 0.7)
    # data
    hflip: bool = False
    synthetic_fraction: float = 0.0
    n_val: int = 64
    # bookkeeping
    checkpoint_every: int = 100
    val_every: int = 1000
    val_iters: int = 5
    log_every: int = 10


_E4E = dict(delta_norm_lambda=2e-4, w_discriminator_lambda=0.1)
# Step counts are what fits the time budget on an idle core of the reference box (measured s/step at batch 8:
# pSp 0.30, e4e 0.39, W-encoder 0.24, ReStyle ~0.9-1.0 with 5 iterations, HyperStyle ~2.2 with 5 iterations; the
# ReStyle / HyperStyle step caps are above what fits, so their minutes bind); on a busy
# box the minutes bind first and the run stops earlier (the model card records the steps actually done).
RECIPES: dict[str, Recipe] = {
    "psp": Recipe(steps=16000, val_every=2000),
    "e4e": Recipe(steps=9500, val_every=1000, **_E4E),
    "w_encoder": Recipe(steps=4200, max_minutes=15.0, val_every=1000),
    "restyle_psp": Recipe(steps=8000, n_iters_per_batch=5, val_every=300),
    "restyle_e4e": Recipe(steps=8000, n_iters_per_batch=5, val_every=300, **_E4E),
    "hyperstyle": Recipe(steps=4000, max_minutes=75.0, n_iters_per_batch=5, randomize_noise=False, val_every=200),
}
# StyleGAN3 generators: what stylegan3-editing changes (anchors-methods §9, `inversion/options/*train_options.py`,
# `coach_restyle_e4e.py`): 3 ReStyle iterations in training and at test time; ReStyle-e4e without progressive
# training (`progressive_steps` None: every delta on, all 16 codes discriminated, no delta regularisation) and real
# codes sampled at truncation 0.7. pSp / e4e (no official StyleGAN3 versions) keep their StyleGAN2 recipes.
# Validation keeps 5 iterations (the inverters' default n_iters), so the model card shows iterations 1-5.
SG3_RECIPES: dict[str, dict[str, Any]] = {
    "restyle_psp": {"n_iters_per_batch": 3},
    "restyle_e4e": {"n_iters_per_batch": 3, "progressive": False, "real_w_truncation": 0.7},
}
# settings that may change when a run is resumed
VOLATILE = {"steps", "max_minutes", "checkpoint_every", "val_every", "val_iters", "log_every"}
# fields added after runs were saved: a state without them was made with these values
ADDED_FIELDS = {"progressive": True, "real_w_truncation": 1.0}


def default_recipe(method: str, family: str = STYLEGAN2) -> Recipe:
    """The method's default recipe for a generator family ('stylegan2' | 'stylegan3', see `SG3_RECIPES`)."""
    if method not in RECIPES:
        raise InputError(f"unknown encoder method '{method}' (one of {', '.join(METHODS)})")
    changes = SG3_RECIPES.get(method, {}) if family == STYLEGAN3 else {}
    return make_options(Recipe, {**asdict(RECIPES[method]), **changes})


def make_recipe(method: str, overrides: dict[str, Any] | None = None, family: str = STYLEGAN2) -> Recipe:
    """The method's default recipe for the generator family with overrides (strings are converted to the field
    types)."""
    return make_options(Recipe, {**asdict(default_recipe(method, family)), **(overrides or {})})


def default_run_dir(method: str, domain_name: str, backbone: str | None = None) -> Path:
    return cache_dir() / "runs" / domain_name / weight_role(method, backbone).split("/", 1)[1]


def _resolve_domain(domain: Any) -> Any:
    if isinstance(domain, str):
        from zoo import registry

        return registry.get_domain(domain)
    return domain


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _to_float(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.to(device).float().div_(127.5).sub_(1.0)


def resolve_w_encoder(domain: Any, w_encoder: str | Path | None) -> Path:
    """HyperStyle's W-encoder file: the given path, the domain's installed one, or the default run's export."""
    if w_encoder is not None:
        p = Path(w_encoder)
        if not p.is_file():
            raise CheckpointError(f"W-encoder file not found: {p}")
        return p
    spec = domain.weights.get("encoder/w_encoder")
    if spec is not None:
        return spec.resolve()
    p = default_run_dir("w_encoder", domain.name) / "encoder_w_encoder.safetensors"
    if p.is_file():
        return p
    raise CheckpointError(f"HyperStyle needs a trained W-encoder first: run `zoo train w_encoder --domain "
                          f"{domain.name} --install` (or pass --w-encoder PATH)")


@dataclass
class _Run:
    method: str
    cfg: EncoderConfig
    recipe: Recipe
    trainer: Trainer
    loss: ReconstructionLoss
    data: torch.Tensor  # uint8 [N, 3, H, W]
    val: torch.Tensor  # uint8 [n_val, 3, H, W]
    info: dict[str, Any]


def _build(method: str, domain: Any, cfg: EncoderConfig, recipe: Recipe, device: torch.device,
           w_encoder: str | Path | None) -> _Run:
    loaded = domain.generator(device)
    g = loaded.generator.eval().requires_grad_(False)
    latent_avg = loaded.latent_avg.reshape(1, -1).expand(g.n_latent, -1).clone()
    identity = None
    if recipe.id_lambda > 0:
        try:
            identity = domain.identity_model(device)
        except NotImplementedError:
            raise ZooError(f"domain '{domain.name}' has no identity model: train with --set id_lambda=0") from None
    lpips = build_lpips(device) if recipe.lpips_lambda > 0 else None
    loss = ReconstructionLoss(identity, l2_lambda=recipe.l2_lambda, lpips_lambda=recipe.lpips_lambda,
                              id_lambda=recipe.id_lambda, w_norm_lambda=recipe.w_norm_lambda,
                              lpips_size=recipe.lpips_size, lpips=lpips, device=device)
    info: dict[str, Any] = {}
    spec = domain.weights.get("generator")
    info["generator_sha256"] = spec.sha256 if spec is not None else None
    w_enc_module = None
    if method == "hyperstyle":
        path = resolve_w_encoder(domain, w_encoder)
        w_file = load_encoder_file(path, g.layer_slots(), device, expect_method="w_encoder")
        if (w_file.config.n_styles, w_file.config.style_dim, w_file.config.input_size) != (
                cfg.n_styles, cfg.style_dim, cfg.input_size):
            raise CheckpointError(f"W-encoder {path} does not fit this generator / resolution")
        trained_on = w_file.training.get("generator_sha256")
        if trained_on and info["generator_sha256"] and trained_on != info["generator_sha256"]:
            warnings.warn(f"the W-encoder {path} was trained against another generator: retrain it first "
                          f"(zoo train w_encoder --domain {domain.name} --install)", stacklevel=2)
        w_enc_module = w_file.module
        latent_avg = w_file.latent_avg  # the W-encoder's codes are offsets from the latent_avg it was trained with
        info["w_encoder_sha256"] = sha256_file(path)
        info["w_encoder_path"] = str(path)
    trainer = TRAINERS[method](cfg, recipe, g, latent_avg, loss, device, w_encoder=w_enc_module)
    images = domain.images("train")
    if images.shape[-1] != cfg.input_size:
        raise InputError(f"domain images are {images.shape[-1]} px but the encoder config expects {cfg.input_size}")
    n_val = min(recipe.n_val, max(1, len(images) // 10))
    data = _to_uint8(images[:-n_val])
    val = _to_uint8(images[-n_val:])
    return _Run(method, cfg, recipe, trainer, loss, data, val, info)


def _sample_batch(run: _Run, device: torch.device) -> torch.Tensor:
    r = run.recipe
    idx = torch.randint(0, run.data.shape[0], (r.batch,))
    x = _to_float(run.data[idx], device)
    if r.hflip:
        flip = torch.rand(r.batch, device=device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    n_syn = int(round(r.synthetic_fraction * r.batch))
    if n_syn > 0:
        g = run.trainer.generator
        with torch.no_grad():
            w = sample_w(g, n_syn, device).unsqueeze(1).repeat(1, g.n_latent, 1)
            fake = render_aligned(g, w, randomize_noise=True)
        x = torch.cat([x[: r.batch - n_syn], fake.clamp(-1, 1)])
    return x


@torch.no_grad()
def validate(run: _Run, device: torch.device, grid_path: Path | None = None, n_grid: int = 8) -> dict[str, Any]:
    """Per-iteration L2 / LPIPS / ID similarity on the held-out images (inference path); optional grid PNG."""
    x_all = _to_float(run.val, device)
    per_iter: list[dict[str, list[float]]] = []
    grid_rows: list[torch.Tensor] = []
    n_iters = run.recipe.val_iters if run.trainer.iterative else 1
    for start in range(0, x_all.shape[0], 16):
        x = x_all[start : start + 16]
        images = run.trainer.reconstruct(x, n_iters)
        while len(per_iter) < len(images):
            per_iter.append({"l2": [], "lpips": [], "id_sim": []})
        for t, y in enumerate(images):
            y = y.clamp(-1, 1)
            per_iter[t]["l2"] += ((y - x) ** 2).flatten(1).mean(1).tolist()
            if run.loss.lpips is not None:
                per_iter[t]["lpips"] += run.loss.lpips_distance(y, x).tolist()
            if run.loss.identity is not None:
                per_iter[t]["id_sim"] += run.loss.id_similarity(y, x).tolist()
        if start == 0:
            k = min(n_grid, x.shape[0])
            grid_rows = [x[:k]] + [y[:k] for y in images]
    metrics = [{k: float(np.mean(v)) for k, v in d.items() if v} for d in per_iter]
    if grid_path is not None and grid_rows:
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        cols = len(grid_rows)
        tiles = torch.stack(grid_rows, dim=1).flatten(0, 1)  # row-major: image i -> input, iter 1, iter 2, ...
        save_grid(tiles, grid_path, nrow=cols)
    return {"iterations": metrics, "final": metrics[-1] if metrics else {}}


def train_encoder(
    method: str, domain: Any, out_dir: str | Path | None = None, steps: int | None = None, batch: int | None = None,
    max_minutes: float | None = None, resume: bool = True, seed: int = 0, *, backbone: str | None = None,
    config: EncoderConfig | None = None, sizes: SmallSizes = PEEPS_SIZES, recipe: dict[str, Any] | None = None,
    w_encoder: str | Path | None = None, device: str | torch.device = "cpu", progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) the small configuration of `method` on `domain` (a Domain or its name).

    steps / batch / max_minutes override the recipe (`max_minutes` = total wall-time budget of the run, summed over
    resumes); `recipe` = further Recipe overrides; `config` replaces the small configuration (e.g. tiny tests);
    `w_encoder` = HyperStyle's frozen W-encoder file. Returns a summary dict (step, wall_seconds, finished,
    validation metrics, run_dir).

    Raises CheckpointError naming `run_dir/state.pt` when an existing one cannot be resumed (empty, HTML, foreign,
    malicious or broken file; it is left untouched) and InputError when it was made with other settings.
    """
    if method not in METHODS:
        raise InputError(f"unknown encoder method '{method}' (one of {', '.join(METHODS)})")
    domain = _resolve_domain(domain)
    dev = torch.device(device)
    g = domain.generator(dev).generator
    family = generator_family(g)
    if family == STYLEGAN3 and method not in SG3_METHODS:
        raise InputError(f"{method} cannot be trained on a StyleGAN3 generator (domain '{domain.name}'); StyleGAN3 "
                         f"domains train {', '.join(SG3_METHODS)}")
    overrides = dict(recipe or {})
    for k, v in (("steps", steps), ("batch", batch), ("max_minutes", max_minutes)):
        if v is not None:
            overrides[k] = v
    rec = make_recipe(method, overrides, family)
    if config is None:
        config = small_config(method, g.n_latent, g.style_dim, domain.resolution, backbone, sizes, generator=family)
    elif config.method != method:
        raise InputError(f"config is for {config.method}, not {method}")
    elif (config.generator, config.n_styles) != (family, g.n_latent):
        raise InputError(f"config is for a {config.generator} generator with {config.n_styles} codes, but domain "
                         f"'{domain.name}' has a {family} generator with {g.n_latent}")
    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(method, domain.name, config.backbone)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.pt"

    state = None
    if resume and state_path.exists():
        state = load_training_state(state_path, STATE_KEYS, f"the {method} encoder")
        with restoring(state_path, f"the {method} encoder"):
            same_model = state["method"] == method and EncoderConfig.from_json(state["config"]) == config
            old = {k: v for k, v in {**ADDED_FIELDS, **dict(state["recipe"])}.items() if k not in VOLATILE}
        if not same_model:
            raise InputError(f"{state_path} holds a different model ({state['method']}); use --fresh or another --out")
        new = {k: v for k, v in json.loads(json.dumps(asdict(rec))).items() if k not in VOLATILE}
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise InputError(f"{state_path} was trained with other settings ({', '.join(diff)}); use --fresh "
                             "or another --out")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    run = _build(method, domain, config, rec, dev, w_encoder)
    step, wall, log = 0, 0.0, []
    val_history: list[dict[str, Any]] = []
    if state is not None:
        for key, what in (("generator_sha256", "generator"), ("w_encoder_sha256", "W-encoder")):
            with restoring(state_path, f"the {method} encoder"):
                other = dict(state["info"]).get(key) != run.info.get(key)
            if other:
                raise InputError(f"{state_path} was trained with another {what}; use --fresh or another --out")
        with restoring(state_path, f"the {method} encoder"):
            run.trainer.load_state_dict(state["trainer"])
            step, wall, log = int(state["step"]), float(state["wall_seconds"]), list(state["log"])
            val_history = list(state.get("val_history", []))
            set_rng_state(state["rng"])
    (run_dir / "config.json").write_text(json.dumps(
        {"method": method, "domain": domain.name, "seed": seed, "config": json.loads(config.to_json()),
         "recipe": asdict(rec), "parameters": count_parameters(run.trainer.module), **run.info}, indent=2))

    budget = rec.max_minutes * 60 if rec.max_minutes else None

    def progress_fraction() -> float:
        p = step / max(rec.steps, 1)
        return min(1.0, max(p, wall / budget if budget else 0.0))

    def save_state() -> None:
        save_atomic({"method": method, "config": config.to_json(), "recipe": json.loads(json.dumps(asdict(rec))),
                     "seed": seed, "trainer": run.trainer.state_dict(), "step": step, "wall_seconds": wall,
                     "log": log, "val_history": val_history, "rng": rng_state(), "info": run.info}, state_path)
        (run_dir / "log.json").write_text(json.dumps({"log": log[-200:], "validation": val_history}, indent=1))

    def run_validation() -> dict[str, Any]:
        v = validate(run, dev, run_dir / "val" / f"{step:06d}.png")
        val_history.append({"step": step, "wall": round(wall, 1), **v})
        return v

    run.trainer.set_progress(progress_fraction())
    start_step, t_last = step, time.time()
    bar = tqdm(total=rec.steps, initial=step, desc=f"train {method}", unit="step", dynamic_ncols=True,
               disable=not progress)
    stage_events: list[str] = []
    try:
        while step < rec.steps and not (budget is not None and wall >= budget):
            x = _sample_batch(run, dev)
            logs = run.trainer.train_step(x, step)
            step += 1
            now = time.time()
            wall += now - t_last
            t_last = now
            if run.trainer.set_progress(progress_fraction()):
                stage_events.append(f"step {step}: stage {run.trainer.stage}")
                log.append({"step": step, "event": f"progressive stage {run.trainer.stage}"})
            if not all(np.isfinite(v) for v in logs.values()):
                save_state()
                raise ZooError(f"{method}: non-finite loss at step {step} ({logs}); lower the lr (--set lr=...)")
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in ("loss", "l2", "lpips", "id", "stage")})
            if step % rec.log_every == 0 or step == start_step + 1:
                log.append({"step": step, "wall": round(wall, 1), **{k: round(v, 5) for k, v in logs.items()}})
            if step % rec.val_every == 0:
                run_validation()  # counted in the wall time: the budget is the whole run's
                save_state()
            elif step % rec.checkpoint_every == 0:
                save_state()
    except KeyboardInterrupt:
        save_state()
        bar.close()
        raise
    bar.close()
    if not val_history or val_history[-1]["step"] != step:
        run_validation()
        wall += time.time() - t_last
    save_state()
    finished = step >= rec.steps or (budget is not None and wall >= budget)
    return {"method": method, "domain": domain.name, "run_dir": str(run_dir), "step": step,
            "wall_seconds": round(wall, 1), "finished": finished, "stage": run.trainer.stage,
            "validation": val_history[-1], "parameters": count_parameters(run.trainer.module),
            "stage_events": stage_events}


# --------------------------------------------------------------------------------------------- export
def _card_command(method: str, domain_name: str, state: dict[str, Any], backbone: str,
                  family: str = STYLEGAN2) -> str:
    """The `zoo train` command line that reproduces the run (changes from the family's default recipe as --set)."""
    r = {**ADDED_FIELDS, **state["recipe"]}
    parts = [f"zoo train {method} --domain {domain_name}", f"--steps {r['steps']}"]
    if r.get("max_minutes"):
        parts.append(f"--minutes {r['max_minutes']:g}")
    default = json.loads(json.dumps(asdict(default_recipe(method, family))))
    if r["batch"] != default["batch"]:
        parts.append(f"--batch {r['batch']}")
    parts.append(f"--seed {state.get('seed', 0)}")
    if backbone != DEFAULT_BACKBONE[method]:
        parts.append(f"--backbone {backbone}")
    parts += [f"--set {k}={v}" for k, v in r.items()
              if k not in ("steps", "max_minutes", "batch") and k in default and v != default[k]]
    return " ".join(parts + ["--install"])


def weights_installer(domain: Any) -> Any:
    """How `domain` installs trained weights, or None: its `install_weights(role, path, command=, card=)` method if
    it has one, else -- for embedded domains whose module keeps its weights in a `WEIGHTS_DIR` folder with a
    manifest (peeps: weights/, peeps3: weights3/) -- `zoo_peeps.export.register_weights` into that folder."""
    own = getattr(domain, "install_weights", None)
    if callable(own):
        return own
    import sys
    from functools import partial

    folder = getattr(sys.modules.get(type(domain).__module__), "WEIGHTS_DIR", None)
    if domain.name != "peeps" and (folder is None or not getattr(domain, "embedded", False)):
        return None
    from zoo_peeps.export import register_weights

    if domain.name == "peeps":  # peeps' own folder (register_weights' defaults)
        return register_weights
    return partial(register_weights, weights_dir=Path(folder), domain=domain.name)


def export_encoder(method: str, run_dir: str | Path, domain: Any, install: bool = True) -> dict[str, Any]:
    """Write `run_dir/encoder_<method>[_backbone].safetensors` (fp16, config + training facts in the metadata) from
    the run's state; when `install`, register it (file, model card, sha256 in the manifest) under the role
    'encoder/<method>[_backbone]' where the domain keeps its weights (`weights_installer`: peeps' weights/,
    peeps3's weights3/, ...); other domains get a warning and the file stays in the run directory."""
    domain = _resolve_domain(domain)
    run_dir = Path(run_dir)
    state_path = run_dir / "state.pt"
    if not state_path.exists():
        raise CheckpointError(f"no training state in {run_dir}: run `zoo train {method} --domain {domain.name}`")
    state = load_training_state(state_path, STATE_KEYS, f"the {method} encoder")
    if state["method"] != method:
        raise InputError(f"{run_dir} holds a {state['method']} run, not {method}")
    g = domain.generator("cpu").generator
    with restoring(state_path, f"the {method} encoder"):
        cfg = EncoderConfig.from_json(state["config"])
        module = build_module(cfg, g.layer_slots())
        module.load_state_dict(state["trainer"]["module"])
    if hasattr(module, "set_progressive_stage"):
        module.set_progressive_stage(18)  # ProgressiveStage.Inference: every delta on
    if method == "hyperstyle":  # the codes come from the W-encoder, relative to its latent_avg
        latent_avg = load_encoder_file(state["info"]["w_encoder_path"], None, "cpu").latent_avg
    else:
        latent_avg = domain.generator("cpu").latent_avg.reshape(1, -1).expand(cfg.n_styles, -1)
    val = state["val_history"][-1] if state.get("val_history") else {}
    n_params = count_parameters(module)
    training = {
        "method": method, "domain": domain.name, "steps": state["step"], "wall_seconds": round(state["wall_seconds"]),
        "seed": state.get("seed", 0), "recipe": state["recipe"], "final_stage": state["trainer"].get("stage"),
        "validation": val, "parameters": n_params, **state["info"],
    }
    training.pop("w_encoder_path", None)
    suffix = weight_role(method, cfg.backbone).split("/", 1)[1]
    path = save_encoder_file(run_dir / f"encoder_{suffix}.safetensors", module, cfg, latent_avg, training)
    result: dict[str, Any] = {"path": str(path), "sha256": sha256_file(path), "size_bytes": path.stat().st_size,
                              "parameters": n_params}
    if install:
        register_weights = weights_installer(domain)
        if register_weights is None:
            warnings.warn(f"domain '{domain.name}' does not install trained weights (only embedded domains with a "
                          f"weights folder do); the weights are at {path}", stacklevel=2)
            return result
        from .inverters import CARDS

        card = CARDS["hyperstyle" if method == "w_encoder" else method]  # the W-encoder is HyperStyle's part
        final = val.get("final", {})
        card_fields = {
            "paper": f"{card.title} ({card.authors}, {card.year}) {card.url}",
            "architecture": f"{cfg.encoder_type}, {cfg.backbone} backbone channels {list(cfg.channels)} units "
                            f"{list(cfg.units)}, input {cfg.input_nc}x{cfg.input_size}x{cfg.input_size}, "
                            f"{cfg.n_styles} styles x {cfg.style_dim} ({cfg.generator} generator)"
                            + (f", hypernet {cfg.hyper}" if cfg.hyper else ""),
            "parameters": f"{n_params:,} ({path.stat().st_size / 1e6:.2f} MB fp16 safetensors)",
            "steps": state["step"], "batch": state["recipe"]["batch"],
            "wall time": f"{state['wall_seconds'] / 60:.1f} min",
            "seed": state.get("seed", 0),
            "recipe": {k: v for k, v in state["recipe"].items() if k not in ("checkpoint_every", "log_every")},
            "validation (held-out train images, inference path)": {k: round(v, 4) for k, v in final.items()},
            "generator sha256": state["info"].get("generator_sha256"),
        }
        if "w_encoder_sha256" in state["info"]:
            card_fields["W-encoder sha256"] = state["info"]["w_encoder_sha256"]
        if val.get("iterations") and len(val["iterations"]) > 1:
            def label(i: int) -> str:
                if method == "hyperstyle":
                    return "W-encoder inversion" if i == 0 else f"iteration {i}"
                return f"iteration {i + 1}"

            card_fields["validation per iteration"] = {
                label(i): {k: round(v, 4) for k, v in m.items()} for i, m in enumerate(val["iterations"])}
        entry = register_weights(weight_role(method, cfg.backbone), path,
                                 command=_card_command(method, domain.name, state, cfg.backbone, cfg.generator),
                                 card=card_fields)
        result["installed"] = entry
    return result


def summary_json(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, default=str)


__all__ = ["RECIPES", "Recipe", "export_encoder", "make_recipe", "train_encoder", "validate"]
