"""StyleGAN2 (rosinality layout): generator, discriminator and checkpoint I/O."""

from .generator import Generator, GeneratorConfig, LayerSlot, default_channels

__all__ = ["Generator", "GeneratorConfig", "LayerSlot", "default_channels"]
