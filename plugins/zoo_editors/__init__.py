"""Built-in editors: InterFaceGAN (domain directions) and GANSpace (PCA of W)."""

from __future__ import annotations

import zoo


@zoo.hookimpl
def register_editors(register) -> None:
    from .ganspace import GANSpace
    from .interfacegan import InterFaceGAN

    register(InterFaceGAN)
    register(GANSpace)
