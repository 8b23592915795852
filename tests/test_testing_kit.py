"""zoo.testing, the conformance kit for plugin authors: it passes good inverters and names what is wrong in bad ones."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from zoo import testing
from zoo.cards import Card
from zoo.domain import Domain
from zoo.inversion import Inversion
from zoo.inverter import Inverter


class Good(Inverter):
    """Projects each image onto latent_avg + a fixed linear map (batchable, deterministic)."""

    name = "kit_good"
    kind = "encoder"
    latent_space = "W"
    card = Card(title="good", authors="me", year=2026, url="https://example.org", licence="MIT", citation="@misc{}")

    @torch.no_grad()
    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        x = self.check_images(images, domain)
        loaded = self.prepare(domain)
        start = self.clock()
        g = loaded.generator
        w = loaded.latent_avg + 0.1 * x.mean((1, 2, 3))[:, None]
        latents = w[:, None].repeat(1, g.n_latent, 1)
        img, _ = g([latents], input_is_latent=True, randomize_noise=False)
        return Inversion(latents, img, torch.full((len(x),), (self.clock() - start) / len(x)), method=self.name,
                         domain=domain)


class PerBatchSeconds(Good):
    name = "kit_seconds"

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        out = super().invert(images, domain)
        out.seconds = out.seconds.sum().reshape(1)
        return out


class BatchMean(Good):
    name = "kit_batch_mean"

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        out = super().invert(images, domain)
        out.latents = out.latents + out.latents.mean(0, keepdim=True) * 0.1  # depends on the other images
        return out


class Unseeded(Good):
    name = "kit_unseeded"
    calls = 0

    def invert(self, images: torch.Tensor, domain: Domain, *, progress: bool = False) -> Inversion:
        out = super().invert(images, domain)
        Unseeded.calls += 1
        out.latents = out.latents + Unseeded.calls  # a private source of randomness
        return out


class NoCard(Good):
    name = "kit_no_card"
    card = Card(title="")


def test_a_conforming_inverter_passes_every_check() -> None:
    report = testing.check_inverter(Good, registered=False)
    assert report == {"checks": ["card", "shapes_and_ranges", "determinism", "batch_independence"], "advice": []}


@pytest.mark.parametrize("cls, check, message", [
    (PerBatchSeconds, testing.check_shapes_and_ranges, "seconds must be [B] (per image)"),
    (BatchMean, testing.check_batch_independence, "inverted alone differs"),
    (Unseeded, testing.check_determinism, "two runs with the same seed differ in latents"),
    (NoCard, testing.check_card, "its card needs `title`"),
])
def test_each_check_names_what_to_fix(cls: Any, check: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        check(cls)


def test_unregistered_name_is_reported_with_the_fix() -> None:
    with pytest.raises(AssertionError, match="entry-points.zoo"):
        testing.check_registration("kit_not_registered")
