"""Built-in plugin: the encoder inverters pSp, e4e, ReStyle-pSp, ReStyle-e4e and HyperStyle, the `hyperstyle`
refiner (HyperStyle's offset iterations from any embedder's codes: `hyperstyle@restyle_e4e`, `refiners.py`), and
their training commands (`zoo train psp|e4e|restyle_psp|restyle_e4e|hyperstyle|w_encoder --domain NAME`).

Registered through the `zoo` entry-point group (`encoders = "zoo_encoders"`). Architectures live in
`zoo.encoders`; this package adds the inverters (`inverters.py`), the small configurations (`configs.py`), the
training recipes (`train.py`, `trainers.py`, `losses.py`, `e4e_losses.py`, `ranger.py`) and the CLI
(`commands.py`).
"""

from __future__ import annotations

import zoo

__all__ = ["E4E", "PSP", "CheckpointInversion", "HyperStyle", "ReStyleE4E", "ReStylePSP", "export_encoder",
           "train_encoder"]


def __getattr__(name: str):  # imported on first use, so that loading the plugin stays cheap
    if name in ("train_encoder", "export_encoder"):
        from . import train

        return getattr(train, name)
    if name in ("E4E", "PSP", "CheckpointInversion", "HyperStyle", "ReStyleE4E", "ReStylePSP"):
        from . import inverters

        return getattr(inverters, name)
    raise AttributeError(f"module 'zoo_encoders' has no attribute {name!r}")


@zoo.hookimpl
def register_inverters(register) -> None:
    from .inverters import INVERTERS

    for cls in INVERTERS:
        register(cls)


@zoo.hookimpl
def register_refiners(register) -> None:
    from .refiners import REFINERS

    for cls in REFINERS:
        register(cls)


@zoo.hookimpl
def register_commands(cli) -> None:
    from .commands import add_commands

    add_commands(cli)
