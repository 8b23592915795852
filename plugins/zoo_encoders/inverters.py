"""The encoder inverters: `psp`, `e4e`, `restyle_psp`, `restyle_e4e`, `hyperstyle`.

Two configurations of the same `zoo.encoders` code:

* paper configuration -- option `weights=PATH` to an official checkpoint (`psp_ffhq_encode.pt`,
  `e4e_ffhq_encode.pt`, `restyle_psp_ffhq_encode.pt`, `restyle_e4e_ffhq_encode.pt`, `hyperstyle_ffhq.pt` with
  `w_encoder=faces_w_encoder.pt`), loaded strictly by `zoo.encoders.official.load_official`. The generator is the
  checkpoint's decoder; inputs are resized to 256x256 as the official test transforms (bilinear, antialiased),
  outputs are pooled to 256 (official `face_pool`) for ReStyle / HyperStyle feedback and resized to the domain
  resolution for the returned reconstructions; edits render through the decoder too.
* small configuration (default) -- the domain's trained weights `domain.weights['encoder/<name>']` (HyperStyle also
  'encoder/w_encoder'; ReStyle with backbone=resnet34: 'encoder/<name>_resnet34'), built from the config stored in
  the file, with the domain's generator; inputs at the domain resolution.

Inference follows the official scripts: eval mode, fixed noise (randomize_noise=False), codes + latent_avg;
ReStyle / HyperStyle run `n_iters` iterations (default 5) from the average image / the W-encoder inversion.
Per-image seconds = wall time of the batch (after loading, including resizing) / batch size.

StyleGAN3 (pSp, e4e, ReStyle-pSp, ReStyle-e4e; stylegan3-editing `psp3.py` / `e4e3.py`): the codes are all num_ws
(16) of the generator including ws[0] (the Fourier input layer's), the encoder always sees the aligned crop and
every render it is fed back is the aligned one (identity user transform, `zoo.encoders.generators`); a user
transform (`Inversion.with_transform`, `zoo invert --transforms`) then renders the result in the image's unaligned
frame (paper configuration: through the checkpoint's decoder). The stylegan3-editing checkpoints
(`restyle_pSp_ffhq.pt`, `restyle_e4e_ffhq.pt`) load with weights=PATH; they were trained and are tested with 3
iterations (pass n_iters=3 for the paper's setting; the option's default stays 5, restyle-encoder's).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo.cards import Card, sha256_file
from zoo.encoders import average_image, pool_to, run_hyperstyle, run_restyle
from zoo.encoders.generators import generator_family, render_aligned
from zoo.encoders.official import OfficialModel, load_official
from zoo.errors import CheckpointError, InputError
from zoo.inversion import Inversion, WeightOffsets
from zoo.inverter import Inverter
from zoo.stylegan2 import Generator

from .configs import DEFAULT_BACKBONE, weight_role
from .weights_io import load_encoder_file

if TYPE_CHECKING:
    from zoo.domain import Domain

PAPER_INPUT_SIZE = 256

CARDS: dict[str, Card] = {
    "psp": Card(
        title="Encoding in Style: a StyleGAN Encoder for Image-to-Image Translation (pSp)",
        authors="Elad Richardson, Yuval Alaluf, Or Patashnik, Yotam Nitzan, Yaniv Azar, Stav Shapiro, "
                "Daniel Cohen-Or",
        year=2021, url="https://arxiv.org/abs/2008.00951", code_url="https://github.com/eladrich/pixel2style2pixel",
        citation="@inproceedings{richardson2021encoding, title={Encoding in Style: a StyleGAN Encoder for "
                 "Image-to-Image Translation}, author={Richardson, Elad and Alaluf, Yuval and Patashnik, Or and "
                 "Nitzan, Yotam and Azar, Yaniv and Shapiro, Stav and Cohen-Or, Daniel}, booktitle={CVPR}, "
                 "year={2021}}",
        licence="MIT (official code); small-configuration weights of peeps: CC0-1.0",
        notes="IR-SE feature pyramid with map2style heads (coarse 0-2 / medium 3-6 / fine 7+), W+ codes added to "
              "latent_avg. weights=PATH loads psp_ffhq_encode.pt (paper configuration).",
    ),
    "e4e": Card(
        title="Designing an Encoder for StyleGAN Image Manipulation (e4e)",
        authors="Omer Tov, Yuval Alaluf, Yotam Nitzan, Or Patashnik, Daniel Cohen-Or",
        year=2021, url="https://arxiv.org/abs/2102.02766", code_url="https://github.com/omertov/encoder4editing",
        citation="@article{tov2021designing, title={Designing an Encoder for StyleGAN Image Manipulation}, "
                 "author={Tov, Omer and Alaluf, Yuval and Nitzan, Yotam and Patashnik, Or and Cohen-Or, Daniel}, "
                 "journal={ACM Transactions on Graphics (TOG)}, volume={40}, number={4}, year={2021}}",
        licence="MIT (official code); small-configuration weights of peeps: CC0-1.0",
        notes="pSp's modules with a single w plus per-layer deltas; trained with progressive delta activation, "
              "delta regularisation and a latent discriminator. weights=PATH loads e4e_ffhq_encode.pt.",
    ),
    "restyle_psp": Card(
        title="ReStyle: A Residual-Based StyleGAN Encoder via Iterative Refinement (ReStyle-pSp)",
        authors="Yuval Alaluf, Or Patashnik, Daniel Cohen-Or",
        year=2021, url="https://arxiv.org/abs/2104.02699", code_url="https://github.com/yuval-alaluf/restyle-encoder",
        citation="@inproceedings{alaluf2021restyle, title={ReStyle: A Residual-Based StyleGAN Encoder via "
                 "Iterative Refinement}, author={Alaluf, Yuval and Patashnik, Or and Cohen-Or, Daniel}, "
                 "booktitle={ICCV}, year={2021}}",
        licence="MIT (official code); small-configuration weights of peeps: CC0-1.0",
        notes="6-channel input (image || current reconstruction), residual code updates from G(latent_avg), "
              "n_iters iterations (default 5); IR-SE50 or ResNet34 backbone. weights=PATH loads "
              "restyle_psp_ffhq_encode.pt.",
    ),
    "restyle_e4e": Card(
        title="ReStyle: A Residual-Based StyleGAN Encoder via Iterative Refinement (ReStyle-e4e)",
        authors="Yuval Alaluf, Or Patashnik, Daniel Cohen-Or",
        year=2021, url="https://arxiv.org/abs/2104.02699", code_url="https://github.com/yuval-alaluf/restyle-encoder",
        citation="@inproceedings{alaluf2021restyle, title={ReStyle: A Residual-Based StyleGAN Encoder via "
                 "Iterative Refinement}, author={Alaluf, Yuval and Patashnik, Or and Cohen-Or, Daniel}, "
                 "booktitle={ICCV}, year={2021}}",
        licence="MIT (official code); small-configuration weights of peeps: CC0-1.0",
        notes="ReStyle iterations with e4e's progressive w0 + deltas encoder and e4e's training terms. "
              "weights=PATH loads restyle_e4e_ffhq_encode.pt.",
    ),
    "hyperstyle": Card(
        title="HyperStyle: StyleGAN Inversion with HyperNetworks for Real Image Editing",
        authors="Yuval Alaluf, Omer Tov, Ron Mokady, Rinon Gal, Amit H. Bermano",
        year=2022, url="https://arxiv.org/abs/2111.15666", code_url="https://github.com/yuval-alaluf/hyperstyle",
        citation="@inproceedings{alaluf2022hyperstyle, title={HyperStyle: StyleGAN Inversion with HyperNetworks "
                 "for Real Image Editing}, author={Alaluf, Yuval and Tov, Omer and Mokady, Ron and Gal, Rinon and "
                 "Bermano, Amit H.}, booktitle={CVPR}, pages={18511--18521}, year={2022}}",
        licence="MIT (official code); small-configuration weights of peeps: CC0-1.0",
        notes="ResNet34 hypernetwork on (image || reconstruction) predicting multiplicative weight offsets "
              "W * (1 + delta) for the non-toRGB convs (shared hypernet for the square widest convs), accumulated "
              "over n_iters iterations (default 5) on top of a frozen W-encoder inversion. weights=PATH loads "
              "hyperstyle_ffhq.pt with w_encoder=faces_w_encoder.pt.",
    ),
}


# --------------------------------------------------------------------------------------------- options
def _check_iters(n: int) -> None:
    if n < 1:
        raise InputError(f"n_iters must be >= 1, got {n}")


def _check_applies(options: Any, name: str, *, with_weights: bool, why: str) -> None:
    """An option set away from its default must apply: `with_weights=True` options need weights=PATH (paper
    configuration), `with_weights=False` ones only apply without it (small configuration).

    Raises InputError naming the option and what it needs (options that would be silently ignored are errors).
    """
    default = next(f.default for f in fields(options) if f.name == name)
    value = getattr(options, name)
    if value == default or bool(options.weights) == with_weights:
        return
    if with_weights:
        raise InputError(f"option {name}={value} needs weights=PATH (an official checkpoint): {why}")
    raise InputError(f"option {name}={value} does not apply with weights=PATH: {why}; drop {name}=")


_WEIGHTS_HELP = ("official checkpoint .pt (paper configuration: its decoder is the generator, inputs resized to "
                 "256); default: the domain's trained small configuration")


@dataclass(frozen=True)
class EncoderOptions:
    """Options of pSp / e4e."""

    weights: str | None = field(default=None, metadata={"help": _WEIGHTS_HELP})


@dataclass(frozen=True)
class ReStyleOptions:
    """Options of ReStyle-pSp / ReStyle-e4e."""

    n_iters: int = field(default=5, metadata={"help": "ReStyle iterations (official inference default 5)"})
    backbone: Literal["irse", "resnet34"] = field(default="irse", metadata={
        "help": "small configuration: IR-SE (faces recipe) or ResNet34 weights (encoder/<name>_resnet34); the "
                "paper configuration takes the backbone from the checkpoint"})
    weights: str | None = field(default=None, metadata={"help": _WEIGHTS_HELP})
    bootstrap: str | None = field(default=None, metadata={
        "help": "encoder bootstrapping (ReStyle): a source domain whose encoder takes one step from its average image, "
                "then target_steps steps of this domain's encoder (zoo.adaptation.bootstrap)"})
    target_steps: int = field(default=1, metadata={
        "help": "with bootstrap=: steps of this domain's encoder after the source step (official README: 1)"})

    def __post_init__(self) -> None:
        """Raises InputError for n_iters < 1, backbone= together with weights= (the checkpoint decides), and
        bootstrap options that would be ignored (target_steps without bootstrap, n_iters or weights= with it)."""
        _check_iters(self.n_iters)
        _check_applies(self, "backbone", with_weights=False,
                       why="the paper configuration takes its backbone from the checkpoint")
        if self.target_steps < 1:
            raise InputError(f"target_steps must be >= 1, got {self.target_steps}")
        if self.bootstrap is None and self.target_steps != 1:
            raise InputError("target_steps applies to encoder bootstrapping only; add bootstrap=SOURCE_DOMAIN")
        if self.bootstrap is not None and (self.n_iters != 5 or self.weights):
            raise InputError("bootstrap= runs 1 source step + target_steps target steps with the domains' trained "
                             "encoders: drop n_iters= / weights= (use target_steps=)")


@dataclass(frozen=True)
class HyperStyleOptions:
    """Options of HyperStyle."""

    n_iters: int = field(default=5, metadata={"help": "hypernetwork iterations (official inference default 5)"})
    weights: str | None = field(default=None, metadata={"help": _WEIGHTS_HELP})
    w_encoder: str | None = field(default=None, metadata={
        "help": "paper configuration: the W-encoder checkpoint (faces_w_encoder.pt); default: opts' "
                "w_encoder_checkpoint_path if that file exists"})

    def __post_init__(self) -> None:
        """Raises InputError for n_iters < 1 and for w_encoder= without weights= (it would be ignored)."""
        _check_iters(self.n_iters)
        _check_applies(self, "w_encoder", with_weights=True,
                       why="the W-encoder of the official HyperStyle checkpoint; the small configuration uses the "
                           "domain's trained 'encoder/w_encoder' weights")


# --------------------------------------------------------------------------------------------- helpers
def resize_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """Official test transform Resize((size, size)) on [-1, 1] tensors: bilinear, antialiased when downsampling."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=x.shape[-1] > size or x.shape[-2] > size)


def resize_output(img: torch.Tensor, size: int) -> torch.Tensor:
    """Generator output -> domain resolution: adaptive average pooling when shrinking (the official face_pool),
    bilinear when enlarging."""
    if img.shape[-1] == size and img.shape[-2] == size:
        return img
    if img.shape[-1] > size:
        return F.adaptive_avg_pool2d(img, (size, size))
    return F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)


@dataclass
class CheckpointInversion(Inversion):
    """Inversion of the paper configuration: renders through the checkpoint's decoder, resized to the domain
    resolution (so edits use the generator the codes belong to)."""

    decoder: Generator | None = field(default=None, repr=False)
    out_size: int = 0

    def render(self, latents: torch.Tensor | None = None, generator: Generator | None = None,
               style_offsets: Any = None) -> torch.Tensor:
        if generator is not None:
            return super().render(latents, generator, style_offsets)
        img = super().render(latents, self.decoder, style_offsets)
        return resize_output(img, self.out_size) if self.out_size else img

    def select(self, idx: Any) -> CheckpointInversion:
        base = super().select(idx)
        return CheckpointInversion(**{f.name: getattr(base, f.name) for f in fields(Inversion)},
                                   decoder=self.decoder, out_size=self.out_size)

    def with_transform(self, transform: Any, generator: Generator | None = None) -> CheckpointInversion:
        """As `Inversion.with_transform`, rendered through the checkpoint's (StyleGAN3) decoder and resized to the
        domain resolution like every other render of this inversion."""
        if generator is not None:
            return super().with_transform(transform, generator)  # type: ignore[return-value]
        out = super().with_transform(transform, self.decoder)
        with torch.no_grad():
            out.reconstructions = out.render().to(self.reconstructions.dtype)
        return out  # type: ignore[return-value]


@dataclass
class Loaded:
    """Per-domain state of an encoder inverter."""

    encoder: nn.Module
    generator: Generator
    latent_avg: torch.Tensor  # [n_styles, D]
    input_size: int
    paper: bool
    w_encoder: nn.Module | None = None
    avg_image: torch.Tensor | None = None
    official: OfficialModel | None = None
    source: str = ""


_SHA_CACHE: dict[tuple[str, float, int], str] = {}


def _sha(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def _user_path(p: str, what: str) -> Path:
    path = Path(os.path.expanduser(p))
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    return path


# --------------------------------------------------------------------------------------------- base
class EncoderInverter(Inverter):
    """Shared loading / timing / output logic; subclasses set `name`, `card`, `Options` and `_forward`."""

    kind = "encoder"
    latent_space = "W+"
    batchable = True
    version = "1"
    Options: ClassVar[type] = EncoderOptions
    iterative: ClassVar[bool] = False

    # ------------------------------------------------------------------ weights
    @classmethod
    def embedded_options(cls) -> dict[str, Any]:
        return dict(EMBEDDED.get(cls.name, {}))

    @classmethod
    def official_weights(cls, options: dict[str, Any]) -> bool:
        """`weights=` always names an official checkpoint: it runs with the paper's options (e.g. n_iters 5)."""
        return bool(options.get("weights"))

    def _backbone(self) -> str:
        return getattr(self.options, "backbone", None) or DEFAULT_BACKBONE[self.name]

    def role(self) -> str:
        return weight_role(self.name, self._backbone())

    def _train_hint(self, domain: Domain, method: str | None = None, backbone: str | None = None) -> str:
        method = method or self.name
        backbone = backbone or (self._backbone() if method == self.name else None)
        flag = f" --backbone {backbone}" if backbone and backbone != DEFAULT_BACKBONE[method] else ""
        return f"run `zoo train {method} --domain {domain.name}{flag} --install`"

    def _spec(self, domain: Domain, role: str, method: str | None = None, backbone: str | None = None) -> Any:
        spec = domain.weights.get(role)
        if spec is None:
            raise CheckpointError(f"domain '{domain.name}' has no trained {method or self.name} weights ('{role}'): "
                                  f"{self._train_hint(domain, method, backbone)} (or pass weights=PATH to an "
                                  "official checkpoint)")
        return spec

    def weights_sha256(self, domain: Domain) -> dict[str, str]:
        if self.options.weights:
            out = {"checkpoint": _sha(_user_path(self.options.weights, "checkpoint"))}
            w = getattr(self.options, "w_encoder", None)
            if w:
                out["w_encoder"] = _sha(_user_path(w, "W-encoder checkpoint"))
            return out
        out = super().weights_sha256(domain)
        out[self.role()] = self._spec(domain, self.role()).sha256
        if self.name == "hyperstyle":
            out["encoder/w_encoder"] = self._spec(domain, "encoder/w_encoder", "w_encoder").sha256
        return out

    def load(self, domain: Domain) -> Loaded:
        return self._load_paper(domain) if self.options.weights else self._load_small(domain)

    def _load_small(self, domain: Domain) -> Loaded:
        role = self.role()
        spec = self._spec(domain, role)
        path = spec.resolve()
        gen = domain.generator(self.device)
        g = gen.generator
        f = load_encoder_file(path, g.layer_slots(), self.device, expect_method=self.name)
        cfg = f.config
        family = generator_family(g)
        if cfg.generator != family:
            raise CheckpointError(f"{path}: trained for a {cfg.generator} generator, but domain '{domain.name}' has a "
                                  f"{family} generator: {self._train_hint(domain)}")
        if (cfg.n_styles, cfg.style_dim, cfg.input_size) != (g.n_latent, g.style_dim, domain.resolution):
            raise CheckpointError(
                f"{path}: trained for {cfg.n_styles} styles x {cfg.style_dim} at {cfg.input_size} px, but domain "
                f"'{domain.name}' has {g.n_latent} x {g.style_dim} at {domain.resolution} px: "
                f"{self._train_hint(domain)}")
        gen_spec = domain.weights.get("generator")
        trained_on = f.training.get("generator_sha256")
        if trained_on and gen_spec is not None and trained_on != gen_spec.sha256:
            warnings.warn(f"{self.name}: {path.name} was trained against another generator of '{domain.name}' "
                          f"(sha256 {trained_on[:12]}…); retrain: {self._train_hint(domain)}", stacklevel=2)
        loaded = Loaded(f.module, g, f.latent_avg, cfg.input_size, False, source=str(path))
        if self.name == "hyperstyle":
            w_spec = self._spec(domain, "encoder/w_encoder", "w_encoder")
            w = load_encoder_file(w_spec.resolve(), None, self.device, expect_method="w_encoder")
            if f.training.get("w_encoder_sha256") not in (None, w_spec.sha256):
                warnings.warn(f"hyperstyle: its hypernetwork was trained on another W-encoder than the installed "
                              f"one; retrain: {self._train_hint(domain)}", stacklevel=2)
            loaded.w_encoder, loaded.latent_avg = w.module, w.latent_avg
        if self.name.startswith("restyle"):
            loaded.avg_image = average_image(g, loaded.latent_avg, pool_to((cfg.input_size, cfg.input_size)))
        return loaded

    def _load_paper(self, domain: Domain) -> Loaded:
        path = _user_path(self.options.weights, "checkpoint")
        w_enc = getattr(self.options, "w_encoder", None)
        model = load_official(path, device=self.device,
                              w_encoder=_user_path(w_enc, "W-encoder checkpoint") if w_enc else None)
        if model.method != self.name:
            hint = (f"invert with `{model.method}`" if model.method in CARDS
                    else "it is HyperStyle's W-encoder: pass it as w_encoder=PATH to `hyperstyle`")
            raise CheckpointError(f"{path} is a {model.method} checkpoint ({model.encoder_type}), not {self.name}: "
                                  f"{hint}")
        if self.name == "hyperstyle" and model.w_encoder is None:
            raise CheckpointError(f"{path}: HyperStyle needs its W-encoder: pass w_encoder=PATH "
                                  "(faces_w_encoder.pt for hyperstyle_ffhq.pt)")
        g = model.generator.eval().requires_grad_(False)
        loaded = Loaded(model.encoder.eval(), g, model.latent_avg, PAPER_INPUT_SIZE, True, model.w_encoder,
                        official=model, source=str(path))
        if self.name.startswith("restyle"):
            loaded.avg_image = average_image(g, model.latent_avg, pool_to((PAPER_INPUT_SIZE, PAPER_INPUT_SIZE)))
        return loaded

    # ------------------------------------------------------------------ inversion
    def _n_iters(self) -> int:
        return int(getattr(self.options, "n_iters", 1))

    def _forward(self, st: Loaded, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list | None]:
        """x at the encoder input size -> (codes [B, n_styles, D], image at the generator size, deltas | None)."""
        if st.official is not None:  # official forward: + latent_avg if start_from_latent_avg, learn_in_w broadcast
            codes = st.official.encode(x)
        else:
            codes = st.encoder(x) + st.latent_avg.unsqueeze(0).to(x)
        return codes, render_aligned(st.generator, codes), None

    @torch.no_grad()
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        images = self.check_images(images, domain)
        st = self.prepare(domain)
        start = self.clock()
        x = resize_input(images, st.input_size)
        codes, image, deltas = self._forward(st, x)
        recon = resize_output(image, domain.resolution)
        n = images.shape[0]
        seconds = torch.full((n,), (self.clock() - start) / max(n, 1))
        change = WeightOffsets(list(deltas)) if deltas is not None else None
        extras = {"configuration": "paper" if st.paper else "small", "weights": st.source}
        if self.iterative:
            extras["n_iters"] = self._n_iters()
        common = dict(latents=codes, reconstructions=recon, seconds=seconds, change=change, method=self.name,
                      domain=domain, extras=extras)
        if st.paper:
            return CheckpointInversion(**common, decoder=st.generator, out_size=domain.resolution)
        return Inversion(**common)


SG2_AND_SG3 = ("stylegan2", "stylegan3")


class PSP(EncoderInverter):
    """pSp: IR-SE FPN encoder -> W+ codes + latent_avg (single forward pass); StyleGAN2 or StyleGAN3."""

    name = "psp"
    card = CARDS["psp"]
    generators = SG2_AND_SG3


class E4E(EncoderInverter):
    """e4e: w0 + per-layer deltas (all deltas on at inference) + latent_avg; StyleGAN2 or StyleGAN3."""

    name = "e4e"
    card = CARDS["e4e"]
    generators = SG2_AND_SG3


class _ReStyle(EncoderInverter):
    Options = ReStyleOptions
    iterative = True
    generators = SG2_AND_SG3

    def _source(self) -> tuple[Any, Loaded] | None:
        """Bootstrapping: (source domain, its loaded ReStyle state), else None."""
        if self.options.bootstrap is None:
            return None
        from zoo import registry

        src = registry.get_domain(self.options.bootstrap)
        return src, self.prepare(src)

    def _n_iters(self) -> int:
        return 1 + self.options.target_steps if self.options.bootstrap is not None else self.options.n_iters

    def load(self, domain: Domain) -> Loaded:
        if self.options.bootstrap is not None and domain.name == self.options.bootstrap:
            return self._load_small(domain)
        return super().load(domain)

    def weights_sha256(self, domain: Domain) -> dict[str, str]:
        out = super().weights_sha256(domain)
        if self.options.bootstrap is not None:
            from zoo import registry

            src = registry.get_domain(self.options.bootstrap)
            out.update({f"bootstrap/{k}": v for k, v in super().weights_sha256(src).items()})
        return out

    def _forward(self, st: Loaded, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list | None]:
        source = self._source()
        if source is not None:
            from zoo.adaptation.bootstrap import run_bootstrap

            s = source[1]
            if (s.generator.n_latent, s.generator.style_dim) != (st.generator.n_latent, st.generator.style_dim):
                raise InputError(f"bootstrap={self.options.bootstrap}: its W+ shape differs from this domain's; "
                                 "bootstrapping needs aligned generators (a target fine-tuned from the source)")
            res = run_bootstrap(s.encoder, s.generator, s.latent_avg, st.encoder, st.generator, x,
                                self.options.target_steps, source_avg_image=s.avg_image)
            return res.codes[-1], res.images[-1], None
        res = run_restyle(st.encoder, st.generator, st.latent_avg, x, self._n_iters(), avg_image=st.avg_image)
        return res.codes[-1], res.images[-1], None


class ReStylePSP(_ReStyle):
    """ReStyle-pSp: residual encoder on (image || reconstruction), n_iters iterations from G(latent_avg)."""

    name = "restyle_psp"
    card = CARDS["restyle_psp"]


class ReStyleE4E(_ReStyle):
    """ReStyle-e4e: ReStyle iterations with the progressive (w0 + deltas) residual encoder."""

    name = "restyle_e4e"
    card = CARDS["restyle_e4e"]


# Options for the embedded peeps weights where they differ from the paper defaults: the number of inference
# iterations with the lowest held-out validation error at the end of training (validation images = the tail of the
# train split, never the test split; per-iteration numbers in each model card).
# HyperStyle, step 1793 (75 min): L2 0.0986 / 0.0886 / 0.0853 / 0.0845 / 0.0848 and LPIPS-64 0.0771 / 0.0728 /
# 0.0723 / 0.0728 / 0.0738 after iterations 1..5 (W-encoder alone 0.1407 / 0.1004): L2 + 0.8 LPIPS (the training
# objective) is lowest after 4 (0.1427 vs 0.1431 after 3 and 0.1438 after 5). At step 781 the optimum was 3.
EMBEDDED: dict[str, dict[str, Any]] = {
    "hyperstyle": {"n_iters": 4},
}


class HyperStyle(EncoderInverter):
    """HyperStyle: frozen W-encoder inversion, then n_iters hypernetwork iterations of weight offsets."""

    name = "hyperstyle"
    kind = "hybrid"  # an encoder that also changes the generator (between encoders and optimisation + tuning)
    latent_space = "W & weights"
    changes_generator = True
    card = CARDS["hyperstyle"]
    Options = HyperStyleOptions
    iterative = True

    def _forward(self, st: Loaded, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list | None]:
        assert st.w_encoder is not None
        res = run_hyperstyle(st.encoder, st.generator, x, self._n_iters(), w_encoder=st.w_encoder,
                             latent_avg=st.latent_avg)
        return res.codes, res.images[-1], res.weights_deltas


INVERTERS = (PSP, E4E, ReStylePSP, ReStyleE4E, HyperStyle)
