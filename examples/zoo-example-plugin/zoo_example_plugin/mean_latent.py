"""The mean-latent baseline: every image maps to the generator's average latent (a lower bound for inverters)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from zoo.cards import Card
from zoo.inversion import Inversion
from zoo.inverter import Inverter

if TYPE_CHECKING:
    from zoo.domain import Domain


@dataclass(frozen=True)
class MeanLatentOptions:
    """Options of the mean-latent baseline."""

    batch_size: int = field(default=16, metadata={"help": "images rendered per generator forward pass"})


class MeanLatentInverter(Inverter):
    """Returns latent_avg repeated over all W+ slots for every image, rendered through the domain's generator."""

    name = "mean_latent"
    kind = "encoder"  # a constant encoder: no optimisation, one forward pass
    latent_space = "W"
    card = Card(
        title="Mean latent baseline",
        authors="inversion-zoo example plugin",
        licence="MIT",
        notes="Ignores its input; the score every real inverter must beat.",
    )
    Options = MeanLatentOptions

    @torch.no_grad()
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        images = self.check_images(images, domain)
        loaded = self.prepare(domain)  # domain.generator(self.device): .generator and .latent_avg [w_dim]
        start = self.clock()
        g = loaded.generator
        n = images.shape[0]
        w = loaded.latent_avg.to(self.device, torch.float32).reshape(1, 1, -1)
        latents = w.expand(n, g.n_latent, w.shape[-1]).clone()
        recons = []
        for chunk in latents.split(max(1, self.options.batch_size)):
            img, _ = g([chunk], input_is_latent=True, randomize_noise=False)
            recons.append(img)
        seconds = torch.full((n,), (self.clock() - start) / max(n, 1))
        return Inversion(latents=latents, reconstructions=torch.cat(recons), seconds=seconds,
                         method=self.name, domain=domain)
