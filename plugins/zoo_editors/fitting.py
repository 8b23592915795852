"""Fitting the editors' directions from labelled latent codes: InterFaceGAN boundaries and StyleSpace channels.

* `train_boundary`: InterFaceGAN's official `utils/manipulator.py:train_boundary` recipe (Shen et al. 2020, §3 and
  the official repository, also used by stylegan3-editing with `chosen_num_or_ratio=0.02, split_ratio=0.7`): sort
  the samples by attribute score, keep the top and the bottom `ratio` of them as positives / negatives, shuffle,
  fit a linear SVM on `split` of them, report the accuracy on the rest (the validation part) and on the samples
  that were not chosen (score > 0.5 for binary attributes), return the unit normal. The official code uses
  scikit-learn's `SVC(kernel='linear')` (hinge loss, C=1); here the L2-regularised squared-hinge form (scikit-learn's
  `LinearSVC` default) is minimised with L-BFGS in torch, whose normal agrees with the hinge SVM's on separable
  data up to the margin's support set.
* `step_unit`: the std of the samples' projection on a unit direction, so step 1 = one standard deviation of the
  latent distribution along it (GANSpace's unit for its components; used for every shipped direction).
* `rank_channels`: StyleSpace's attribute-specific channel detection (Wu et al. 2021, §4.2; official `MAdvance.py`:
  `AllCheck` / `GetComponent` / `S2N`): S codes of a positive bank (the `bank` most positive samples, 1000 in the
  paper) normalised by the population mean and std, relevance = |mean| / std over the bank (signal-to-noise),
  toRGB layers removed, best first; the sign of the mean says which way increases the attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def fit_linear_svm(x: torch.Tensor, y: torch.Tensor, c: float = 1.0, iters: int = 500) -> tuple[torch.Tensor, float]:
    """Linear SVM on x [N, D] with labels y [N] in {0, 1}: minimises 0.5 |coef|^2 + c * sum(max(0, 1 - t f(x))^2),
    t = 2y - 1, f(x) = x coef + bias (L-BFGS, float64). Returns (coef [D] float32, bias). ValueError when y has one
    class only."""
    if y.min() == y.max():
        raise ValueError("fit_linear_svm needs samples of both classes")
    xd, t = x.double(), 2 * y.double() - 1
    coef = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([coef, bias], max_iter=iters, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                            tolerance_change=1e-14, history_size=20)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        margin = (1 - t * (xd @ coef + bias)).clamp_min(0)
        loss = 0.5 * coef.pow(2).sum() + c * margin.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return coef.detach().float(), float(bias.detach())


@dataclass
class Boundary:
    """A fitted boundary: unit `normal` [D], `bias` (of the SVM on centred codes), `centre` [D] (mean of all codes)
    and its report (chosen per side, validation accuracy, remaining accuracy or correlation)."""

    normal: torch.Tensor
    bias: float
    centre: torch.Tensor
    report: dict[str, float]


def train_boundary(codes: torch.Tensor, scores: torch.Tensor, *, ratio: float = 0.02, split: float = 0.7,
                   binary: bool = True, c: float = 1.0, seed: int = 0) -> Boundary:
    """InterFaceGAN's `train_boundary` on codes [N, D] with attribute scores [N] (probabilities for a binary
    attribute, any real value for a continuous one such as a pose angle).

    The top and bottom `ratio` of the samples by score are the positives / negatives (at least 2 each); `split` of
    each side (shuffled with `seed`) fit the SVM, the rest give `val_accuracy`. `remaining_accuracy` (binary) is the
    accuracy on the unchosen samples against score > 0.5; `remaining_correlation` (continuous) the correlation of
    their projection with the score. ValueError for a ratio outside (0, 0.5] or too few samples."""
    n = len(codes)
    k = int(n * ratio)
    if not 0 < ratio <= 0.5 or k < 2:
        raise ValueError(f"train_boundary: ratio {ratio} of {n} samples leaves {k} per side; need >= 2")
    order = torch.argsort(scores)
    gen = torch.Generator().manual_seed(seed)
    pos = order[-k:][torch.randperm(k, generator=gen)]
    neg = order[:k][torch.randperm(k, generator=gen)]
    n_fit = max(1, min(k - 1, int(k * split)))
    centre = codes.mean(0)
    x = codes - centre
    fit_idx = torch.cat([pos[:n_fit], neg[:n_fit]])
    val_idx = torch.cat([pos[n_fit:], neg[n_fit:]])
    y = torch.cat([torch.ones(k), torch.zeros(k)])
    y_fit = torch.cat([torch.ones(n_fit), torch.zeros(n_fit)])
    y_val = torch.cat([torch.ones(k - n_fit), torch.zeros(k - n_fit)])
    coef, bias = fit_linear_svm(x[fit_idx], y_fit, c=c)
    val = float((((x[val_idx] @ coef + bias) > 0).float() == y_val).float().mean())
    normal = coef / coef.norm().clamp_min(1e-12)
    report = {"chosen_per_side": k, "fit_samples": 2 * n_fit, "val_accuracy": round(val, 4),
              "fit_accuracy": round(float((((x[torch.cat([pos, neg])] @ coef + bias) > 0).float() == y).float()
                                          .mean()), 4)}
    rest = order[k:-k]
    if len(rest) > 1:
        if binary:
            pred = (x[rest] @ coef + bias) > 0
            report["remaining_accuracy"] = round(float((pred == (scores[rest] > 0.5)).float().mean()), 4)
        else:
            corr = torch.corrcoef(torch.stack([x[rest] @ normal, scores[rest].float()]))[0, 1]
            report["remaining_correlation"] = round(float(corr), 4)
    return Boundary(normal, bias, centre, report)


def step_unit(codes: torch.Tensor, normal: torch.Tensor) -> float:
    """Std of the projection of codes [N, D] on the unit direction `normal` [D] (the length of one step)."""
    return float(((codes - codes.mean(0)) @ normal).std())


def rank_channels(codes: list[torch.Tensor], scores: torch.Tensor, *, bank: int = 1000,
                  skip: set[int] | frozenset[int] = frozenset(), top: int = 20) -> list[tuple[int, int, float, float]]:
    """StyleSpace's classifier-based channel detection (official `MAdvance.S2N`).

    codes: per generator slot the S codes [N, C_slot] of N samples; scores [N]: the attribute score of each sample
    (higher = more of the attribute). The positive bank = the `bank` highest-scoring samples; each channel's code is
    normalised by the mean / std over all N samples; relevance = |mean| / std of the normalised code over the bank.
    Slots in `skip` (toRGB layers in the paper) are left out. Returns the `top` (slot, channel, relevance, mean)
    best first; the sign of `mean` is the direction that increases the attribute."""
    if bank < 2 or bank > len(scores):
        raise ValueError(f"rank_channels: positive bank {bank} must be within 2..{len(scores)}")
    idx = torch.argsort(scores, descending=True)[:bank]
    rows: list[tuple[int, int, float, float]] = []
    for k, s in enumerate(codes):
        if k in skip:
            continue
        s = s.double()
        z = (s[idx] - s.mean(0)) / s.std(0).clamp_min(1e-8)
        mu, sd = z.mean(0), z.std(0).clamp_min(1e-8)
        rel = mu.abs() / sd
        rows += [(k, c, float(rel[c]), float(mu[c])) for c in range(s.shape[1])]
    return sorted(rows, key=lambda r: -r[2])[:top]
