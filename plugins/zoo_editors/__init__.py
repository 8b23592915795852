"""Built-in editors: InterFaceGAN (domain directions), GANSpace (PCA of W) and StyleSpace (single S channels)."""

from __future__ import annotations

import zoo


@zoo.hookimpl
def register_editors(register) -> None:
    from .ganspace import GANSpace
    from .interfacegan import InterFaceGAN
    from .stylespace import StyleSpace

    register(InterFaceGAN)
    register(GANSpace)
    register(StyleSpace)
