"""Ranger = RAdam + Lookahead + gradient centralisation (lessw2020 Ranger 20.9.4, vendored by pSp / e4e / ReStyle /
HyperStyle as `training/ranger.py`), compact re-implementation with the same update and defaults:

    lr 1e-3 (the coaches pass 1e-4), betas (0.95, 0.999), eps 1e-5, weight_decay 0, Lookahead k = 6, alpha = 0.5,
    RAdam rectification threshold N_sma > 5, gradient centralisation on every tensor with more than one dimension
    (gc_conv_only=False): g <- g - mean(g over all but dim 0).

Per parameter: m, v = Adam moments of the centralised gradient; rectified step size r_t / (1 - beta1^t) applied to
m / (sqrt(v) + eps) once N_sma > 5, else the un-rectified momentum step m / (1 - beta1^t); every k steps the
weights jump to slow + alpha * (fast - slow) and the slow copy follows. State is plain tensors / ints, so
`state_dict()` round-trips through `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim import Optimizer


class Ranger(Optimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3, alpha: float = 0.5, k: int = 6,
                 n_sma_threshold: float = 5.0, betas: tuple[float, float] = (0.95, 0.999), eps: float = 1e-5,
                 weight_decay: float = 0.0, use_gc: bool = True, gc_conv_only: bool = False) -> None:
        if not 0.0 <= alpha <= 1.0 or k < 1 or lr <= 0 or eps <= 0:
            raise ValueError(f"invalid Ranger settings: lr={lr}, alpha={alpha}, k={k}, eps={eps}")
        defaults = dict(lr=lr, alpha=alpha, k=k, betas=tuple(betas), n_sma_threshold=n_sma_threshold, eps=eps,
                        weight_decay=weight_decay, use_gc=use_gc, gc_min_dim=3 if gc_conv_only else 1)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch API
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            n_sma_max = 2 / (1 - beta2) - 1
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                if grad.is_sparse:
                    raise RuntimeError("Ranger does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    state["slow_buffer"] = p.detach().clone()
                if group["use_gc"] and grad.dim() > group["gc_min_dim"]:
                    grad = grad - grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                beta2_t = beta2**t
                n_sma = n_sma_max - 2 * t * beta2_t / (1 - beta2_t)
                rectified = n_sma > group["n_sma_threshold"]
                if rectified:
                    step_size = math.sqrt((1 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma
                                          * n_sma_max / (n_sma_max - 2)) / (1 - beta1**t)
                else:
                    step_size = 1.0 / (1 - beta1**t)
                p_fp32 = p.float()
                if group["weight_decay"] != 0:
                    p_fp32.add_(p_fp32, alpha=-group["weight_decay"] * group["lr"])
                if rectified:
                    p_fp32.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size * group["lr"])
                else:
                    p_fp32.add_(exp_avg, alpha=-step_size * group["lr"])
                p.copy_(p_fp32)
                if t % group["k"] == 0:  # Lookahead
                    slow = state["slow_buffer"]
                    slow.add_(p - slow, alpha=group["alpha"])
                    p.copy_(slow)
        return loss
