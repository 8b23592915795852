"""What the encoders need from a generator, for StyleGAN2 (`zoo.stylegan2`) and StyleGAN3 (`zoo.stylegan3`) alike.

Both generators share one interface (`G([codes], input_is_latent=True, randomize_noise=...)`, `n_latent`,
`style_dim`, `get_latent`); the differences the encoders care about live here:

* family: a StyleGAN3 generator has a Fourier-feature input layer (`synthesis.input`) and `n_latent` = num_ws = 16
  codes for every official model, ws[0] driving that input layer (StyleGAN2: 2*log2(size) - 2 codes);
* aligned rendering: stylegan3-editing renders every encoder output and feedback image with the *identity* user
  transform (`psp3.py` / `e4e3.py`: `synthesis.input.transform = identity`), whatever the generator's
  `synthesis.input.transform` buffer holds; the unaligned frame is a second render with the image's transform
  (`Inversion.with_transform`). StyleGAN3 has no noise inputs, so `randomize_noise` has no effect there;
* latent sampling: z has `z_dim` entries (StyleGAN2: style_dim).
"""

from __future__ import annotations

from typing import Any

import torch

STYLEGAN2 = "stylegan2"
STYLEGAN3 = "stylegan3"
FAMILIES = (STYLEGAN2, STYLEGAN3)


def generator_family(generator: Any) -> str:
    """'stylegan3' for a generator with a Fourier-feature input layer (`synthesis.input`), else 'stylegan2'."""
    return STYLEGAN3 if hasattr(getattr(generator, "synthesis", None), "input") else STYLEGAN2


def z_dim(generator: Any) -> int:
    """Length of the mapping network's input z (StyleGAN3 `z_dim`; StyleGAN2: style_dim)."""
    return int(getattr(generator, "z_dim", generator.style_dim))


def render_aligned(generator: Any, codes: torch.Tensor, randomize_noise: bool = False) -> torch.Tensor:
    """codes [B, n_latent, style_dim] -> image [B, 3, size, size] (raw, about [-1, 1]) in the aligned frame.

    StyleGAN3: rendered with the identity user transform (stylegan3-editing's encoders); randomize_noise is
    ignored (no noise inputs). StyleGAN2: `randomize_noise` as given (True in training forwards, False at inference).
    """
    if generator_family(generator) == STYLEGAN3:
        identity = torch.eye(3, device=codes.device, dtype=torch.float32)
        image, _ = generator([codes], input_is_latent=True, transform=identity)
        return image
    image, _ = generator([codes], input_is_latent=True, randomize_noise=randomize_noise)
    return image


def sample_w(generator: Any, n: int, device: torch.device | str, truncation: float = 1.0,
             w_avg: torch.Tensor | None = None) -> torch.Tensor:
    """n mapped w = mapping(z), z ~ N(0, I) -> [n, style_dim]; with truncation psi < 1 pulled towards `w_avg`
    [style_dim] (the average w) as stylegan3-editing's e4e coach samples its real codes (`truncation_psi`).
    Raises ValueError for truncation < 1 without w_avg."""
    z = torch.randn(n, z_dim(generator), device=device)
    w = generator.get_latent(z)
    if truncation < 1:
        if w_avg is None:
            raise ValueError("truncation < 1 needs the average w (w_avg)")
        avg = w_avg.reshape(-1, w.shape[-1])[0].to(w)
        w = avg + truncation * (w - avg)
    return w
