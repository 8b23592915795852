"""InterFaceGAN directions for peeps: linear boundaries in W fitted to the attribute scorers' labels of samples.

Binary attributes (smile, glasses, facial_hair): logistic regression on w -> unit normal n. Pose (rotation):
least-squares regression on w -> unit direction. Each direction is stored scaled by the std of <w, n> over the
samples, so `step = 1` moves one standard deviation along the normal and the bench's -3..3 sweep spans the
attribute's natural range. Stored as safetensors {name: [w_dim]}.
"""

from __future__ import annotations

import time

import torch
from safetensors.torch import save_file

from .export import register_weights
from .models import ATTRIBUTES

N_SAMPLES = 6000
SEED = 11


@torch.no_grad()
def _sample_scores(domain, n: int, seed: int):
    loaded = domain.generator()
    g = loaded.generator
    scorer = domain.attribute_model()
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(seed))
    ws, scores = [], []
    for i in range(0, n, 250):
        w = g.style(z[i : i + 250])
        img, _ = g([w], input_is_latent=True, randomize_noise=False)
        ws.append(w)
        scores.append(scorer(img.clamp(-1, 1)))
    keys = scores[0].keys()
    return torch.cat(ws), {k: torch.cat([s[k] for s in scores]) for k in keys}


def fit_logistic(w: torch.Tensor, y: torch.Tensor, l2: float = 1e-3, iters: int = 200) -> tuple[torch.Tensor, float]:
    """(unit normal, training accuracy) of an L2-regularised logistic-regression boundary on centred w; y in {0,1}."""
    x = w - w.mean(0)
    coef = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([coef, bias], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ coef + bias, y) + l2 * coef.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = float(((x @ coef + bias > 0).float() == y).float().mean())
    return coef.detach() / coef.detach().norm(), acc


def fit_linear(w: torch.Tensor, y: torch.Tensor, l2: float = 1e-2) -> torch.Tensor:
    x = w - w.mean(0)
    a = x.t() @ x + l2 * torch.eye(x.shape[1])
    coef = torch.linalg.solve(a, x.t() @ (y - y.mean()))
    return coef / coef.norm()


def run_directions() -> dict:
    from .domain import WEIGHTS_DIR, PeepsDomain

    t0 = time.time()
    domain = PeepsDomain()
    w, scores = _sample_scores(domain, N_SAMPLES, SEED)
    dirs: dict[str, torch.Tensor] = {}
    report: dict[str, dict] = {}
    for name in ATTRIBUTES:
        y = (scores[name] > 0.5).float()
        n, acc = fit_logistic(w, y)
        proj = (w - w.mean(0)) @ n
        dirs[name] = n * proj.std()
        report[name] = {"positive_rate": round(float(y.mean()), 3), "boundary_accuracy": round(acc, 3),
                        "step_unit_w_norm": round(float(proj.std()), 4)}
    n = fit_linear(w, scores["rotation"])
    proj = (w - w.mean(0)) @ n
    dirs["rotation"] = n * proj.std()
    corr = torch.corrcoef(torch.stack([proj, scores["rotation"]]))[0, 1]
    report["rotation"] = {"correlation": round(float(corr), 3), "step_unit_w_norm": round(float(proj.std()), 4)}
    path = WEIGHTS_DIR / "directions.safetensors"
    save_file({k: v.contiguous() for k, v in dirs.items()}, str(path))
    card = {"method": "InterFaceGAN (Shen et al. 2020): linear boundaries in W fitted to the attribute scorers",
            "samples": N_SAMPLES, "seed": SEED, "wall time (s)": round(time.time() - t0, 1),
            "fit": {k: str(v) for k, v in report.items()},
            "units": "each direction = unit normal x std of <w, n>; step 1 = one standard deviation"}
    entry = register_weights("directions", path, command="zoo train directions --domain peeps", card=card)
    return {"directions": report, "weights": entry}
