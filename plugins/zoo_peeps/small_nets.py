"""Train, evaluate and export the peeps identity embedder and attribute scorers (one command each)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .export import register_weights, save_small_net
from .model_training import (SmallNetConfig, evaluate_attributes, train_attributes, train_identity,
                             verification)

IDENTITY_CFG = SmallNetConfig(epochs=5, batch=128, lr=3e-3, seed=0)
ATTRIBUTE_CFG = SmallNetConfig(epochs=4, batch=128, lr=3e-3, seed=0)
VAL_IDS = 300  # last train identities held out to pick the verification threshold


def run_identity(out: Path) -> dict:
    """`zoo train identity --domain peeps`: train on train identities, threshold on held-out train identities,
    report verification accuracy on the test identities."""
    from .dataset import load_split

    train = load_split("train", 32)
    n_var = 8
    cut = (3000 - VAL_IDS) * n_var
    x = train.to_tensor()
    model, info = train_identity(x[:cut], train.labels.iloc[:cut].reset_index(drop=True), IDENTITY_CFG)
    val = verification(model, x[cut:], train.labels.iloc[cut:].reset_index(drop=True))
    test = load_split("test", 32)
    res = verification(model, test.to_tensor(), test.labels, threshold=val["threshold"])
    out.mkdir(parents=True, exist_ok=True)
    path = save_small_net(model, "identity.safetensors")
    metrics = {"validation (held-out train identities, best threshold)": val,
               "test verification (held-out test identities, validation threshold)": res}
    card = {"model": "IdentityEmbedder (4 conv stages, width 24, 128-d L2-normalised), CosFace s=30 m=0.35",
            "data": f"peeps train split, identities 0..{3000 - VAL_IDS - 1} x 8 variations at 32x32",
            "steps": info["steps"], "wall time (s)": info["wall_seconds"], "seed": IDENTITY_CFG.seed,
            "config": info["config"], "metrics": {k: json.dumps(v) for k, v in metrics.items()}}
    entry = register_weights("identity", path, command="zoo train identity --domain peeps", card=card)
    (out / "identity_metrics.json").write_text(json.dumps({**metrics, **info, "weights": entry}, indent=2))
    return {**metrics, "weights": entry}


def run_attributes(out: Path) -> dict:
    """`zoo train attributes --domain peeps`: smile / glasses / facial-hair classifiers and pose regressors."""
    from .dataset import load_split

    train = load_split("train", 32)
    model, info = train_attributes(train.to_tensor(), train.labels, ATTRIBUTE_CFG)
    test = load_split("test", 32)
    res = evaluate_attributes(model, test.to_tensor(), test.labels)
    out.mkdir(parents=True, exist_ok=True)
    path = save_small_net(model, "attributes.safetensors")
    card = {"model": "AttributeNet (4 conv stages, width 24): 3 binary heads + 3 pose regressors",
            "data": "peeps train split (3000 identities x 8 variations) at 32x32", "steps": info["steps"],
            "wall time (s)": info["wall_seconds"], "seed": ATTRIBUTE_CFG.seed, "config": info["config"],
            "metrics (held-out test identities)": res}
    entry = register_weights("attributes", path, command="zoo train attributes --domain peeps", card=card)
    (out / "attribute_metrics.json").write_text(json.dumps({"test": res, **info, "weights": entry}, indent=2))
    return {"test": res, "weights": entry}


if __name__ == "__main__":  # python -m zoo_peeps.small_nets identity|attributes OUT
    import sys

    torch.set_num_threads(1)
    fn = {"identity": run_identity, "attributes": run_attributes}[sys.argv[1]]
    print(json.dumps(fn(Path(sys.argv[2])), indent=2, default=str))
