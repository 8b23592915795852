"""Pure-PyTorch StyleGAN3 (configs T and R) with NVlabs parameter names and the zoo's generator interface.

See docs/stylegan3.md: `Generator` (NVlabs constructor and state-dict layout), `checkpoints.load_generator` (official
pickles code-free, stylegan3-editing / zoo `.pt`), `transforms` (make_transform, eye-landmark poses).
"""

from .checkpoints import LoadedGenerator, load_any_generator, load_generator, save_generator
from .generator import Generator, LayerSpec, SynthesisNetwork, band_limit_schedule
from .transforms import generator_transform, make_transform, pose_from_transform

__all__ = ["Generator", "LayerSpec", "LoadedGenerator", "SynthesisNetwork", "band_limit_schedule",
           "generator_transform", "load_any_generator", "load_generator", "make_transform", "pose_from_transform",
           "save_generator"]
