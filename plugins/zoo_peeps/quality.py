"""Quality evidence for the peeps generator: sample grid, truncation sweep, KID on identity features, diversity."""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.kid import kid
from zoo.stylegan2 import Generator
from zoo.training.stylegan2_gan import save_grid


@torch.no_grad()
def sample(g: Generator, n: int, seed: int, truncation: float = 1.0, latent_avg: torch.Tensor | None = None,
           batch: int = 256) -> torch.Tensor:
    """n images [n, 3, H, W] (clamped to [-1, 1]) from z ~ N(0, I) drawn with `seed`; fixed noise buffers."""
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(seed))
    out = []
    for i in range(0, n, batch):
        kw = {} if truncation >= 1 else {"truncation": truncation, "truncation_latent": latent_avg.view(1, -1)}
        img, _ = g([z[i : i + batch].to(g.device)], randomize_noise=False, **kw)
        out.append(img.clamp(-1, 1).cpu())
    return torch.cat(out)


@torch.no_grad()
def truncation_sweep(g: Generator, latent_avg: torch.Tensor, path: Path, psis=(1.0, 0.8, 0.6, 0.4, 0.2, 0.0),
                     n: int = 8, seed: int = 7) -> None:
    """Rows = samples, columns = truncation psi (left: 1.0 ... right: 0.0 = the average face)."""
    cols = [sample(g, n, seed, psi, latent_avg) for psi in psis]
    grid = torch.stack(cols, 1).reshape(n * len(psis), *cols[0].shape[1:])
    save_grid(grid, path, nrow=len(psis))


@torch.no_grad()
def embed(model: torch.nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


@torch.no_grad()
def quality_report(g: Generator, embedder: torch.nn.Module, renders: torch.Tensor, reference: torch.Tensor,
                   n_samples: int = 2000, seed: int = 0) -> dict:
    """KID(renders, samples) and the render-vs-render floor KID(renders, reference) on identity features (x1e3),
    plus diversity: mean pairwise cosine similarity of sample embeddings vs renders (1.0 = collapse)."""
    fake = sample(g, n_samples, seed)
    f_real, f_fake, f_ref = embed(embedder, renders), embed(embedder, fake), embed(embedder, reference)
    k, k_std = kid(f_real, f_fake)
    k0, k0_std = kid(f_real, f_ref)

    def mean_pair_sim(f: torch.Tensor) -> float:
        s = f[:500] @ f[:500].t()
        m = s.shape[0]
        return float((s.sum() - s.diagonal().sum()) / (m * (m - 1)))

    return {"kid_x1e3": round(k * 1e3, 3), "kid_std_x1e3": round(k_std * 1e3, 3),
            "kid_floor_renders_vs_renders_x1e3": round(k0 * 1e3, 3),
            "mean_pairwise_cos_samples": round(mean_pair_sim(f_fake), 4),
            "mean_pairwise_cos_renders": round(mean_pair_sim(f_real), 4),
            "pixel_std_across_samples": round(float(fake.std(0).mean()), 4),
            "pixel_std_across_renders": round(float(renders.std(0).mean()), 4),
            "n_samples": n_samples, "n_renders": int(len(renders)), "sample_seed": seed}
