"""zoo-example-plugin: registers the `mean_latent` inverter through the `zoo` entry-point group."""

from __future__ import annotations

from collections.abc import Callable

import zoo

from .mean_latent import MeanLatentInverter

__all__ = ["MeanLatentInverter", "register_inverters"]


@zoo.hookimpl
def register_inverters(register: Callable[[type], None]) -> None:
    """Register this package's inverters."""
    register(MeanLatentInverter)
