"""Cross-domain tools: HyperStyle domain adaptation (`transfer`), ReStyle encoder bootstrapping (`bootstrap`), which
layers receive offsets (`layers`) and the cross-style evaluation (`evaluate`). See docs/domains-adaptation.md."""

from __future__ import annotations

from .bootstrap import BootstrapResult, run_bootstrap
from .layers import OFFICIAL_FFHQ_LAYERS, filter_deltas, select_layers
from .transfer import METHODS, AdaptationResult, AdaptOptions, adapt

__all__ = ["METHODS", "OFFICIAL_FFHQ_LAYERS", "AdaptOptions", "AdaptationResult", "BootstrapResult", "adapt",
           "filter_deltas", "run_bootstrap", "select_layers"]
