"""StyleSpace (Wu, Lischinski, Shechtman 2021): edits of single style channels of S, the per-layer codes
s = A_l(w_l) that modulate each convolution (`Generator.style_codes`).

Attribute-specific channels are found as in the paper's classifier-based detection (§4): over mapped samples,
each channel's relevance to a binary attribute is (mean of s_c over samples the domain's scorer calls positive
- mean over all) / std over all; continuous attributes (pose) use the correlation of s_c with the score. toRGB
channels are left out by default (the paper localises attributes in the convolution layers). An edit moves one
channel: s_c' = s_c + step * sign * scale * std_c, sign = the relevance's sign, so a positive step increases the
attribute. Directions: one per attribute scorer of the domain (its most relevant channel), the channels a domain
names (a domain file's `[directions.stylespace] smile = "s6_501"`, `Domain.stylespace_channels()`; peeps ships the
official signal-to-noise detection's choice, `zoo_editors.fitting.rank_channels`), plus any channel written
`s<slot>_<channel>` (slot = index in `Generator.layer_slots()`; `-s<slot>_<channel>`: a positive step lowers it),
moved in its own std units. A channel ranked here with the domain's scorer is chosen by that scorer, so its
attribute change under that scorer is not an independent measure (`scorers_used`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from zoo.cards import Card, cache_dir
from zoo.checkpoint_io import torch_load
from zoo.domain import Domain
from zoo.editor import EditCodes, Editor

CHANNEL = re.compile(r"^(-?)s(\d+)_(\d+)$")


@dataclass(frozen=True)
class StyleSpaceOptions:
    n_samples: int = field(default=2000, metadata={"help": "mapped z samples for the channel statistics"})
    seed: int = field(default=0, metadata={"help": "seed of the samples"})
    scale: float = field(default=5.0, metadata={"help": "channel standard deviations per unit step"})
    top_k: int = field(default=5, metadata={"help": "channels listed per attribute (direction_table)"})
    include_torgb: bool = field(default=False, metadata={"help": "also search the toRGB layers' channels"})


@dataclass
class ChannelStats:
    """Per-slot mean / std of S codes ([in] each) and the ranked channels per attribute."""

    mean: list[torch.Tensor]
    std: list[torch.Tensor]
    ranking: dict[str, list[tuple[int, int, float]]]  # attribute -> [(slot, channel, signed relevance)], best first


class StyleSpace(Editor):
    """Single-channel S-space edits; latents [B, n_styles, w_dim] are kept, the offsets go to the S codes."""

    name = "stylespace"
    Options = StyleSpaceOptions
    card = Card(
        title="StyleSpace Analysis: Disentangled Controls for StyleGAN Image Generation",
        authors="Zongze Wu, Dani Lischinski, Eli Shechtman", year=2021,
        url="https://arxiv.org/abs/2011.12799", code_url="https://github.com/betterze/StyleSpace",
        licence="see the official repository", citation="Wu et al., CVPR 2021",
    )

    def __init__(self, options=None, **overrides) -> None:
        super().__init__(options, **overrides)
        self._stats: dict[str, ChannelStats] = {}

    def _cache_path(self, domain: Domain):
        """Disk cache of the statistics, keyed by the domain's weights digests and the options."""
        key = {"domain": domain.name, "options": asdict(self.options), "version": self.version,
               "weights": {k: v.sha256 for k, v in sorted(domain.weights.items()) if k in ("generator", "attributes")}}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return cache_dir() / "editors" / f"stylespace-{domain.name}-{digest}.pt"

    def stats(self, domain: Domain) -> ChannelStats:
        """Channel statistics and attribute rankings of `domain` (deterministic; cached in memory and on disk when
        the domain's generator is sha256-pinned)."""
        if domain.name in self._stats:
            return self._stats[domain.name]
        pinned = "generator" in domain.weights
        path = self._cache_path(domain) if pinned else None
        if path is not None and path.is_file():
            try:
                d = torch_load(path, what="stylespace cache")  # weights-only, torch's warnings silenced
                self._stats[domain.name] = ChannelStats(d["mean"], d["std"], {
                    k: [(int(a), int(b), float(c)) for a, b, c in v] for k, v in d["ranking"].items()})
                return self._stats[domain.name]
            except Exception:  # a corrupt cache is recomputed
                path.unlink(missing_ok=True)
        st = self._compute(domain)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save({"mean": st.mean, "std": st.std, "ranking": st.ranking}, tmp)
            tmp.replace(path)
        self._stats[domain.name] = st
        return st

    @torch.no_grad()
    def _compute(self, domain: Domain) -> ChannelStats:
        g = domain.generator().generator
        scorers = domain.attribute_scorers(g.device)
        slots = g.layer_slots()
        gen = torch.Generator().manual_seed(self.options.seed)
        z = torch.randn(self.options.n_samples, g.style_dim, generator=gen)
        codes: list[list[torch.Tensor]] = [[] for _ in slots]
        scores: dict[str, list[torch.Tensor]] = {k: [] for k in scorers}
        for i in range(0, len(z), 250):
            w = g.style(z[i : i + 250].to(g.device)).unsqueeze(1).repeat(1, g.n_latent, 1)
            for k, s in enumerate(g.style_codes(w)):
                codes[k].append(s.cpu())
            if scorers:
                img = g.synthesis(w, g.fixed_noise()).clamp(-1, 1)
                for k, f in scorers.items():
                    scores[k].append(f(img).float().cpu())
        s_all = [torch.cat(c) for c in codes]
        mean = [s.mean(0) for s in s_all]
        std = [s.std(0).clamp_min(1e-8) for s in s_all]
        ranking: dict[str, list[tuple[int, int, float]]] = {}
        for attr, parts in scores.items():
            y = torch.cat(parts)
            binary = bool(((y >= 0) & (y <= 1)).all())
            rows: list[tuple[int, int, float]] = []
            for k, s in enumerate(s_all):
                if slots[k].is_torgb and not self.options.include_torgb:
                    continue
                if binary:
                    pos = y > 0.5
                    if pos.sum() < 2 or (~pos).sum() < 2:
                        continue
                    rel = (s[pos].mean(0) - mean[k]) / std[k]
                else:
                    yc = (y - y.mean()) / y.std().clamp_min(1e-8)
                    rel = ((s - mean[k]) / std[k] * yc[:, None]).mean(0)
                rows += [(k, c, float(r)) for c, r in enumerate(rel)]
            ranking[attr] = sorted(rows, key=lambda r: -abs(r[2]))[:200]
        return ChannelStats(mean, std, ranking)

    @staticmethod
    def named_channels(domain: Domain) -> dict[str, str]:
        """Channels the domain names, e.g. {'smile': 's6_501'} (a domain file's [directions.stylespace])."""
        fn = getattr(domain, "stylespace_channels", None)
        return dict(fn()) if callable(fn) else {}

    def directions(self, domain: Domain) -> list[str]:
        named = self.named_channels(domain)
        return sorted({a for a, rows in self.stats(domain).ranking.items() if rows} | set(named))

    def accepts(self, direction: str, domain: Domain) -> bool:
        direction = self.named_channels(domain).get(direction, direction)
        m = CHANNEL.match(direction)
        if m is None:
            return direction in self.directions(domain)
        std = self.stats(domain).std
        return int(m[2]) < len(std) and int(m[3]) < std[int(m[2])].numel()

    def channel(self, direction: str, domain: Domain) -> tuple[int, int, float]:
        """(slot, channel, sign) edited by `direction`."""
        direction = self.named_channels(domain).get(direction, direction)
        m = CHANNEL.match(direction)
        if m is not None:
            return int(m[2]), int(m[3]), -1.0 if m[1] else 1.0
        slot, ch, rel = self.stats(domain).ranking[direction][0]
        return slot, ch, 1.0 if rel >= 0 else -1.0

    def scorers_used(self, direction: str, domain: Domain) -> tuple[str, ...]:
        """(direction,) when the channel is this editor's own ranking by the domain's scorer of that name (not a
        channel the domain names or the user writes); () otherwise."""
        if direction in self.named_channels(domain) or CHANNEL.match(direction):
            return ()
        return (direction,)

    def edit_codes(self, latents: torch.Tensor, direction: str, step: float, domain: Domain) -> EditCodes:
        st = self.stats(domain)
        slot, ch, sign = self.channel(direction, domain)
        offsets: list[torch.Tensor | None] = [None] * len(st.std)
        off = torch.zeros(1, st.std[slot].numel(), device=latents.device, dtype=latents.dtype)
        off[0, ch] = step * sign * self.options.scale * float(st.std[slot][ch])
        offsets[slot] = off
        return EditCodes(latents, offsets)

    def direction_table(self, domain: Domain) -> list[dict[str, Any]]:
        st = self.stats(domain)
        g = domain.generator().generator
        slots = g.layer_slots()
        rows = []
        named = self.named_channels(domain)
        for attr in self.directions(domain):
            if attr in named:  # the domain's choice is what is edited
                k, c, _ = self.channel(attr, domain)
                rows.append({"direction": attr, "rank": None, "channel": named[attr], "layer": slots[k].name,
                             "relevance": None, "std": round(float(st.std[k][c]), 4), "source": "domain"})
                continue
            for rank, (k, c, rel) in enumerate(st.ranking[attr][: self.options.top_k]):
                rows.append({"direction": attr, "rank": rank + 1, "channel": f"s{k}_{c}", "layer": slots[k].name,
                             "relevance": round(rel, 3), "std": round(float(st.std[k][c]), 4)})
        return rows
