"""Frozen copy of StyleGAN2 ops / layers / generator as of commit 13bb0df (the issue-20 baseline)."""

from .generator import Generator, GeneratorConfig, LayerSlot

__all__ = ["Generator", "GeneratorConfig", "LayerSlot"]
