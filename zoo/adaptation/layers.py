"""Which generator layers receive transferred weight offsets (HyperStyle domain adaptation).

Official list (yuval-alaluf/hyperstyle @ a723c73, `utils/domain_adaptation_utils.py:
filter_non_ffhq_layers_in_toonify_model`): of the `weights_deltas` slots of the 1024-px FFHQ generator only indices
**14, 15, 17, 18, 20, 21, 23, 24** keep their offsets; every other slot gets None. The function name calls them the FFHQ
layers of the (layer-swapped) Toonify model, and the same filter is applied to every target (Toonify, Pixar, Sketch,
Disney princess). The generator's forward order (HyperStyle `models/stylegan2/model.py`, = `Generator.layer_slots()`
here) is 0 = conv1 (4 px), 1 = to_rgb1, then per block j (8*2^j px) 2+3j and 3+3j = its two convs, 4+3j = its toRGB:
26 slots for 1024 px. By that order the kept indices are the two convs of the **128, 256, 512 and 1024 px** blocks
(rosinality `convs[8..15]`, the official comment's "convs 8-15"); dropped: every conv at 4-64 px and every toRGB. (The
issue text and anchors-wave2 §3.1 read the same indices as "the 64-512 px convs"; the index arithmetic above and the
"convs 8-15" comment both give 128-1024 — `test_official_list_*` pins it.)

There is no 32-px counterpart by construction (a 32-px generator has only levels the official filter drops). The
official filter keeps the finest 4 of the 9 resolution levels and no toRGB; `DEFAULT_RESOLUTIONS` (the convs at 16 and
32 px, the finest 2 of 4 levels) is that proportion here and was checked by the measured ablation in
docs/domains-adaptation.md. `res:R1,R2` selects the convs at chosen resolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InputError
from ..stylegan2.generator import LayerSlot

OFFICIAL_FFHQ_LAYERS: tuple[int, ...] = (14, 15, 17, 18, 20, 21, 23, 24)
OFFICIAL_N_SLOTS = 26  # 1024-px generator: 2 + 3 * 8 slots
# The 32-px analogue used by default (chosen by the ablation; see docs/domains-adaptation.md).
DEFAULT_RESOLUTIONS: tuple[int, ...] = (16, 32)


def slot_resolution(slot: LayerSlot) -> int:
    """Output resolution (px) of a generator slot: 4 for conv1/to_rgb1, 8*2^j for block j."""
    if slot.name in ("conv1", "to_rgb1"):
        return 4
    kind, idx = slot.name.split(".")
    block = int(idx) // 2 if kind == "convs" else int(idx)
    return 8 * 2**block


def conv_slots_at(slots: Sequence[LayerSlot], resolutions: Sequence[int]) -> list[int]:
    """Indices of the non-toRGB slots whose resolution is in `resolutions`."""
    want = set(int(r) for r in resolutions)
    return [s.index for s in slots if not s.is_torgb and slot_resolution(s) in want]


def select_layers(spec: str | Sequence[int], slots: Sequence[LayerSlot]) -> list[int]:
    """Slot indices named by `spec` for a generator with `slots` (`Generator.layer_slots()`).

    spec: "default" (convs at DEFAULT_RESOLUTIONS), "official" (OFFICIAL_FFHQ_LAYERS; only for a 26-slot, 1024-px
    generator), "all" (every non-toRGB conv = HyperStyle's own `layers_to_tune` default), "none" (no offsets: codes
    only), "res:16,32" (the convs at these resolutions) or slot indices ("5,6,8,9" or a sequence of ints).
    Raises InputError (one line) for an unknown spec, an index out of range or "official" on another generator.
    """
    n = len(slots)
    if not isinstance(spec, str):
        idx = [int(i) for i in spec]
    else:
        s = spec.strip().lower()
        if s == "default":
            return conv_slots_at(slots, DEFAULT_RESOLUTIONS)
        if s == "official":
            if n != OFFICIAL_N_SLOTS:
                raise InputError(f"layers=official is the 1024-px list {list(OFFICIAL_FFHQ_LAYERS)} (26 slots); this "
                                 f"generator has {n} slots: use layers=default, res:R1,R2 or slot indices")
            return list(OFFICIAL_FFHQ_LAYERS)
        if s == "all":
            return [sl.index for sl in slots if not sl.is_torgb]
        if s == "none":
            return []
        if s.startswith("res:"):
            try:
                res = [int(r) for r in s[4:].split(",") if r.strip()]
            except ValueError:
                raise InputError(f"layers={spec!r}: expected res:R1,R2 with resolutions in px") from None
            valid = sorted({slot_resolution(sl) for sl in slots})
            bad = [r for r in res if r not in valid]
            if bad or not res:
                raise InputError(f"layers={spec!r}: resolutions must be among {valid}")
            return conv_slots_at(slots, res)
        try:
            idx = [int(i) for i in s.split(",") if i.strip()]
        except ValueError:
            raise InputError(f"unknown layers={spec!r}: use default, official, all, none, res:R1,R2 or slot "
                             "indices like 5,6,8,9") from None
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise InputError(f"layer indices {bad} out of range: this generator has slots 0..{n - 1}")
    return sorted(set(idx))


def filter_deltas(deltas: Sequence[torch.Tensor | None], layers: Sequence[int]) -> list[torch.Tensor | None]:
    """Keep the offsets of `layers`, None elsewhere (the official `filter_non_ffhq_layers_in_toonify_model`)."""
    keep = set(layers)
    return [d if i in keep else None for i, d in enumerate(deltas)]


def slot_parameter_prefixes(slots: Sequence[LayerSlot], layers: Sequence[int]) -> tuple[str, ...]:
    """Parameter-name prefixes of the styled layers of `layers` (e.g. "convs.3." = its modulated conv weight,
    modulation, noise strength and bias), to restrict additive weight changes (PTI's tuned weights) to the same
    layers as the offsets."""
    by_index = {s.index: s for s in slots}
    return tuple(f"{by_index[i].name}." for i in layers)
