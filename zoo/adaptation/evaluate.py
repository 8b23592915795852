"""Evaluation of cross-domain results without pixel ground truth (issue 18 item 5).

The two embedded domains render the same identity/attribute options for the same image index, so for each input
(a source-domain image i) the target domain's own render of image i is a reference that shares its options:

* attribute agreement: the target domain's attribute scorers on the transferred images, thresholded at 0.5, against
  the exact labels of the target render of the same options (attributes both styles show: smile, glasses,
  facial_hair); reported per attribute with the scorers' accuracy on the real target renders as the ceiling;
* cross-style identity: the target domain's identity embedder; each transferred image is matched against the gallery
  of the target renders of all evaluated indices — top-1 = its nearest gallery image shows its identity; also the
  mean cosine similarity to its own render and to the renders of other identities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..domain import Domain

SHARED_ATTRIBUTES: tuple[str, ...] = ("smile", "glasses", "facial_hair")


@torch.no_grad()
def _batched(fn, x: torch.Tensor, batch: int = 256) -> list:
    return [fn(x[i : i + batch]) for i in range(0, len(x), batch)]


@torch.no_grad()
def attribute_agreement(images: torch.Tensor, labels: pd.DataFrame, domain: Domain,
                        attributes: Sequence[str] = SHARED_ATTRIBUTES, device: str = "cpu") -> dict[str, float]:
    """Accuracy of the domain's scorers (P > 0.5) on `images` [N, 3, H, W] in [-1, 1] against the 0/1 `labels`
    columns; plus their mean ("mean")."""
    scorers = domain.attribute_scorers(device)
    out: dict[str, float] = {}
    for a in attributes:
        p = torch.cat(_batched(scorers[a], images.to(device))).cpu().numpy()
        out[a] = round(float(((p > 0.5) == labels[a].to_numpy().astype(bool)).mean()), 4)
    out["mean"] = round(float(np.mean([out[a] for a in attributes])), 4)
    return out


@torch.no_grad()
def identity_check(images: torch.Tensor, gallery: torch.Tensor, identity_ids: Sequence[int], domain: Domain,
                   device: str = "cpu") -> dict[str, float]:
    """Cross-style identity: `images` [N, ...] (transferred) vs `gallery` [N, ...] (target renders of the same
    indices), `identity_ids` [N] the identity of index i. Returns top-1 retrieval accuracy (nearest gallery image has
    the same identity), mean cosine to the own render and to renders of other identities."""
    model = domain.identity_model(device)
    a = torch.cat(_batched(model, images.to(device))).cpu()
    g = torch.cat(_batched(model, gallery.to(device))).cpu()
    sim = a @ g.t()
    ids = torch.as_tensor(np.asarray(identity_ids))
    same = ids[:, None] == ids[None, :]
    top1 = (ids[sim.argmax(1)] == ids).float().mean()
    return {"id_top1": round(float(top1), 4), "id_sim_own": round(float(sim.diagonal().mean()), 4),
            "id_sim_others": round(float(sim[~same].mean()), 4), "n": int(len(ids))}


def evaluate(images: torch.Tensor, target_renders: torch.Tensor, labels: pd.DataFrame, domain: Domain,
             device: str = "cpu") -> dict[str, float]:
    """Both measures for transferred `images` against the target renders / labels of the same indices."""
    return {**{f"attr_{k}": v for k, v in attribute_agreement(images, labels, domain, device=device).items()},
            **identity_check(images, target_renders, labels["identity_id"].tolist(), domain, device)}
