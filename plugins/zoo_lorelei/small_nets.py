"""Train, evaluate and install the lorelei identity embedder and attribute scorers with the peeps recipe and
architectures (`zoo_peeps.model_training`, `zoo_peeps.models`): `zoo train identity|attributes --domain lorelei`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from zoo_peeps.model_training import evaluate_attributes, train_attributes, train_identity, verification
from zoo_peeps.small_nets import ATTRIBUTE_CFG, IDENTITY_CFG, VAL_IDS

from .export import register_weights, save_small_net

# Lorelei shows hair style and colour, skin colour and its own facial features; peeps' clothing colour is not drawn.
IDENTITY_COLUMNS = ("hair", "hair_color", "skin_color", "head_shape", "eyes", "eyebrows", "nose")
LORELEI_IDENTITY_CFG = replace(IDENTITY_CFG, epochs=3)  # CPU budget: 3 of peeps' 5 epochs
LORELEI_ATTRIBUTE_CFG = replace(ATTRIBUTE_CFG, epochs=2)  # 2 of peeps' 4


def run_identity(out: Path) -> dict:
    """Train on train identities 0..2699, pick the threshold on 2700..2999, report verification on the test ids."""
    from .dataset import load_split

    train = load_split("train", 32)
    cut = (3000 - VAL_IDS) * 8
    x = train.to_tensor()
    labels = train.labels
    model, info = train_identity(x[:cut], labels.iloc[:cut].reset_index(drop=True), LORELEI_IDENTITY_CFG,
                                 key_columns=IDENTITY_COLUMNS)
    val = verification(model, x[cut:], labels.iloc[cut:].reset_index(drop=True), key_columns=IDENTITY_COLUMNS)
    test = load_split("test", 32)
    res = verification(model, test.to_tensor(), test.labels, threshold=val["threshold"], key_columns=IDENTITY_COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    path = save_small_net(model, "identity.safetensors")
    metrics = {"validation (held-out train identities, best threshold)": val,
               "test verification (held-out test identities, validation threshold)": res}
    card = {"model": "IdentityEmbedder (zoo_peeps.models; 4 conv stages, width 24, 128-d), CosFace s=30 m=0.35",
            "identity": " + ".join(IDENTITY_COLUMNS),
            "data": f"lorelei train split, identities 0..{3000 - VAL_IDS - 1} x 8 variations at 32x32",
            "steps": info["steps"], "wall time (s)": info["wall_seconds"], "seed": LORELEI_IDENTITY_CFG.seed,
            "config": info["config"], "metrics": {k: json.dumps(v) for k, v in metrics.items()}}
    entry = register_weights("identity", path, command="zoo train identity --domain lorelei", card=card)
    (out / "identity_metrics.json").write_text(json.dumps({**metrics, **info, "weights": entry}, indent=2))
    return {**metrics, "weights": entry}


def run_attributes(out: Path) -> dict:
    """Smile / glasses (clear lenses) / facial-hair classifiers and pose regressors on lorelei renders."""
    from .dataset import load_split

    train = load_split("train", 32)
    model, info = train_attributes(train.to_tensor(), train.labels, LORELEI_ATTRIBUTE_CFG)
    test = load_split("test", 32)
    res = evaluate_attributes(model, test.to_tensor(), test.labels)
    out.mkdir(parents=True, exist_ok=True)
    path = save_small_net(model, "attributes.safetensors")
    card = {"model": "AttributeNet (zoo_peeps.models; 4 conv stages, width 24): 3 binary heads + 3 pose regressors",
            "labels": "smile = a DiceBear happy* mouth; glasses = clear-lens variants 01/03/04/05; facial_hair = any "
                      "beard; pose as peeps",
            "data": "lorelei train split (3000 identities x 8 variations) at 32x32", "steps": info["steps"],
            "wall time (s)": info["wall_seconds"], "seed": LORELEI_ATTRIBUTE_CFG.seed, "config": info["config"],
            "metrics (held-out test identities)": res}
    entry = register_weights("attributes", path, command="zoo train attributes --domain lorelei", card=card)
    (out / "attribute_metrics.json").write_text(json.dumps({"test": res, **info, "weights": entry}, indent=2))
    return {"test": res, "weights": entry}


if __name__ == "__main__":  # python -m zoo_lorelei.small_nets identity|attributes OUT
    import sys

    torch.set_num_threads(1)
    fn = {"identity": run_identity, "attributes": run_attributes}[sys.argv[1]]
    print(json.dumps(fn(Path(sys.argv[2])), indent=2, default=str))
