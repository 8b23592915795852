"""`python -m zoo_lorelei.encoder_training restyle_e4e OUT [MINUTES] [STEPS]`: the lorelei ReStyle encoder trained the
Toonify way (ReStyle README, pSp#30): inputs are *source* (peeps) training images, the decoder is the lorelei
generator, and the losses compare the peeps input with the lorelei output — no paired data. The ID loss is off (no
identity model spans both styles). To fit the CPU budget (issue 18: <= 45 CPU-minutes) the encoder starts from the
installed peeps encoder of the same method (aligned generators: the same W+ codes mean the same options in both),
with every progressive stage on; the zoo_encoders recipe otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from zoo.training.checkpointing import load_checkpoint, save_atomic
from zoo_encoders.configs import weight_role
from zoo_encoders.train import STATE_KEYS, export_encoder, train_encoder
from zoo_encoders.weights_io import load_encoder_file

from .domain import LoreleiDomain

TOONIFY_RECIPE: dict[str, Any] = {"id_lambda": 0.0, "n_iters_per_batch": 2, "val_every": 100, "checkpoint_every": 25,
                                  "val_iters": 3, "n_val": 48}


class ToonifyTrainingDomain(LoreleiDomain):
    """The lorelei domain (generator, weights, name) whose training images are the peeps ones."""

    def images(self, split: str = "test", limit: int | None = None) -> torch.Tensor:
        from zoo_peeps.domain import PeepsDomain

        return PeepsDomain().images(split, limit)


def init_from_peeps(method: str, out: Path, seed: int = 0) -> dict[str, Any]:
    """Create `out/state.pt` at step 0 holding the installed peeps encoder's weights and final progressive stage."""
    from zoo_peeps.domain import PeepsDomain

    dom = ToonifyTrainingDomain()
    train_encoder(method, dom, out, steps=0, seed=seed, recipe=TOONIFY_RECIPE, progress=False)
    peeps = PeepsDomain()
    spec = peeps.weights[weight_role(method, "irse")]
    f = load_encoder_file(spec.resolve(), peeps.generator().generator.layer_slots(), "cpu", expect_method=method)
    st = load_checkpoint(out / "state.pt")
    missing = set(st["trainer"]["module"]) ^ set(f.module.state_dict())
    if missing:
        raise RuntimeError(f"peeps {method} weights do not fit the lorelei encoder ({sorted(missing)[:3]})")
    st["trainer"]["module"] = {k: v.float().clone() for k, v in f.module.state_dict().items()}
    final = f.training.get("final_stage")
    if final is not None and st["trainer"].get("stage") is not None:
        st["trainer"]["stage"] = int(final)
    st["info"] = {**st["info"], "init": f"peeps {method} ({spec.sha256[:12]})"}
    st["log"] = []
    st["val_history"] = []
    save_atomic(st, out / "state.pt")
    return {"init_sha256": spec.sha256, "stage": st["trainer"].get("stage")}


def run(method: str, out: Path, minutes: float | None, steps: int | None, seed: int = 0) -> dict[str, Any]:
    """Fine-tune (or resume) the lorelei `method` encoder in `out`; returns the training summary."""
    init = None
    if not (out / "state.pt").exists():
        init = init_from_peeps(method, out, seed)
    summary = train_encoder(method, ToonifyTrainingDomain(), out, steps=steps, max_minutes=minutes, seed=seed,
                            recipe=TOONIFY_RECIPE)
    return {**summary, "init": init}


def _peeps_sha(method: str) -> str:
    from zoo_peeps.domain import PeepsDomain

    return PeepsDomain().weights[weight_role(method, "irse")].sha256


def install(method: str, out: Path) -> dict[str, Any]:
    """Export the run's fp16 encoder and register it in the lorelei weights (card + sha256)."""
    from .export import register_weights

    exported = export_encoder(method, out, ToonifyTrainingDomain(), install=False)
    st = load_checkpoint(out / "state.pt")
    assert all(k in st for k in STATE_KEYS)
    card = {"method": method, "recipe": "Toonify-way: peeps training images -> encoder -> lorelei generator, "
            f"L2 + LPIPS between the peeps input and the lorelei output, no ID loss; overrides {TOONIFY_RECIPE}",
            "init": f"the installed peeps {method} ({_peeps_sha(method)[:12]}), every progressive stage on",
            "steps": st["step"], "wall time (s)": round(st["wall_seconds"], 1),
            "seed": st.get("seed", 0), "validation (last)": json.dumps(st["val_history"][-1] if st["val_history"]
                                                                         else {}),
            "resume": f"python -m zoo_lorelei.encoder_training {method} RUN_DIR MINUTES STEPS (RUN_DIR/state.pt "
                      "resumes; the run directory is not shipped)"}
    role = weight_role(method, "irse")
    entry = register_weights(role, Path(exported["path"]), card=card,
                             command=f"python -m zoo_lorelei.encoder_training {method} OUT 20 && "
                                     f"python -m zoo_lorelei.encoder_training --install {method} OUT",
                             filename=f"encoder_{role.split('/', 1)[1]}.safetensors")
    return {"weights": entry, **exported}


if __name__ == "__main__":
    import os
    import sys

    torch.set_num_threads(int(os.environ.get("ZOO_THREADS", "1")))
    args = sys.argv[1:]
    if args and args[0] == "--install":
        print(json.dumps(install(args[1], Path(args[2])), indent=2, default=str))
    else:
        res = run(args[0], Path(args[1]), float(args[2]) if len(args) > 2 else None,
                  int(args[3]) if len(args) > 3 else None)
        print(json.dumps(res, indent=2, default=str))
