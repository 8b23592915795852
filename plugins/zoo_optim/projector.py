"""Direct latent optimisation: the Karras et al. (StyleGAN2) projector in W (`optim`) and its W+ variant
(`optim_wplus`, Image2StyleGAN-style / rosinality `projector.py --w_plus`).

Faithful to NVlabs stylegan2-ada-pytorch `projector.py` and rosinality `projector.py` (anchors §2.1, §2.2):

* start from w_avg of 10,000 mapped z (fixed seed 123), w_std = sqrt(sum ||w - w_avg||^2 / N);
* Adam (0.9, 0.999), 1000 steps, lr 0.1 with 5 % linear warm-up and cosine ramp-down over the last 25 %
  (lr = 0 at step 0, exactly as the official schedule);
* latent noise w_std * 0.05 * max(0, 1 - t / 0.75)^2 added to w at every step (W: one draw broadcast to all layers;
  W+: one draw per layer, as rosinality's `latent_noise` on the per-layer code);
* noise maps optimised jointly from N(0, 1), regulariser weight 1e5 over a 2x2-mean pyramid down to 8x8 (rosinality's
  reshape-mean, which equals NVlabs' avg_pool2d), every map renormalised to zero mean / unit variance after each step;
* loss LPIPS + `mse` * MSE (rosinality's defaults: mse 0). The result is the last w (without latent noise) and the
  optimised noise maps.

Substitution: both official projectors measure the distance with VGG16 (NVlabs: its LPIPS-style `vgg16.pt`
features; rosinality: LPIPS-VGG). Offline we only have ImageNet AlexNet weights, so the distance is LPIPS-AlexNet
v0.1 (the lpips package, the network the bench's LPIPS metric uses) at 256 x 256 like both projectors.

Batching: B images are optimised at once with per-image latents and per-image noise maps [B, 1, R, R]; the loss is
the sum of per-image losses, each image's Adam state is its own and the random draws (initial noise maps, latent
noise) come from one `torch.Generator(seed)` shared by all images — exactly what running each image alone with the
same seed draws. So inverting [a, b] gives what inverting a and b separately gives (up to float rounding).
Early stopping (off by default) is per image; a stopped image leaves the batch (its parameters get no gradient and
Adam skips them), so it also costs no more compute.

Image2StyleGAN itself (Abdal et al. 2019: W+ from the mean latent, Adam lr 0.01, 5000 steps, MSE + VGG perceptual,
no noise optimisation) is not what `optim_wplus` defaults to — the zoo follows rosinality's `--w_plus`, which keeps the
Karras recipe; `optim_wplus` with `lr=0.01 steps=5000 mse=1 optimize_noise=false noise=0` approximates the former.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from zoo.cards import Card
from zoo.inversion import Inversion
from zoo.inverter import Inverter

from ._common import (EmbeddedOptionsMixin, ImageClock, Patience, Perceptual, check_option_applies, karras_lr,
                      lpips_network, noise_regularize, renormalize_, resolve_lpips_size, select_features, w_statistics)

if TYPE_CHECKING:
    from zoo.domain import Domain
    from zoo.stylegan2 import Generator


@dataclass(frozen=True)
class ProjectorOptions:
    """Options of `optim` / `optim_wplus`. Defaults = the paper configuration (NVlabs / rosinality projector)."""

    steps: int = field(default=1000, metadata={"help": "optimisation steps (paper: 1000)"})
    lr: float = field(default=0.1, metadata={"help": "peak Adam learning rate (paper: 0.1)"})
    lr_rampup: float = field(default=0.05, metadata={"help": "fraction of steps of linear lr warm-up"})
    lr_rampdown: float = field(default=0.25, metadata={"help": "fraction of steps of cosine lr ramp-down"})
    noise: float = field(default=0.05, metadata={"help": "initial latent noise, in units of w_std"})
    noise_ramp: float = field(default=0.75, metadata={"help": "fraction of steps over which latent noise decays to 0"})
    noise_regularize: float = field(default=1e5, metadata={"help": "weight of the noise-map regulariser"})
    optimize_noise: bool = field(default=True, metadata={
        "help": "optimise per-image noise maps (false: the generator's fixed noise buffers)"})
    lpips_weight: float = field(default=1.0, metadata={"help": "weight of the LPIPS-AlexNet distance (0: off)"})
    mse: float = field(default=0.0, metadata={"help": "weight of the MSE term (rosinality --mse, default 0)"})
    lpips_size: int | None = field(default=None, metadata={
        "help": "LPIPS input size (bilinear resize); none = 256 as the official projectors; 0 = no resize"})
    w_avg_samples: int = field(default=10_000, metadata={"help": "mapped z samples for w_avg / w_std"})
    seed: int = field(default=303, metadata={"help": "seed of the initial noise maps and the latent noise "
                                                     "(NVlabs projector default 303)"})
    early_stop_patience: int = field(default=0, metadata={
        "help": "stop an image after this many steps without a loss improvement > early_stop_tol (0: off)"})
    early_stop_tol: float = field(default=1e-4, metadata={"help": "minimum per-image loss improvement"})

    def __post_init__(self) -> None:
        """Raises InputError for options that would be ignored (noise_regularize without optimize_noise,
        early_stop_tol without early_stop_patience)."""
        check_option_applies(self, "noise_regularize", self.optimize_noise,
                             "the noise maps are not optimised (optimize_noise=false)")
        check_option_applies(self, "early_stop_tol", self.early_stop_patience > 0,
                             "early stopping is off; set early_stop_patience=N too")


KARRAS_CARD = Card(
    title="Analyzing and Improving the Image Quality of StyleGAN (projector, Sec. 5)",
    authors="T. Karras, S. Laine, M. Aittala, J. Hellsten, J. Lehtinen, T. Aila",
    year=2020,
    url="https://arxiv.org/abs/1912.04958",
    code_url="https://github.com/NVlabs/stylegan2-ada-pytorch/blob/main/projector.py",
    citation="Karras et al., Analyzing and Improving the Image Quality of StyleGAN, CVPR 2020",
    licence="reimplementation MIT; reference code: NVIDIA Source Code License-NC (stylegan2-ada-pytorch), "
            "MIT (rosinality/stylegan2-pytorch projector.py)",
    notes="W space, 1000 Adam steps, lr 0.1 (5% warm-up, 25% cosine ramp-down), latent noise 0.05 w_std decaying "
          "over 75%, noise maps with a 1e5 regulariser and renormalisation. Distance: LPIPS-AlexNet at 256 instead "
          "of VGG16 (no VGG weights offline). Embedded domain (peeps 32 px): same recipe; see zoo_optim.EMBEDDED.",
)

IMAGE2STYLEGAN_CARD = Card(
    title="Image2StyleGAN: How to Embed Images Into the StyleGAN Latent Space? (W+ projection)",
    authors="R. Abdal, Y. Qin, P. Wonka",
    year=2019,
    url="https://arxiv.org/abs/1904.03189",
    code_url="https://github.com/rosinality/stylegan2-pytorch/blob/master/projector.py",
    citation="Abdal, Qin, Wonka, Image2StyleGAN: How to Embed Images Into the StyleGAN Latent Space?, ICCV 2019",
    licence="reimplementation MIT; reference code MIT (rosinality/stylegan2-pytorch projector.py --w_plus)",
    notes="Per-layer W+ codes optimised with the Karras recipe (rosinality --w_plus): the W+ space of "
          "Image2StyleGAN, the schedule / noise handling of the StyleGAN2 projector. Distance LPIPS-AlexNet at 256.",
)


@dataclass
class Projection:
    """Result of `project`: latents [B, L, D] (W: one w repeated), noise maps (list of [B, 1, R, R]) or None,
    reconstructions [B, 3, H, W], per-image seconds [B], steps run per image and the last per-image distance."""

    latents: torch.Tensor
    noise: list[torch.Tensor] | None
    reconstructions: torch.Tensor
    seconds: torch.Tensor
    steps_run: list[int]
    distance: list[float]


@dataclass
class ProjectorState:
    """What `OptimInverter.load` prepares per domain."""

    loaded: Any  # LoadedGenerator
    w_avg: torch.Tensor  # [1, D]
    w_std: float
    perceptual: Perceptual | None


def build_perceptual(lpips_weight: float, lpips_size: int | None, generator_size: int, device: torch.device,
                     official_native: bool = False) -> Perceptual | None:
    if lpips_weight <= 0:
        return None
    return Perceptual(lpips_network(device), resolve_lpips_size(lpips_size, generator_size, official_native))


def project(
    g: Generator, targets: torch.Tensor, *, w_avg: torch.Tensor, w_std: float, options: ProjectorOptions,
    w_plus: bool, perceptual: Perceptual | None, progress: bool = False, desc: str = "project",
    w_init: torch.Tensor | None = None, noise_init: Sequence[torch.Tensor] | None = None,
) -> Projection:
    """Karras projection of `targets` [B, 3, H, W] in [-1, 1] through `g` (parameters frozen). See the module doc.

    w_init: start codes [B, 1, D] (W) or [B, n_latent, D] (W+) instead of w_avg (a refiner's embedding).
    noise_init: start noise maps, per layer [B | 1, 1, R, R], instead of N(0, 1) draws (with `optimize_noise`), or
    the fixed noise to render with (without it). The random stream is the same either way (the N(0, 1) maps are
    drawn and discarded), so only the start differs. Raises ValueError for a w_init of the wrong shape.
    """
    o = options
    dev = targets.device
    n, n_latent, dim = targets.shape[0], g.n_latent, g.style_dim
    clock = ImageClock(n)
    gen = torch.Generator().manual_seed(o.seed)
    use_lpips = perceptual is not None and o.lpips_weight > 0
    with torch.no_grad():
        target_feats = perceptual.features(targets) if use_lpips else None

    layers = n_latent if w_plus else 1
    if w_init is None:
        w0 = w_avg.detach().to(dev, torch.float32).reshape(1, 1, dim).repeat(1, layers, 1)
        ws = [w0.clone().requires_grad_(True) for _ in range(n)]
    else:
        if tuple(w_init.shape) != (n, layers, dim):
            raise ValueError(f"w_init must be [{n}, {layers}, {dim}], got {list(w_init.shape)}")
        start = w_init.detach().to(dev, torch.float32)
        ws = [start[b : b + 1].clone().requires_grad_(True) for b in range(n)]

    def per_image(maps: Sequence[torch.Tensor], b: int) -> list[torch.Tensor]:
        return [m[b : b + 1] if m.shape[0] == n else m[:1] for m in maps]

    noises: list[list[torch.Tensor]] | None = None
    fixed: list[torch.Tensor] | None = None
    if o.optimize_noise and g.fixed_noise():  # StyleGAN3 has no noise maps
        base = [torch.randn(tuple(m.shape), generator=gen).to(dev) for m in g.fixed_noise()]
        if noise_init is None:
            noises = [[m.clone().requires_grad_(True) for m in base] for _ in range(n)]
        else:
            noises = [[m.detach().to(dev, torch.float32).clone().requires_grad_(True)
                       for m in per_image(noise_init, b)] for b in range(n)]
    elif noise_init is not None:
        fixed = [torch.cat([per_image([layer], b)[0] for b in range(n)]).detach().to(dev, torch.float32)
                 for layer in noise_init]
    params = [p for b in range(n) for p in ([ws[b]] + (noises[b] if noises else []))]
    opt = torch.optim.Adam(params, lr=o.lr, betas=(0.9, 0.999))
    stopper = Patience(n, o.early_stop_patience, o.early_stop_tol)
    active = list(range(n))
    steps_run = [0] * n
    last = [float("nan")] * n
    clock.charge(active)

    bar = tqdm(range(o.steps), desc=desc, unit="step", leave=False, disable=not progress)
    for step in bar:
        t = step / o.steps
        for group in opt.param_groups:
            group["lr"] = karras_lr(t, o.lr, o.lr_rampdown, o.lr_rampup)
        scale = w_std * o.noise * max(0.0, 1.0 - t / o.noise_ramp) ** 2 if o.noise_ramp > 0 else 0.0
        w_noise = torch.randn((1, layers, dim), generator=gen).to(dev) * scale  # drawn every step: same stream
        w = torch.cat([ws[b] for b in active]) + w_noise
        if noises:
            noise = [torch.cat([noises[b][k] for b in active]) for k in range(len(noises[0]))]
        else:
            noise = None if fixed is None else [m[active] for m in fixed]
        img, _ = g([w.expand(-1, n_latent, -1)], input_is_latent=True, noise=noise, randomize_noise=False)
        dist = img.new_zeros(len(active))
        if use_lpips:
            dist = dist + o.lpips_weight * perceptual.distance(perceptual.features(img),
                                                               select_features(target_feats, active))
        if o.mse > 0:
            dist = dist + o.mse * (img - targets[active]).pow(2).mean((1, 2, 3))
        loss = dist
        if noises and o.noise_regularize > 0:  # noise maps being optimised (not an embedding's fixed ones)
            loss = loss + o.noise_regularize * noise_regularize(noise)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if noises:
            for b in active:
                for m in noises[b]:
                    renormalize_(m)
        values = dist.detach()
        for j, b in enumerate(active):
            steps_run[b] += 1
            last[b] = float(values[j])
        stopped = set(stopper.update(active, values))
        clock.charge(active)
        if progress:
            bar.set_postfix(dist=f"{float(values.mean()):.4f}", active=len(active))
        if stopped:
            active = [b for b in active if b not in stopped]
            if not active:
                break
    bar.close()

    with torch.no_grad():
        latents = torch.cat([w.detach() for w in ws]).expand(-1, n_latent, -1).contiguous()
        noise_out = [torch.cat([noises[b][k].detach() for b in range(n)]) for k in range(len(noises[0]))] \
            if noises else fixed
        recon, _ = g([latents], input_is_latent=True, noise=noise_out, randomize_noise=False)
    clock.charge(list(range(n)))
    return Projection(latents, noise_out, recon, clock.tensor(), steps_run, last)


class OptimInverter(EmbeddedOptionsMixin, Inverter):
    """Karras et al. StyleGAN2 projector in W (one w per image, broadcast to every layer) + per-image noise maps.
    Options: `ProjectorOptions` (defaults = the paper configuration)."""

    name = "optim"
    kind = "optimization"
    generators = ("stylegan2", "stylegan3")
    latent_space = "W"
    w_plus = False
    batchable = True
    version = "1"
    card = KARRAS_CARD
    Options = ProjectorOptions

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"steps": 20, "lpips_size": 64}  # `zoo bench --quick`: a smoke run

    def load(self, domain: Domain) -> ProjectorState:
        loaded = domain.generator(self.device)
        g = loaded.generator
        w_avg, w_std = w_statistics(g, self.options.w_avg_samples)
        perceptual = build_perceptual(self.options.lpips_weight, self.options.lpips_size, g.size, self.device)
        return ProjectorState(loaded, w_avg, w_std, perceptual)

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        x = self.check_images(images, domain)
        st = self.prepare(domain)
        res = project(st.loaded.generator, x, w_avg=st.w_avg, w_std=st.w_std, options=self.options,
                      w_plus=self.w_plus, perceptual=st.perceptual, progress=progress, desc=self.name)
        return Inversion(latents=res.latents, reconstructions=res.reconstructions, seconds=res.seconds,
                         noise=res.noise, method=self.name, domain=domain,
                         extras={"steps_run": res.steps_run, "final_distance": res.distance})


class OptimWPlusInverter(OptimInverter):
    """W+ variant (Image2StyleGAN's space, rosinality `projector.py --w_plus`): one code per layer, same recipe."""

    name = "optim_wplus"
    latent_space = "W+"
    w_plus = True
    card = IMAGE2STYLEGAN_CARD
