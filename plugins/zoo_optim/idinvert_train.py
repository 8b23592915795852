"""Training of the IDInvert domain-guided encoder (`zoo train idinvert --domain <name>`), resumable.

Recipe (genforce/idinvert `train_encoder.py` / `training/loss_encoder.py`, anchors §4, StyleGAN2 adaptation described
in `idinvert.py`):

* generator frozen; encoder E and discriminator D trained jointly, Adam betas (0.9, 0.99), lr 1e-4 for both,
  multiplied by 0.8 every `steps / 4` steps;
* E loss per batch: MSE(x, G(E(x))) + 0.8 * LPIPS-Alex(G(E(x)), x) (substitute for 5e-5 * VGG16 conv4_3 MSE)
  + 0.08 * softplus(-D(G(E(x)))), plus for the generator-sample part of the batch 1.0 * MSE(E(G(w)), w);
* D loss: softplus(D(G(E(x)))) + softplus(-D(x_real)) + R1 (gamma 10: 5 * ||grad D(x_real)||^2) on real images;
* batches mix real training images of the domain and G(w) samples of mapped z (`sample_fraction`, 0.5; 0 = official);
  every render uses the generator's fixed noise buffers (the noise inversion renders with).

Run directory: `state.pt` (E, D, optimisers, step, wall time, log, RNG states; written atomically every
`checkpoint_every` steps and when `max_minutes` runs out — calling again resumes), `encoder.safetensors` (the
current encoder, float32, loadable with `--option weights=...`), `samples/NNNNNN.png` validation grids (first row:
fixed held-out images, second row: G(E(x)); step 0 = the starting point) and `config.json`.

Cost on the reference 2-core CPU (1 thread, peeps-shaped 32 px generator, default small widths 32 -> 256,
4.8 M parameters, batch 16): ~5 s per step with LPIPS at 256 px (the default, aligned with the bench's LPIPS),
~2 s at `lpips_size=64` (cheaper, but for the projector LPIPS at 64 px transferred poorly to the 256 px metric, see
`zoo_optim.EMBEDDED`). The official 14,000 kimg are out of reach on a CPU;
budget the run with `max_minutes` and resume. Short runs: BatchNorm's running statistics (momentum 0.1) lag
the training-mode statistics, so eval-mode validation can trail the training loss for the first few hundred steps.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import autograd
from tqdm.auto import tqdm

from zoo.cards import sha256_file
from zoo.stylegan2.discriminator import Discriminator
from zoo.training.checkpointing import (
    RESTART_HINT,
    ResumeMismatchError,
    load_training_state,
    restoring,
    rng_state,
    save_atomic,
    set_rng_state,
)

from ._common import Perceptual, lpips_network, resolve_lpips_size
from .idinvert import EncoderConfig, IDInvertEncoder, load_encoder, save_encoder

if TYPE_CHECKING:
    from zoo.domain import Domain


@dataclass
class IDInvertTrainConfig:
    """Hyper-parameters of an encoder training run (JSON-serialised into the run directory and the model card)."""

    steps: int = 20_000
    batch: int = 16
    lr: float = 1e-4
    d_lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.99
    lr_decay: float = 0.8  # lr multiplied by this every steps / 4 (official: decay 0.8 every max_iters / 4)
    mse_weight: float = 1.0
    perceptual_weight: float = 0.8  # LPIPS-Alex (official: 5e-5 x VGG16 conv4_3 MSE)
    adv_weight: float = 0.08
    r1_gamma: float = 10.0
    r1_every: int = 1
    sample_fraction: float = 0.5  # share of each batch rendered by G from mapped z (0 = official: reals only)
    latent_weight: float = 1.0  # MSE(E(G(w)), w) on those samples
    lpips_size: int | None = None  # None = 256
    initial_features: int | None = None  # None = 64 (>= 128 px) / 32 (small configuration)
    max_channels: int | None = None  # None = 1024 / 256
    seed: int = 0
    checkpoint_every: int = 200
    sample_every: int = 500
    log_every: int = 10
    n_val: int = 8


VOLATILE = ("steps", "checkpoint_every", "sample_every", "log_every")
# what every IDInvert run's state.pt holds (`save_state` in train_idinvert)
STATE_KEYS = ("config", "encoder", "discriminator", "e_optim", "d_optim", "step", "wall_seconds", "log", "rng")

# Training settings of the embedded 32 px `peeps` domain where they differ from IDInvertTrainConfig's defaults
# (cost: see the module docstring). `make_train_command` applies them for `--domain peeps`.
EMBEDDED_TRAIN: dict[str, Any] = {}


def _lr_at(step: int, cfg: IDInvertTrainConfig, base: float) -> float:
    return base * cfg.lr_decay ** (step // max(1, cfg.steps // 4))


def _val_images(domain: Domain, n: int) -> torch.Tensor:
    try:
        return domain.images("test", limit=n)
    except Exception:  # noqa: BLE001 - a domain without a test split: use the first training images
        return domain.images("train", limit=n)


def train_idinvert(
    domain: Domain, out_dir: str | Path, steps: int | None = None, batch: int | None = None,
    max_minutes: float | None = None, resume: bool = True, seed: int | None = None, *,
    config: IDInvertTrainConfig | None = None, device: str | torch.device = "cpu", progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) the IDInvert encoder of `domain` in `out_dir`; returns a summary dict.

    steps / batch / seed override the config. Stops at `steps` or after `max_minutes` of wall time in this call
    (then saves; call again to resume — `resume=False` starts over). The encoder is written to
    `out_dir/encoder.safetensors` at the end of every call.

    An existing `out_dir/state.pt` is checked first: CheckpointError naming it when it cannot be resumed (empty, HTML,
    foreign, malicious or broken; left untouched), ResumeMismatchError (InputError, ValueError) when it was made with
    another config.
    """
    cfg = config or IDInvertTrainConfig()
    cfg = replace(cfg, **{k: v for k, v in (("steps", steps), ("batch", batch), ("seed", seed)) if v is not None})
    out = Path(out_dir)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    state_path = out / "state.pt"
    dev = torch.device(device)
    cfg_json = json.loads(json.dumps(asdict(cfg)))
    st = None
    if resume and state_path.exists():  # checked before any heavy work
        st = load_training_state(state_path, STATE_KEYS, "the IDInvert encoder")
        with restoring(state_path, "the IDInvert encoder"):
            same = {k: v for k, v in dict(st["config"]).items() if k not in VOLATILE}
        if same != {k: v for k, v in cfg_json.items() if k not in VOLATILE}:
            diff = sorted(k for k in same if same[k] != cfg_json.get(k))
            raise ResumeMismatchError(f"{state_path} was made with a different config ({', '.join(diff)}); "
                                      f"use a new output directory or resume=False (--no-resume), or {RESTART_HINT}")

    loaded = domain.generator(dev)
    g = loaded.generator
    for p in g.parameters():
        p.requires_grad_(False)
    enc_cfg = EncoderConfig.for_generator(g, cfg.initial_features, cfg.max_channels)
    enc = IDInvertEncoder(enc_cfg).to(dev)
    disc = Discriminator(g.size, channels=dict(g.channels)).to(dev)
    e_opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))
    perc = None
    if cfg.perceptual_weight > 0:
        perc = Perceptual(lpips_network(dev), resolve_lpips_size(cfg.lpips_size, g.size))

    step, wall, log = 0, 0.0, []
    if st is not None:
        with restoring(state_path, "the IDInvert encoder"):
            enc.load_state_dict(st["encoder"])
            disc.load_state_dict(st["discriminator"])
            e_opt.load_state_dict(st["e_optim"])
            d_opt.load_state_dict(st["d_optim"])
            step, wall, log = int(st["step"]), float(st["wall_seconds"]), list(st["log"])
            set_rng_state(st["rng"])
    else:
        torch.manual_seed(cfg.seed)
        with torch.no_grad():  # start the last BN at the generator's per-dimension w statistics
            z = torch.randn(4096, g.style_dim, generator=torch.Generator().manual_seed(cfg.seed + 7)).to(dev)
            w = g.style(z)
            enc.init_output(w.mean(0), w.std(0))
    (out / "config.json").write_text(json.dumps({"train": cfg_json, "encoder": asdict(enc_cfg),
                                                 "domain": domain.name}, indent=2) + "\n")

    data = domain.images("train").to(torch.float16)  # [N, 3, R, R] in [-1, 1]; fp16 halves the memory
    val = _val_images(domain, cfg.n_val).to(dev, torch.float32)
    n_samples = int(round(cfg.batch * cfg.sample_fraction))
    n_real = cfg.batch - n_samples
    kwargs = dict(input_is_latent=True, randomize_noise=False)
    gen_spec = domain.weights.get("generator")

    def validate() -> dict[str, float]:
        enc.eval()
        with torch.no_grad():
            rec, _ = g([enc(val)], **kwargs)
            res = {"val_mse": float((rec - val).pow(2).mean())}
            if perc is not None:
                res["val_lpips"] = float(perc(rec, val).mean())
        from zoo.training.stylegan2_gan import save_grid

        save_grid(torch.cat([val, rec]).cpu(), out / "samples" / f"{step:06d}.png", nrow=len(val))
        enc.train()
        return res

    def export() -> Path:
        extra = {"domain": domain.name, "step": step, "wall_seconds": round(wall, 1), "train_config": cfg_json,
                 "generator_sha256": gen_spec.sha256 if gen_spec is not None else None}
        return save_encoder(out / "encoder.safetensors", enc, extra=extra)

    def save_state() -> None:
        save_atomic({"config": cfg_json, "encoder": enc.state_dict(), "discriminator": disc.state_dict(),
                     "e_optim": e_opt.state_dict(), "d_optim": d_opt.state_dict(), "step": step,
                     "wall_seconds": wall, "log": log, "rng": rng_state()}, state_path)

    enc.train()
    disc.train()
    if step == 0:
        log.append({"step": 0, "wall": 0.0, **validate()})  # the starting point (mean-code reconstructions)
    acc: dict[str, float] = {}
    n_acc = 0
    t_call = t_last = time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train idinvert ({domain.name})", unit="step",
               dynamic_ncols=True, disable=not progress)
    while step < cfg.steps:
        for group in e_opt.param_groups:
            group["lr"] = _lr_at(step, cfg, cfg.lr)
        for group in d_opt.param_groups:
            group["lr"] = _lr_at(step, cfg, cfg.d_lr)
        idx = torch.randint(0, data.shape[0], (max(n_real, 1),))
        real = data[idx].to(dev).float()
        parts, w_s = ([real] if n_real > 0 else []), None
        if n_samples > 0:
            with torch.no_grad():
                w_s = g.style(torch.randn(n_samples, g.style_dim).to(dev))
                x_s, _ = g([w_s], **kwargs)
            parts.append(x_s)
        x = torch.cat(parts)

        # --- encoder
        disc.requires_grad_(False)
        w_rec = enc(x)
        x_rec, _ = g([w_rec], **kwargs)
        mse = (x_rec - x).pow(2).mean()
        e_loss = cfg.mse_weight * mse
        stats = {"mse": mse.item()}
        if perc is not None:
            lp = perc(x_rec, x).mean()
            e_loss = e_loss + cfg.perceptual_weight * lp
            stats["lpips"] = lp.item()
        if cfg.adv_weight > 0:
            adv = F.softplus(-disc(x_rec)).mean()
            e_loss = e_loss + cfg.adv_weight * adv
            stats["adv"] = adv.item()
        if w_s is not None and cfg.latent_weight > 0:
            lat = (w_rec[n_real:] - w_s[:, None]).pow(2).mean()
            e_loss = e_loss + cfg.latent_weight * lat
            stats["latent"] = lat.item()
        stats["e_loss"] = e_loss.item()
        e_opt.zero_grad(set_to_none=True)
        e_loss.backward()
        e_opt.step()

        # --- discriminator (real images of the domain vs. reconstructions)
        if cfg.adv_weight > 0:
            disc.requires_grad_(True)
            d_real_in = real if n_real > 0 else x.detach()
            d_loss = F.softplus(disc(x_rec.detach())).mean() + F.softplus(-disc(d_real_in)).mean()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            stats["d_loss"] = d_loss.item()
            if cfg.r1_gamma > 0 and step % max(1, cfg.r1_every) == 0:
                r_in = d_real_in.detach().requires_grad_(True)
                (grad,) = autograd.grad(disc(r_in).sum(), r_in, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(1).mean()
                d_opt.zero_grad(set_to_none=True)
                (cfg.r1_gamma / 2 * r1 * max(1, cfg.r1_every)).backward()
                d_opt.step()
                stats["r1"] = r1.item()

        step += 1
        now = time.time()
        wall += now - t_last
        t_last = now
        for k, v in stats.items():
            acc[k] = acc.get(k, 0.0) + v
        n_acc += 1
        bar.update(1)
        if progress:
            bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items() if k in ("mse", "lpips", "latent", "d_loss")})
        if step % max(1, cfg.log_every) == 0 or step == cfg.steps:
            log.append({"step": step, "wall": round(wall, 2), **{k: round(v / n_acc, 6) for k, v in acc.items()}})
            acc, n_acc = {}, 0
        if step % max(1, cfg.sample_every) == 0 or step == cfg.steps:
            log.append({"step": step, "wall": round(wall, 2), **validate()})
        out_of_time = max_minutes is not None and (now - t_call) > max_minutes * 60
        if step % max(1, cfg.checkpoint_every) == 0 or step == cfg.steps or out_of_time:
            save_state()
        if out_of_time:
            break
    bar.close()
    if not state_path.exists():
        save_state()
    path = export()
    val_log = [r for r in log if "val_mse" in r]
    return {"step": step, "wall_seconds": wall, "finished": step >= cfg.steps, "encoder": str(path),
            "log_tail": [r for r in log if "val_mse" not in r][-3:], "validation": val_log[-1] if val_log else None}


def export_encoder(run_dir: str | Path, dest: str | Path, *, half: bool = True) -> dict[str, Any]:
    """Copy the run's encoder into `dest` (fp16 by default, like the domain's other shipped small nets)."""
    enc, extra = load_encoder(Path(run_dir) / "encoder.safetensors")
    save_encoder(dest, enc, half=half, extra=extra)
    return {"step": extra.get("step"), "wall_seconds": extra.get("wall_seconds"), "sha256": sha256_file(dest)}


def model_card(run_dir: str | Path) -> dict[str, Any]:
    """Model-card fields for `register_weights('encoder/idinvert', ...)` from a finished run directory."""
    run_dir = Path(run_dir)
    st = load_training_state(run_dir / "state.pt", STATE_KEYS, "the IDInvert encoder")
    enc, extra = load_encoder(run_dir / "encoder.safetensors")
    cfg = st["config"]
    n_params = sum(p.numel() for p in enc.parameters())
    val = [r for r in st["log"] if "val_mse" in r]
    return {
        "model": f"IDInvert domain-guided encoder (StyleGANEncoderNet-like, BatchNorm), {enc.config.resolution} px "
                 f"-> {enc.config.n_styles}x{enc.config.w_dim} W+, widths {enc.config.initial_features}->"
                 f"{enc.config.max_channels}, {n_params / 1e6:.2f} M parameters",
        "recipe": f"generator frozen; MSE x{cfg['mse_weight']} + LPIPS-Alex x{cfg['perceptual_weight']} "
                  f"(substitute for 5e-5 VGG conv4_3) + adversarial x{cfg['adv_weight']} (StyleGAN2 D from scratch, "
                  f"R1 gamma {cfg['r1_gamma']}); {cfg['sample_fraction']:.0%} of each batch G(w) samples with latent "
                  f"regression x{cfg['latent_weight']}; Adam lr {cfg['lr']} betas ({cfg['beta1']}, {cfg['beta2']}), "
                  f"decay {cfg['lr_decay']} every steps/4, batch {cfg['batch']}",
        "steps": st["step"], "images seen": st["step"] * cfg["batch"], "wall time (s)": round(st["wall_seconds"], 1),
        "seed": cfg["seed"], "generator sha256": extra.get("generator_sha256"),
        "validation (last)": val[-1] if val else {},
        "training log (last)": next((r for r in reversed(st["log"]) if "e_loss" in r), {}),
    }


def install_encoder(run_dir: str | Path, domain_name: str = "peeps") -> dict[str, Any]:
    """Export the run's encoder in fp16 and register it as the peeps domain's 'encoder/idinvert' weights."""
    from zoo.errors import InputError

    if domain_name != "peeps":
        raise InputError(f"--install registers weights in the embedded peeps domain only (not {domain_name!r}); "
                         f"the encoder is at {Path(run_dir) / 'encoder.safetensors'}")
    from zoo_peeps.export import register_weights

    run_dir = Path(run_dir)
    st = load_training_state(run_dir / "state.pt", STATE_KEYS, "the IDInvert encoder")
    cfg = st["config"]
    dest = run_dir / "encoder_idinvert.safetensors"
    export_encoder(run_dir, dest)
    parts = [f"zoo train idinvert --domain {domain_name} --steps {cfg['steps']} --batch {cfg['batch']}"]
    if cfg.get("lpips_size"):
        parts.append(f"--lpips-size {cfg['lpips_size']}")
    return register_weights("encoder/idinvert", dest, command=" ".join(parts + ["--install"]),
                            card=model_card(run_dir))


def config_fields() -> list[str]:
    return [f.name for f in fields(IDInvertTrainConfig)]


__all__ = ["IDInvertTrainConfig", "EMBEDDED_TRAIN", "train_idinvert", "export_encoder", "model_card",
           "config_fields", "make_train_command"]


def make_train_command():
    """A click command `idinvert` for `zoo train` (not registered here: attach it with
    `cli.commands["train"].add_command(make_train_command())` in a `register_commands(cli)` hook)."""
    import click

    @click.command("idinvert")
    @click.option("--domain", "domain_name", default="peeps", show_default=True, help="Registered domain name.")
    @click.option("--out", type=click.Path(file_okay=False), default=None,
                  help="Run directory (default runs/idinvert_<domain>); an existing state.pt there is resumed.")
    @click.option("--steps", type=int, default=None, help="Total training steps (default 20000).")
    @click.option("--batch", type=int, default=None, help="Batch size (default 16).")
    @click.option("--max-minutes", type=float, default=None, help="Stop (and save) after this much wall time.")
    @click.option("--no-resume", is_flag=True, help="Start over even if the run directory has a state.pt.")
    @click.option("--seed", type=int, default=None, help="Seed of a fresh run (default 0).")
    @click.option("--lpips-size", type=int, default=None,
                  help="LPIPS input size (default 256; 64 is ~2.5x cheaper per step).")
    @click.option("--install/--no-install", default=False,
                  help="Export the encoder (fp16) and register it with a model card and sha256 in the peeps weights.")
    @click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto (CUDA if any).")
    def command(domain_name: str, out: str | None, steps: int | None, batch: int | None, max_minutes: float | None,
                no_resume: bool, seed: int | None, lpips_size: int | None, install: bool, device: str) -> None:
        """Train the IDInvert domain-guided encoder of a domain (resumable)."""
        from zoo import registry
        from zoo.bench.config import resolve_device

        domain = registry.get_domain(domain_name)
        overrides = dict(EMBEDDED_TRAIN) if domain_name == "peeps" else {}
        if lpips_size is not None:
            overrides["lpips_size"] = lpips_size
        run_dir = out or f"runs/idinvert_{domain_name}"
        summary = train_idinvert(domain, run_dir, steps, batch, max_minutes,
                                 resume=not no_resume, seed=seed, config=IDInvertTrainConfig(**overrides),
                                 device=resolve_device(device))
        click.echo(json.dumps(summary, indent=2, default=str))
        if install:
            click.echo(json.dumps({"installed": install_encoder(run_dir, domain_name)}, indent=2, default=str))

    return command
