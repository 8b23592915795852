"""InterFaceGAN directions for peeps: linear boundaries in W fitted to the attribute scorers' labels of samples.

Binary attributes (smile, glasses, facial_hair): logistic regression on w -> unit normal n. Pose (rotation):
least-squares regression on w -> unit direction. The boundaries are fitted on the first `N_FIT` samples; accuracy
(binary) and correlation (pose) are reported on the `N_SAMPLES - N_FIT` held-out samples. Each direction is stored
scaled by the std of <w, n> over the samples, so `step = 1` moves one standard deviation along the normal and the
bench's -3..3 sweep spans the attribute's natural range. Stored as safetensors {name: [w_dim]}, the fit report in
its metadata ("fit", JSON).
"""

from __future__ import annotations

import json
import time

import torch
from safetensors.torch import save_file

from .export import register_weights
from .models import ATTRIBUTES

N_SAMPLES = 6000
N_FIT = 5000
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


def _best_threshold(proj: torch.Tensor, y: torch.Tensor) -> float:
    """Threshold on the projection that maximises accuracy on (proj, y)."""
    order = torch.argsort(proj)
    p, t = proj[order], y[order]
    # predicting positive above index i: correct = negatives up to i + positives after i
    neg_cum = torch.cumsum(1 - t, 0)
    pos_after = t.sum() - torch.cumsum(t, 0)
    i = int(torch.argmax(neg_cum + pos_after))
    return float(p[i])


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
    fit, held = slice(0, N_FIT), slice(N_FIT, None)
    centre = w[fit].mean(0)
    dirs: dict[str, torch.Tensor] = {}
    report: dict[str, dict] = {}
    for name in ATTRIBUTES:
        y = (scores[name] > 0.5).float()
        n, acc = fit_logistic(w[fit], y[fit])
        proj = (w - centre) @ n
        # held-out accuracy: the best threshold of the fitted normal on the fit part, applied to the held-out part
        thr = _best_threshold(proj[fit], y[fit])
        held_acc = float(((proj[held] > thr).float() == y[held]).float().mean())
        dirs[name] = n * proj[fit].std()
        report[name] = {"positive_rate": round(float(y.mean()), 3), "fit_accuracy": round(acc, 3),
                        "heldout_accuracy": round(held_acc, 3), "step_unit_w_norm": round(float(proj.std()), 4)}
    n = fit_linear(w[fit], scores["rotation"][fit])
    proj = (w - centre) @ n
    dirs["rotation"] = n * proj[fit].std()
    corr = torch.corrcoef(torch.stack([proj[held], scores["rotation"][held]]))[0, 1]
    report["rotation"] = {"heldout_correlation": round(float(corr), 3),
                          "step_unit_w_norm": round(float(proj.std()), 4)}
    path = WEIGHTS_DIR / "directions.safetensors"
    save_file({k: v.contiguous() for k, v in dirs.items()}, str(path), metadata={"fit": json.dumps(report)})
    card = {"method": "InterFaceGAN (Shen et al. 2020): linear boundaries in W fitted to the attribute scorers",
            "samples": f"{N_SAMPLES} ({N_FIT} fit, {N_SAMPLES - N_FIT} held out)", "seed": SEED, "wall time (s)": round(time.time() - t0, 1),
            "fit": {k: str(v) for k, v in report.items()},
            "units": "each direction = unit normal x std of <w, n>; step 1 = one standard deviation"}
    entry = register_weights("directions", path, command="zoo train directions --domain peeps", card=card)
    return {"directions": report, "weights": entry}
