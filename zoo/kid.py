"""Kernel Inception Distance (Binkowski et al. 2018) on arbitrary features: unbiased MMD^2 with the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets."""

from __future__ import annotations

import numpy as np
import torch


def kid(real: torch.Tensor, fake: torch.Tensor, n_subsets: int = 50, subset_size: int = 500, seed: int = 0
        ) -> tuple[float, float]:
    """KID between feature sets real [N, D] and fake [M, D]; returns (mean, std) over subsets."""
    real, fake = real.double(), fake.double()
    d = real.shape[1]
    m = min(subset_size, real.shape[0], fake.shape[0])
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_subsets):
        x = real[torch.from_numpy(rng.choice(real.shape[0], m, replace=False))]
        y = fake[torch.from_numpy(rng.choice(fake.shape[0], m, replace=False))]
        kxx = (x @ x.t() / d + 1) ** 3
        kyy = (y @ y.t() / d + 1) ** 3
        kxy = (x @ y.t() / d + 1) ** 3
        mmd = ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
               - 2 * kxy.mean())
        vals.append(float(mmd))
    return float(np.mean(vals)), float(np.std(vals))
