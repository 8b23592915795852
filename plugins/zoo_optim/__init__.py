"""Built-in plugin: optimisation-based inverters (anchors §2–4).

* `optim` — the Karras et al. StyleGAN2 projector in W; `optim_wplus` — its W+ variant (Image2StyleGAN space,
  rosinality `--w_plus`);
* `pti` — pivotal tuning (W pivot, then per-image generator tuning kept as weight deltas);
* `idinvert` — in-domain inversion (domain-guided encoder + domain-regularised optimisation) and
  `idinvert_encoder`, its encoder-only mode. The encoder is trained per domain with `train_idinvert`
  (`zoo train idinvert --domain <name>`).

And the refiners `pti`, `optim`, `optim_wplus`, `idinvert` (`refiners.py`): the same second stages started from
any embedder's codes, composed as `refiner@embedder` (`pti@e4e`, `optim_wplus@psp`, `idinvert@idinvert_encoder`).

Every Options dataclass defaults to the paper configuration; `EMBEDDED` lists the documented settings for the
embedded `peeps` domain (32 px) where they differ. Registered through the `zoo` entry-point group
(`optim = "zoo_optim"`).
"""

from __future__ import annotations

import zoo

from ._common import EMBEDDED

from .idinvert import IDInvertEncoderInverter, IDInvertInverter
from .projector import OptimInverter, OptimWPlusInverter
from .pti import PTIInverter
from .refiners import REFINERS, IDInvertRefiner, OptimRefiner, OptimWPlusRefiner, PTIRefiner

INVERTERS = (OptimInverter, OptimWPlusInverter, PTIInverter, IDInvertInverter, IDInvertEncoderInverter)

# Documented settings for the embedded 32 px `peeps` domain where they differ from the paper configuration (the
# Options defaults); pass them as bench options (`zoo bench --option optim.steps=300 ...` or BenchConfig.options).
#
# Cost (reference 2-core CPU, 1 thread, shared): one image-step of the projector costs ~0.2 s with LPIPS at 256 px
# (AlexNet on the 8x upsample dominates; ~0.07 s at 128, ~0.05 s at 64, ~0.03 s MSE only), so the paper recipes
# take ~3.5 min per image (`optim` 1000 steps; `pti` 450 + <= 350 steps). Hence fewer steps.
# Quality (measured on 2 peeps test images with the provisional 600-step peeps generator, `optim` 300 steps; bench
# metrics L2 / LPIPS-Alex at 256): LPIPS loss at 256: 0.39, 0.24 / 0.39, 0.37; + mse 1: 0.16, 0.13 / 0.43, 0.40;
# LPIPS at 128 + mse 1: 0.17, 0.16 / 0.49, 0.47; LPIPS at 64 + mse 1: 0.19, 0.15 / 0.56, 0.52; LPIPS at 64 alone:
# 0.63, 0.41 / 0.57, 0.57. So the LPIPS loss stays at 256 (the automatic size, as the official projectors) and an MSE
# term (rosinality's --mse, weight 1 like PTI's L2) is added: at 32 px the LPIPS-only loss leaves colours off.
# Re-check on the final generator before the leaderboard run.

__all__ = ["INVERTERS", "EMBEDDED", "REFINERS", "OptimInverter", "OptimWPlusInverter", "PTIInverter",
           "IDInvertInverter", "IDInvertEncoderInverter", "PTIRefiner", "OptimRefiner", "OptimWPlusRefiner",
           "IDInvertRefiner"]


@zoo.hookimpl
def register_inverters(register) -> None:
    """Register optim, optim_wplus, pti, idinvert and idinvert_encoder."""
    for cls in INVERTERS:
        register(cls)


@zoo.hookimpl
def register_refiners(register) -> None:
    """Register the refiners pti, optim, optim_wplus and idinvert (second stages of `refiner@embedder`)."""
    for cls in REFINERS:
        register(cls)


@zoo.hookimpl
def register_commands(cli) -> None:
    """`zoo train idinvert --domain NAME`."""
    from .idinvert_train import make_train_command

    cli.commands["train"].add_command(make_train_command())
