"""ID similarity: cosine of identity embeddings of prediction and target (higher is better, 1 = same embedding).

Embedder choice (`backend="auto"`):
0. a domain file's `identity` (`arcface:PATH` IR-SE50, `curricularface:PATH` IR-101, both on MTCNN-aligned
   112×112 crops; `moco:PATH` MoCo-v2 ResNet-50 on the image at 224 (nearest); `dlib`; `none`): that model or
   "unavailable" with the reason, never a substitute;
1. a face domain (`domain.is_face`) with user weights (`weights=` or $ZOO_ID_WEIGHTS): IR-SE-50 / CurricularFace
   IR-101 on MTCNN-aligned 112×112 crops (the papers' protocol, anchors §11.1);
2. the domain's own `identity_model(device)` (e.g. the peeps domain's embedder), fed at `domain.resolution`;
3. a face domain without either: facenet-pytorch VGGFace2 if its weights file is present, else dlib's descriptor.
Pairs where a face backend finds no face in either image score NaN.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
import torch
import torch.nn.functional as F

from zoo.cards import Card
from zoo.domain import Domain
from zoo.errors import CheckpointError, InputError, ZooError
from zoo.metric import Metric

from . import face_id
from .resize import resize_to

Embedder = Callable[[torch.Tensor], torch.Tensor]  # images [B, 3, H, W] in [-1, 1] -> embeddings [B, D]
BACKENDS = ("auto", "domain", "irse", "facenet", "dlib", "moco")
# a domain file's `identity = "<kind>:PATH"` -> backend (arcface IR-SE50 and CurricularFace IR-101 share `irse`)
DOMAIN_FILE_BACKENDS = {"arcface": "irse", "curricularface": "irse", "moco": "moco", "dlib": "dlib"}
IRSE_FIX = ("set ZOO_ID_WEIGHTS=/path/to/CurricularFace_Backbone.pth (IR-101) or model_ir_se50.pth (ArcFace "
            "IR-SE-50), or pass IdentitySimilarity(weights=...)")


def has_own_identity_model(domain: Domain | None) -> bool:
    """True when the domain's class overrides `Domain.identity_model`."""
    fn = getattr(type(domain), "identity_model", None)
    return domain is not None and fn is not None and fn is not Domain.identity_model


def domain_identity(domain: Domain | None) -> tuple[str, Path | None] | None:
    """(kind, weights path) declared by a domain file (`FileDomain.identity`), None for other domains."""
    declared = getattr(domain, "identity", None)
    return declared if isinstance(declared, tuple) and len(declared) == 2 else None


class IdentitySimilarity(Metric):
    """Cosine similarity of L2-normalised identity embeddings, per image [B] (NaN where no face is found)."""

    name = "id"
    higher_is_better = True
    version = "1"
    paired_pixels = False  # each image is embedded on its own (brought to the embedder's size), so H, W may differ
    card = Card(
        title="CurricularFace: Adaptive Curriculum Learning Loss for Deep Face Recognition",
        authors="Y. Huang, Y. Wang, Y. Tai, X. Liu, P. Shen, S. Li, J. Li, F. Huang",
        year=2020,
        url="https://arxiv.org/abs/2004.00288",
        code_url="https://github.com/yuval-alaluf/hyperstyle/blob/main/scripts/calc_id_loss_parallel.py",
        notes="Cosine of identity embeddings. Papers: CurricularFace IR-101 on MTCNN-aligned 112×112 faces (needs "
              "user weights, ZOO_ID_WEIGHTS). Otherwise the domain's own identity model; for face domains "
              "facenet-pytorch VGGFace2 (local weights only) or dlib's ResNet descriptor.",
    )

    def __init__(self, device: str | torch.device = "cpu", backend: str = "auto",
                 weights: str | Path | None = None) -> None:
        super().__init__(device)
        if backend not in BACKENDS:
            raise InputError(f"unknown id backend '{backend}' (choose from {', '.join(BACKENDS)})")
        self.backend = backend
        self.weights = weights
        self._embedders: dict[tuple, tuple[Embedder, object]] = {}

    # -- backend choice --------------------------------------------------------------------------------------------

    def weights_path(self, domain: Domain | None = None) -> Path | None:
        """User IR-SE / CurricularFace / MoCo weights: the constructor's `weights`, else a domain file's
        `identity = "kind:PATH"`, else $ZOO_ID_WEIGHTS."""
        declared = domain_identity(domain)
        w = self.weights or (declared[1] if declared else None) or os.environ.get("ZOO_ID_WEIGHTS")
        return Path(w).expanduser() if w else None

    def _backend_reason(self, backend: str, domain: Domain | None) -> str | None:
        if backend == "domain":
            if not has_own_identity_model(domain):
                return f"domain '{getattr(domain, 'name', None)}' has no identity model"
            try:
                self._embedder(domain, "domain")
            except (ZooError, NotImplementedError) as e:
                return str(e)
            return None
        if backend == "moco":
            w = self.weights_path(domain)
            if w is None or not w.is_file():
                return f"MoCo weights not found: {w} (moco_v2_800ep_pretrain.pt, see docs/own-domain.md)"
            return None
        if backend == "irse":
            w = self.weights_path(domain)
            fix = (f"fix `identity` in {domain.spec.file}" if domain_identity(domain) and hasattr(domain, "spec")
                   else IRSE_FIX)
            if w is None:
                return f"no CurricularFace / ArcFace weights: {fix}"
            if not w.is_file():
                return f"identity weights not found: {w} ({fix})"
            try:
                import facenet_pytorch  # noqa: F401  (MTCNN alignment)
            except ImportError:
                return f"MTCNN alignment needs facenet-pytorch: {face_id.FACENET_PIP}"
            return None
        if backend == "facenet":
            return face_id.facenet_unavailable()
        return face_id.dlib_unavailable()

    def resolve_backend(self, domain: Domain | None) -> tuple[str | None, str | None]:
        """(backend, None) when the metric can run on `domain`, else (None, reason with the fix)."""
        if self.backend != "auto":
            reason = self._backend_reason(self.backend, domain)
            return (None, reason) if reason else (self.backend, None)
        if domain is None:
            return None, "the id metric needs a domain (its identity model) or an explicit face backend"
        declared = domain_identity(domain)
        if declared is not None:  # a domain file says which model: that one or none, never a substitute
            kind, path = declared
            if kind == "none":
                return None, f"domain '{domain.name}' sets identity = \"none\""
            backend = DOMAIN_FILE_BACKENDS[kind]
            reason = self._backend_reason(backend, domain)
            return (None, f"{kind}: {reason}") if reason else (backend, None)
        is_face = bool(getattr(domain, "is_face", False))
        candidates = []
        if is_face and self.weights_path() is not None:
            candidates.append("irse")
        if has_own_identity_model(domain):
            candidates.append("domain")
        if is_face:
            candidates += ["facenet", "dlib"]
        if not candidates:
            return None, f"domain '{domain.name}' has no identity model and is not a face domain"
        reasons = []
        for b in candidates:
            reason = self._backend_reason(b, domain)
            if reason is None:
                return b, None
            reasons.append(reason)
        if is_face and "irse" not in candidates:
            reasons.append(f"or for the papers' CurricularFace metric {IRSE_FIX}")
        return None, "; ".join(reasons)

    def unavailable_reason(self, domain: Domain | None = None) -> str | None:
        return self.resolve_backend(domain)[1]

    def model_for(self, domain: Domain | None = None) -> str | None:
        """Which embedder computes `id` on `domain` (the card's title names the papers' CurricularFace only)."""
        backend, reason = self.resolve_backend(domain)
        name = getattr(domain, "name", None)
        if backend is None:
            return f"none (unavailable: {reason})"
        if backend == "domain":
            return (f"the '{name}' domain's own identity embedder (Domain.identity_model), not CurricularFace; "
                    "it was trained on that domain's images only, so its scores on other images (e.g. an "
                    "out-of-domain split) are not face-identity similarities")
        return {"irse": f"IR-SE / CurricularFace backbone on MTCNN-aligned 112x112 crops ({self.weights_path(domain)})",
                "moco": f"MoCo-v2 ResNet-50 ({self.weights_path(domain)})",
                "facenet": "facenet-pytorch InceptionResnetV1 (VGGFace2) on MTCNN crops, not CurricularFace",
                "dlib": "dlib's ResNet face descriptor, not CurricularFace"}[backend]

    # -- embedding -------------------------------------------------------------------------------------------------

    def _embedder(self, domain: Domain | None, backend: str) -> Embedder:
        key = (backend, id(domain) if backend == "domain" else None, str(self.weights_path(domain)))
        if key not in self._embedders:
            if backend == "domain":
                model = domain.identity_model(self.device)
                res = getattr(domain, "resolution", None)

                def embed(x: torch.Tensor, model=model, res=res) -> torch.Tensor:
                    return model(resize_to(x, res) if res else x)

                fn: Embedder = embed
            elif backend == "irse":
                fn = face_id.IRSEEmbedder(self.device, self.weights_path(domain))
            elif backend == "moco":
                from .moco import MocoEmbedder

                fn = MocoEmbedder(self.device, self.weights_path(domain))
            elif backend == "facenet":
                fn = face_id.FacenetEmbedder(self.device)
            else:
                fn = face_id.DlibEmbedder(self.device)
            self._embedders[key] = (fn, domain)  # keep the domain alive so id(domain) stays unique
        return self._embedders[key][0]

    def embed(self, images: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        """images [B, 3, H, W] in [-1, 1] -> L2-normalised embeddings [B, D] (NaN rows: no face found)."""
        backend, reason = self.resolve_backend(domain)
        if backend is None:
            raise CheckpointError(f"id metric unavailable: {reason}")
        e = self._embedder(domain, backend)(images.to(self.device, torch.float32))
        return F.normalize(e.to(self.device).float(), dim=1)

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        """pred, target [B, 3, H, W] in [-1, 1] (H, W may differ) -> cosine similarity [B] in [-1, 1] (NaN where
        undefined). InputError for other inputs (`check_inputs`), CheckpointError when no embedder is available."""
        if pred.shape == target.shape:
            e = self.embed(torch.cat([pred, target]), domain)
            e1, e2 = e[: len(pred)], e[len(pred):]
        else:
            e1, e2 = self.embed(pred, domain), self.embed(target, domain)
        return (e1 * e2).sum(1)
