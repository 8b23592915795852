"""IDInvert — In-Domain GAN Inversion (Zhu et al., ECCV 2020), adapted to StyleGAN2 (anchors §4).

Two registered inverters share one trained encoder per domain:

* `idinvert_encoder` — encoder-only: w+ = E(x), one forward pass (what the HyperStyle table's 0.04 s IDInvert is);
* `idinvert` — domain-regularised optimisation: start from E(x) and optimise the W+ code with Adam lr 0.01 for 100
  steps on MSE(x, G(w)) + perceptual + 2.0 * MSE(w, E(G(w))) (the encoder as regulariser keeps w in the encoder's
  "domain"). Official defaults of genforce/idinvert_pytorch `invert.py` (the paper's table used 1000 steps).

The domain-guided encoder (`IDInvertEncoder`, StyleGANEncoderNet-like): a first 3x3 conv block, then residual blocks,
each preceded by 2x2 average-pool downsampling, channels doubling per block up to a cap, BatchNorm after every conv,
LeakyReLU 0.2, down to 4x4, then a fully-connected last block to n_styles x w_dim (W+) followed by BatchNorm. Official
widths: 64 doubling to 1024 at 256 px; the small configuration for <= 64 px domains uses 32 doubling to 256.

StyleGAN2 adaptation (the original inverts a StyleGAN1 256 px generator with 14 W+ layers and a final tanh):
* the encoder outputs the rosinality generator's n_styles = 2 log2(R) - 2 codes of w_dim (peeps: 8 x 128), the
  number of residual blocks follows log2(R) so the last conv map is always 4x4;
* the images are the StyleGAN2 synthesis rendered with the generator's fixed noise buffers (no tanh; StyleGAN1's
  genforce synthesis also used fixed noise in inversion);
* the last BatchNorm has a trainable scale initialised to the per-dimension std of mapped w and a shift initialised to
  their mean (official: gamma frozen at 1, beta trained, init 0) — StyleGAN2's W is neither zero-mean nor unit-variance
  per dimension, and starting at the mean code makes the short CPU trainings converge;
* the discriminator of the adversarial term is zoo's StyleGAN2 residual discriminator with the generator's channel
  table, trained jointly from scratch (official: initialised from the StyleGAN1 D);
* perceptual term: the official uses 5e-5 * MSE of VGG16 conv4_3 features (inputs in [0, 255]); there are no VGG16
  ImageNet weights offline, so the perceptual term is LPIPS-AlexNet v0.1 (the bench's LPIPS network) with weight
  0.8 — the weight pSp / e4e / ReStyle / HyperStyle give LPIPS-Alex next to an L2 weight of 1 on [-1, 1] images —
  both in the encoder training and in the domain-regularised optimisation;
* training on the generator's own samples: besides real images (the only input of the official encoder training),
  a fraction of every batch (`sample_fraction`, 0.5) are G(w) renders of mapped z, for which the encoder also
  regresses the known code (MSE(E(G(w)), w), weight `latent_weight` 1.0). This anchors E's codes inside the
  generator's W (the "in-domain" property) and is our addition; `sample_fraction=0` is the official recipe.
See `idinvert_train.py` for the training loop (`zoo train idinvert --domain <name>`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from zoo.cards import Card, sha256_file
from zoo.checkpoint_io import load_checked
from zoo.errors import CheckpointError
from zoo.inversion import Inversion
from zoo.inverter import Inverter

from ._common import (EmbeddedOptionsMixin, ImageClock, Patience, Perceptual, check_option_applies, lpips_network,
                      resolve_lpips_size, select_features)

if TYPE_CHECKING:
    from zoo.domain import Domain

WEIGHTS_ROLE = "encoder/idinvert"
ENCODER_FORMAT = "zoo-idinvert-encoder/1"


# ---------------------------------------------------------------------------------------------------------- network
@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of an IDInvert encoder (stored in the weights file's metadata)."""

    resolution: int
    n_styles: int
    w_dim: int
    initial_features: int = 64
    max_channels: int = 1024
    use_bn: bool = True

    @classmethod
    def for_generator(cls, generator: Any, initial_features: int | None = None,
                      max_channels: int | None = None) -> EncoderConfig:
        """Official widths (64 -> 1024) for generators >= 128 px, the small configuration (32 -> 256) below."""
        small = generator.size < 128
        return cls(generator.size, generator.n_latent, generator.style_dim,
                   initial_features or (32 if small else 64), max_channels or (256 if small else 1024))


def _bn2d(c: int, use_bn: bool) -> nn.Module:
    return nn.BatchNorm2d(c, momentum=0.1, eps=1e-5) if use_bn else nn.Identity()


class FirstBlock(nn.Module):
    """3x3 conv (no bias) -> BN -> LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, use_bn: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=not use_bn)
        self.bn = _bn2d(cout, use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), 0.2)


class ResBlock(nn.Module):
    """Residual block of StyleGANEncoderNet: shortcut (1x1 conv + BN + act when the width changes, else identity)
    plus two 3x3 conv -> BN -> LeakyReLU(0.2) layers through min(cin, cout) hidden channels."""

    def __init__(self, cin: int, cout: int, use_bn: bool) -> None:
        super().__init__()
        hidden = min(cin, cout)
        self.shortcut = None
        if cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, 1, 0, bias=not use_bn), _bn2d(cout, use_bn))
        self.conv1 = nn.Conv2d(cin, hidden, 3, 1, 1, bias=not use_bn)
        self.bn1 = _bn2d(hidden, use_bn)
        self.conv2 = nn.Conv2d(hidden, cout, 3, 1, 1, bias=not use_bn)
        self.bn2 = _bn2d(cout, use_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.shortcut is None else F.leaky_relu(self.shortcut(x), 0.2)
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.2)
        x = F.leaky_relu(self.bn2(self.conv2(x)), 0.2)
        return x + y


class IDInvertEncoder(nn.Module):
    """Image [B, 3, R, R] in [-1, 1] -> W+ codes [B, n_styles, w_dim] (see the module docstring)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        r = config.resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"IDInvert encoder needs a power-of-two resolution >= 8, got {r}")
        num_blocks = int(math.log2(r))  # block0 at R, log2(R) - 2 residual blocks down to 4x4, the last FC block
        cin, cout = 3, config.initial_features
        blocks: list[nn.Module] = [FirstBlock(cin, cout, config.use_bn)]
        cin, cout = cout, min(cout * 2, config.max_channels)
        for _ in range(1, num_blocks - 1):
            blocks.append(ResBlock(cin, cout, config.use_bn))
            cin, cout = cout, min(cout * 2, config.max_channels)
        self.blocks = nn.ModuleList(blocks)
        out_dim = config.n_styles * config.w_dim
        self.fc = nn.Linear(cin * 4 * 4, out_dim, bias=not config.use_bn)
        nn.init.normal_(self.fc.weight, std=1.0 / math.sqrt(cin * 16))  # wscale gain 1 (official last block)
        self.bn = nn.BatchNorm1d(out_dim, momentum=0.1, eps=1e-5) if config.use_bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.avg_pool2d(x, 2)
            x = block(x)
        out = self.bn(self.fc(x.flatten(1)))
        return out.view(x.shape[0], self.config.n_styles, self.config.w_dim)

    @torch.no_grad()
    def init_output(self, w_mean: torch.Tensor, w_std: torch.Tensor) -> None:
        """Start the last BatchNorm at the generator's per-dimension w statistics (see the module docstring)."""
        n = self.config.n_styles
        if isinstance(self.bn, nn.BatchNorm1d):
            self.bn.bias.copy_(w_mean.reshape(-1).repeat(n))
            self.bn.weight.copy_(w_std.reshape(-1).repeat(n))
        else:
            self.fc.bias.copy_(w_mean.reshape(-1).repeat(n))


# ---------------------------------------------------------------------------------------------------------- files
def save_encoder(path: str | Path, encoder: IDInvertEncoder, *, half: bool = False,
                 extra: dict[str, Any] | None = None) -> Path:
    """safetensors file with the state dict (BN buffers included) and metadata {format, config, extra} (JSON)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
          for k, v in encoder.state_dict().items()}
    meta = {"format": ENCODER_FORMAT, "config": json.dumps(asdict(encoder.config)),
            "extra": json.dumps(extra or {}, default=str)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(sd, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> tuple[IDInvertEncoder, dict[str, Any]]:
    """Load an encoder file written by `save_encoder` (eval mode, frozen). Returns (encoder, extra metadata).

    A DataParallel `module.` prefix is stripped (one note). Raises CheckpointError naming the file when it is missing,
    unreadable, not an IDInvert encoder or its weights do not fit the stored config.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"IDInvert encoder file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        sd = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise CheckpointError(f"{path}: not a safetensors IDInvert encoder ({type(exc).__name__}); retrain it "
                              "(`zoo train idinvert`) or pass another weights=PATH") from None
    if meta.get("format") != ENCODER_FORMAT:
        raise CheckpointError(f"{path}: not an IDInvert encoder (format {meta.get('format')!r}, "
                              f"expected {ENCODER_FORMAT!r})")
    try:
        config = EncoderConfig(**json.loads(meta["config"]))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: its IDInvert metadata has no valid encoder config; retrain it "
                              "(`zoo train idinvert`)") from None
    enc = IDInvertEncoder(config)
    load_checked(enc, {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, str(path),
                 "retrain it (`zoo train idinvert`)", problem="weights do not fit the stored encoder config")
    enc.eval().requires_grad_(False).to(device)
    return enc, json.loads(meta.get("extra", "{}"))


def read_encoder_metadata(path: str | Path) -> tuple[EncoderConfig, dict[str, Any]]:
    """(config, extra) of an encoder file from its safetensors header only (cheap: for checks before any work).
    Raises CheckpointError naming the file when it is not an IDInvert encoder."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != ENCODER_FORMAT:
            raise ValueError(meta.get("format"))
        return EncoderConfig(**json.loads(meta["config"])), json.loads(meta.get("extra", "{}"))
    except Exception:  # noqa: BLE001 - any unreadable or foreign file
        raise CheckpointError(f"{path}: not an IDInvert encoder file (format {ENCODER_FORMAT!r}); retrain it "
                              "(`zoo train idinvert`) or pass another weights=PATH") from None


def check_encoder_fits(path: str | Path, config: EncoderConfig, extra: dict[str, Any], domain: Domain,
                       generator: Any | None = None) -> None:
    """Raise CheckpointError (one line, with the fix) when the encoder was trained for another generator than the
    domain's (sha256 in its metadata) or, given the loaded `generator`, its resolution / code shape differ."""
    if generator is not None:
        g, c = generator, config
        if (c.resolution, c.n_styles, c.w_dim) != (g.size, g.n_latent, g.style_dim):
            raise CheckpointError(
                f"{path}: encoder for {c.resolution} px / {c.n_styles}x{c.w_dim} codes does not fit domain "
                f"'{domain.name}' ({g.size} px / {g.n_latent}x{g.style_dim}); {train_hint(domain.name)}")
    gen_spec = domain.weights.get("generator")
    trained_for = extra.get("generator_sha256")
    if gen_spec is not None and trained_for and trained_for != gen_spec.sha256:
        raise CheckpointError(f"{path} was trained for generator {trained_for[:12]}…, but domain '{domain.name}' "
                              f"now has {gen_spec.sha256[:12]}…; {train_hint(domain.name)}")


def train_hint(domain_name: str) -> str:
    return (f"run `zoo train idinvert --domain {domain_name}` to train it "
            "(or pass --option weights=PATH to use an encoder file)")


def encoder_path(domain: Domain, override: str | None) -> Path:
    """The encoder file for `domain`: the explicit `override`, else the domain's 'encoder/idinvert' WeightSpec."""
    if override:
        p = Path(override)
        if not p.is_file():
            raise CheckpointError(f"IDInvert encoder file not found: {p}")
        return p
    spec = domain.weights.get(WEIGHTS_ROLE)
    if spec is None:
        raise CheckpointError(f"domain '{domain.name}' has no IDInvert encoder ('{WEIGHTS_ROLE}' weights): "
                              + train_hint(domain.name))
    try:
        return spec.resolve()
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; or {train_hint(domain.name)}") from None


# ---------------------------------------------------------------------------------------------------------- inverters
IDINVERT_CARD = Card(
    title="In-Domain GAN Inversion for Real Image Editing",
    authors="J. Zhu, Y. Shen, D. Zhao, B. Zhou",
    year=2020,
    url="https://arxiv.org/abs/2004.00049",
    code_url="https://github.com/genforce/idinvert_pytorch",
    citation="Zhu, Shen, Zhao, Zhou, In-Domain GAN Inversion for Real Image Editing, ECCV 2020",
    licence="reimplementation MIT; reference code MIT (genforce/idinvert, genforce/idinvert_pytorch)",
    notes="StyleGAN2 adaptation of the StyleGAN1 method: domain-guided W+ encoder (MSE + LPIPS-Alex 0.8 instead of "
          "5e-5 VGG conv4_3 + 0.08 adversarial, R1 10, plus generator samples with latent regression), then "
          "domain-regularised optimisation (Adam 0.01, 100 steps, MSE + perceptual + 2.0 ||w - E(G(w))||^2). "
          "Weights per domain: `zoo train idinvert --domain <name>`.",
)


@dataclass(frozen=True)
class IDInvertOptions:
    """Options of `idinvert` (domain-regularised optimisation). Defaults = idinvert_pytorch `invert.py`."""

    steps: int = field(default=100, metadata={"help": "optimisation steps (official 100; paper table 1000; 0 = "
                                                      "encoder only)"})
    lr: float = field(default=0.01, metadata={"help": "Adam learning rate (0.01)"})
    mse_weight: float = field(default=1.0, metadata={"help": "weight of MSE(x, G(w))"})
    perceptual_weight: float = field(default=0.8, metadata={
        "help": "weight of LPIPS-Alex (substitutes the official 5e-5 VGG conv4_3 MSE; 0: off)"})
    encoder_weight: float = field(default=2.0, metadata={"help": "weight of MSE(w, E(G(w))) (2.0)"})
    lpips_size: int | None = field(default=None, metadata={"help": "LPIPS input size; none = 256; 0 = no resize"})
    weights: str | None = field(default=None, metadata={
        "help": "encoder file (default: the domain's 'encoder/idinvert' weights)"})
    early_stop_patience: int = field(default=0, metadata={
        "help": "stop an image after this many steps without a loss improvement > early_stop_tol (0: off)"})
    early_stop_tol: float = field(default=1e-5, metadata={"help": "minimum per-image loss improvement"})

    def __post_init__(self) -> None:
        """Raises InputError for early_stop_tol without early_stop_patience (it would be ignored)."""
        check_option_applies(self, "early_stop_tol", self.early_stop_patience > 0,
                             "early stopping is off; set early_stop_patience=N too")


@dataclass(frozen=True)
class IDInvertEncoderOptions:
    """Options of `idinvert_encoder` (encoder only)."""

    weights: str | None = field(default=None, metadata={
        "help": "encoder file (default: the domain's 'encoder/idinvert' weights)"})


@dataclass
class IDInvertState:
    loaded: Any  # LoadedGenerator
    encoder: IDInvertEncoder
    encoder_sha256: str
    perceptual: Perceptual | None


class IDInvertEncoderInverter(EmbeddedOptionsMixin, Inverter):
    """IDInvert encoder only: W+ = E(x), rendered with the generator's fixed noise."""

    name = "idinvert_encoder"
    kind = "encoder"
    latent_space = "W+"
    batchable = True
    version = "1"
    card = IDINVERT_CARD
    Options = IDInvertEncoderOptions

    def _encoder_file(self, domain: Domain) -> Path:
        return encoder_path(domain, self.options.weights)

    def load(self, domain: Domain) -> IDInvertState:
        loaded = domain.generator(self.device)
        g = loaded.generator
        path = self._encoder_file(domain)
        enc, extra = load_encoder(path, self.device)
        check_encoder_fits(path, enc.config, extra, domain, g)
        return IDInvertState(loaded, enc, sha256_file(path), self._perceptual(g))

    def _perceptual(self, g: Any) -> Perceptual | None:
        return None

    def weights_sha256(self, domain: Domain) -> dict[str, str]:
        out = super().weights_sha256(domain)
        out[WEIGHTS_ROLE] = self.prepare(domain).encoder_sha256
        return out

    @torch.no_grad()
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        x = self.check_images(images, domain)
        st = self.prepare(domain)
        start = self.clock()
        w = st.encoder(x)
        img, _ = st.loaded.generator([w], input_is_latent=True, randomize_noise=False)
        seconds = torch.full((len(x),), (self.clock() - start) / max(len(x), 1), dtype=torch.float64)
        return Inversion(latents=w, reconstructions=img, seconds=seconds, method=self.name, domain=domain)


class IDInvertInverter(IDInvertEncoderInverter):
    """IDInvert: encoder initialisation + domain-regularised W+ optimisation (per-image losses, batched)."""

    name = "idinvert"
    kind = "hybrid"
    Options = IDInvertOptions

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return {"steps": 10, "lpips_size": 64}  # `zoo bench --quick`: a smoke run

    def _perceptual(self, g: Any) -> Perceptual | None:
        if self.options.perceptual_weight <= 0:
            return None
        return Perceptual(lpips_network(self.device), resolve_lpips_size(self.options.lpips_size, g.size))

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        x = self.check_images(images, domain)
        st = self.prepare(domain)
        clock = ImageClock(len(x))
        with torch.no_grad():
            w0 = st.encoder(x)
        latents, recon, steps_run = domain_regularised(self.options, st, x, w0, clock, progress=progress,
                                                       desc=self.name)
        return Inversion(latents=latents, reconstructions=recon, seconds=clock.tensor(), method=self.name,
                         domain=domain, extras={"steps_run": steps_run, "encoder_latents": w0})


def domain_regularised(o: IDInvertOptions, st: IDInvertState, x: torch.Tensor, w0: torch.Tensor, clock: ImageClock, *,
                       noise: list[torch.Tensor] | None = None, progress: bool = False, desc: str = "idinvert",
                       ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """IDInvert's domain-regularised optimisation of W+ codes from `w0` [B, n_styles, D] for targets x [B, 3, H, W]:
    Adam (o.lr) on per-image codes, loss mse_weight * MSE(x, G(w)) + perceptual_weight * LPIPS + encoder_weight *
    MSE(w, E(G(w))), o.steps steps (per-image early stopping when set). Renders with the generator's fixed noise, or
    with `noise` (per layer [B, 1, R, R], kept fixed: an embedding's own maps). Time since the clock's last charge is
    charged to the images that run. Returns (codes [B, n_styles, D], reconstructions [B, 3, H, W], steps run)."""
    g, enc, perc = st.loaded.generator, st.encoder, st.perceptual
    n = len(x)
    kwargs: dict[str, Any] = dict(input_is_latent=True, randomize_noise=False)
    with torch.no_grad():
        target_feats = perc.features(x) if perc is not None else None
    ws = [w0[b : b + 1].detach().clone().requires_grad_(True) for b in range(n)]
    opt = torch.optim.Adam(ws, lr=o.lr)
    stopper = Patience(n, o.early_stop_patience, o.early_stop_tol)
    active = list(range(n))
    steps_run = [0] * n
    clock.charge(active)
    bar = tqdm(range(o.steps), desc=desc, unit="step", leave=False, disable=not progress)
    for _ in bar:
        w = torch.cat([ws[b] for b in active])
        img, _ = g([w], noise=None if noise is None else [m[active] for m in noise], **kwargs)
        loss = o.mse_weight * (img - x[active]).pow(2).mean((1, 2, 3))
        if perc is not None:
            loss = loss + o.perceptual_weight * perc.distance(perc.features(img), select_features(target_feats, active))
        if o.encoder_weight > 0:
            loss = loss + o.encoder_weight * (w - enc(img)).pow(2).mean((1, 2))
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        for b in active:
            steps_run[b] += 1
        stopped = set(stopper.update(active, loss.detach()))
        clock.charge(active)
        if progress:
            bar.set_postfix(loss=f"{float(loss.detach().mean()):.4f}", active=len(active))
        if stopped:
            active = [b for b in active if b not in stopped]
            if not active:
                break
    bar.close()
    with torch.no_grad():
        latents = torch.cat([w.detach() for w in ws])
        recon, _ = g([latents], noise=noise, **kwargs)
    clock.charge(list(range(n)))
    return latents, recon, steps_run
