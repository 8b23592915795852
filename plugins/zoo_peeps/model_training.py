"""Training and evaluation of the peeps identity embedder and attribute scorers (`zoo train identity|attributes
--domain peeps`). Both train on the train split at 32x32 and are evaluated on the held-out test identities."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .models import ATTRIBUTES, POSE, POSE_SCALE, AttributeNet, CosFaceHead, IdentityEmbedder

IDENTITY_COLUMNS = ("head", "hair_color", "skin_color", "clothing_color")


@dataclass
class SmallNetConfig:
    epochs: int = 8
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    seed: int = 0
    degrade: float = 0.5  # probability of blur/noise augmentation (robustness to GAN reconstructions)


def identity_keys(labels: pd.DataFrame, columns: tuple[str, ...] = IDENTITY_COLUMNS) -> np.ndarray:
    """One string per image naming its identity (the identity-bearing options, not the seed: seeds can collide);
    `columns`: the identity-bearing label columns (another domain passes its own)."""
    return labels[list(columns)].astype(str).agg("|".join, axis=1).to_numpy()


def degrade(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Random mild blur and noise on part of the batch, [B, 3, H, W] in [-1, 1]."""
    b = x.shape[0]
    pick = torch.rand(b, generator=gen) < p
    if not pick.any():
        return x
    y = x.clone()
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    blurred = F.conv2d(F.pad(x[pick], (1, 1, 1, 1), mode="replicate"), k, groups=3)
    noise = torch.randn(blurred.shape, generator=gen) * (torch.rand(blurred.shape[0], 1, 1, 1, generator=gen) * 0.08)
    y[pick] = (blurred + noise).clamp(-1, 1)
    return y


def _batches(n: int, batch: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n - batch + 1, batch):
        yield perm[i : i + batch]


def train_identity(images: torch.Tensor, labels: pd.DataFrame, cfg: SmallNetConfig,
                   key_columns: tuple[str, ...] = IDENTITY_COLUMNS) -> tuple[IdentityEmbedder, dict]:
    """Train with a CosFace head over identities (`key_columns` of `labels`); images [N, 3, 32, 32] in [-1, 1]."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    keys = identity_keys(labels, key_columns)
    classes, y = np.unique(keys, return_inverse=True)
    y = torch.from_numpy(y).long()
    model, head = IdentityEmbedder(), CosFaceHead(128, len(classes))
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * (len(y) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    t0 = time.time()
    bar = tqdm(total=steps, desc="train identity", unit="step")
    model.train()
    for _ in range(cfg.epochs):
        for idx in _batches(len(y), cfg.batch, gen):
            x = degrade(images[idx], cfg.degrade, gen)
            loss = F.cross_entropy(head(model(x), y[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return model, {"steps": steps, "wall_seconds": round(time.time() - t0, 1), "n_identities": int(len(classes)),
                   "n_images": int(len(y)), "config": asdict(cfg)}


@torch.no_grad()
def embed(model: torch.nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(images[i : i + batch]) for i in range(0, len(images), batch)])


@torch.no_grad()
def verification(model: IdentityEmbedder, images: torch.Tensor, labels: pd.DataFrame, seed: int = 0,
                 threshold: float | None = None, key_columns: tuple[str, ...] = IDENTITY_COLUMNS) -> dict:
    """Verification on all same-identity pairs and as many random different-identity pairs.

    Returns accuracy at `threshold` (or at the best threshold when None), ROC-AUC and the threshold."""
    keys = identity_keys(labels, key_columns)
    emb = embed(model, images)
    sims = emb @ emb.t()
    n = len(keys)
    same = keys[:, None] == keys[None, :]
    iu = np.triu_indices(n, 1)
    pos = sims.numpy()[iu][same[iu]]
    rng = np.random.default_rng(seed)
    neg_all = sims.numpy()[iu][~same[iu]]
    neg = rng.choice(neg_all, size=min(len(pos), len(neg_all)), replace=False)
    scores = np.concatenate([pos, neg])
    truth = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores)
    tpr = np.cumsum(truth[order]) / truth.sum()
    fpr = np.cumsum(1 - truth[order]) / (1 - truth).sum()
    auc = float(np.trapezoid(tpr, fpr))
    if threshold is None:
        cands = np.unique(scores)
        accs = [((scores >= t) == truth).mean() for t in cands[:: max(1, len(cands) // 2000)]]
        threshold = float(cands[:: max(1, len(cands) // 2000)][int(np.argmax(accs))])
    acc = float(((scores >= threshold) == truth).mean())
    return {"accuracy": round(acc, 4), "roc_auc": round(auc, 4), "threshold": round(threshold, 4),
            "n_pos": int(len(pos)), "n_neg": int(len(neg)), "mean_pos_sim": round(float(pos.mean()), 4),
            "mean_neg_sim": round(float(neg.mean()), 4)}


def attribute_targets(labels: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """(binary [N, 3] float, normalised pose [N, 3])."""
    binary = torch.tensor(labels[list(ATTRIBUTES)].to_numpy(dtype=np.float32))
    pose = torch.tensor(labels[list(POSE)].to_numpy(dtype=np.float32)) / torch.tensor(POSE_SCALE)
    return binary, pose


def train_attributes(images: torch.Tensor, labels: pd.DataFrame, cfg: SmallNetConfig) -> tuple[AttributeNet, dict]:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    binary, pose = attribute_targets(labels)
    model = AttributeNet()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * (len(binary) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    t0 = time.time()
    bar = tqdm(total=steps, desc="train attributes", unit="step")
    model.train()
    for _ in range(cfg.epochs):
        for idx in _batches(len(binary), cfg.batch, gen):
            x = degrade(images[idx], cfg.degrade, gen)
            logits, p = model.raw(x)
            loss = F.binary_cross_entropy_with_logits(logits, binary[idx]) + F.smooth_l1_loss(p, pose[idx], beta=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return model, {"steps": steps, "wall_seconds": round(time.time() - t0, 1), "n_images": int(len(binary)),
                   "config": asdict(cfg)}


@torch.no_grad()
def evaluate_attributes(model: AttributeNet, images: torch.Tensor, labels: pd.DataFrame) -> dict:
    """Held-out accuracy of each binary head and mean absolute error of the pose heads."""
    model.eval()
    outs = [model(images[i : i + 256]) for i in range(0, len(images), 256)]
    res: dict[str, float] = {}
    for name in ATTRIBUTES:
        p = torch.cat([o[name] for o in outs]).numpy()
        res[f"{name}_accuracy"] = round(float(((p > 0.5) == labels[name].to_numpy().astype(bool)).mean()), 4)
    for name in POSE:
        v = torch.cat([o[name] for o in outs]).numpy()
        res[f"{name}_mae"] = round(float(np.abs(v - labels[name].to_numpy()).mean()), 4)
    return res
