"""FFHQ face alignment: the crop every official FFHQ encoder (pSp, e4e, ReStyle, HyperStyle) expects.

The official repositories align real photos with `scripts/align_all_parallel.py` / `utils/alignment.py`
(`align_face(filepath, predictor)`), which is NVlabs ffhq-dataset `download_ffhq.py::recreate_aligned_images`
with `output_size=256, transform_size=256, enable_padding=True`. This module reimplements that recipe:

1. Landmarks: dlib's HOG frontal face detector, then dlib's 68-point shape predictor
   (`shape_predictor_68_face_landmarks.dat`, shipped by the `face-recognition-models` package, CC0).
2. Oriented square from the landmarks (image coordinates, x right, y down):
   eye_left / eye_right = mean of points 36-41 / 42-47, mouth corners = points 48 and 54,
   eye_avg = (eye_left + eye_right) / 2, eye_to_eye = eye_right - eye_left,
   eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_avg,
   x = eye_to_eye - flipud(eye_to_mouth) * [-1, 1], x /= |x|,
   x *= max(2.0 * |eye_to_eye|, 1.8 * |eye_to_mouth|), y = flipud(x) * [-1, 1],
   c = eye_avg + 0.1 * eye_to_mouth, quad = [c - x - y, c - x + y, c + x + y, c + x - y], qsize = 2 * |x|.
3. Shrink: shrink = floor(qsize / output_size / 2); when shrink > 1 the image is resized by 1 / shrink
   (Lanczos, PIL's former ANTIALIAS) and quad / qsize are divided by shrink.
4. Crop: border = max(round(0.1 * qsize), 3); the image is cropped to the quad's bounding box plus border.
5. Pad (enable_padding=True): when the quad leaves the image by more than border - 4 px, every side is padded by
   at least round(0.3 * qsize) px with reflection, the padding is blended towards a Gaussian blur
   (sigma = 0.02 * qsize) and towards the per-channel median, with the recipe's linear masks.
6. Transform: PIL QUAD transform of (quad + 0.5) to transform_size x transform_size with BILINEAR sampling, then
   a Lanczos resize to output_size when output_size < transform_size.

Deviations from pSp's `get_landmark`, deliberately: pSp runs the detector with upsample=1 and keeps the *last*
detection; here the detector runs with upsample=0 and, only when that finds nothing, again with upsample=1, and the
*largest* detection is kept (on `skimage.data.astronaut()` upsample=1 adds a false detection of the same size as the
face; the landmarks of the face itself move by < 0.5 px between the two settings). `align_file` also applies the
EXIF orientation before detection (pSp reads the raw pixel grid).

Install: `pip install 'inversion-zoo[align]'` (dlib-bin + face-recognition-models, about 140 MB on disk).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..bench.cache import atomic_write_bytes
from ..errors import InputError, ZooError

INSTALL_COMMAND = "pip install 'inversion-zoo[align]'"
"""What a user runs to get dlib and the landmark model (in this checkout: `.venv/bin/pip install -e '.[align]'`)."""

LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
NO_FACE_NOTE = "no face found; skipped"
DEFAULT_UPSAMPLE: tuple[int, ...] = (0, 1)
"""Detector upsampling passes: the next pass runs only when the previous one found no face."""

ImageLike = Image.Image | np.ndarray


def _missing(what: str) -> ZooError:
    return ZooError(f"face alignment needs {what}; install it with: {INSTALL_COMMAND} "
                    f"(in a checkout: .venv/bin/pip install -e '.[align]')")


def _import_dlib() -> Any:
    try:
        import dlib  # type: ignore[import-not-found]
    except (ImportError, OSError) as exc:  # OSError: a wheel whose shared library does not load
        raise _missing(f"dlib ({type(exc).__name__}: {exc})") from exc
    return dlib


def landmark_model_path() -> Path:
    """Path of dlib's 68-landmark model inside the installed `face_recognition_models` package.

    The package is located without importing it: its `__init__` imports `pkg_resources`, which recent setuptools
    no longer ship.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise _missing(f"the landmark model {LANDMARK_MODEL} (package face-recognition-models)")
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / LANDMARK_MODEL
        if path.is_file():
            return path
    raise _missing(f"the landmark model {LANDMARK_MODEL} (face-recognition-models is installed without it)")


@functools.lru_cache(maxsize=1)
def _models() -> tuple[Any, Any]:
    """(frontal face detector, 68-landmark shape predictor), loaded once per process (about 1 s)."""
    dlib = _import_dlib()
    path = landmark_model_path()
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def _rgb_array(image: ImageLike) -> np.ndarray:
    """H x W x 3 uint8 C-contiguous RGB array from a PIL image (any mode) or a uint8 array (H x W, H x W x 3/4)."""
    if isinstance(image, Image.Image):
        return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a PIL image or a uint8 numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 RGB array with values in [0, 255], got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[:, :, :3]
    else:
        raise InputError(f"expected an H x W x 3 RGB array, got shape {tuple(image.shape)}")
    return np.ascontiguousarray(image)


def find_landmarks(image: ImageLike, upsample: tuple[int, ...] = DEFAULT_UPSAMPLE) -> np.ndarray | None:
    """dlib's 68 landmarks of the largest face, or None when no face is found.

    Args:
        image: RGB photo, a PIL image (converted to RGB) or a uint8 array H x W x 3 with values in [0, 255].
        upsample: detector upsampling counts tried in order until a face is found (default (0, 1): once more with
            the image upsampled 2x when the first pass finds nothing).

    Returns:
        float64 array [68, 2] of (x, y) pixel coordinates in the input image (iBUG 300-W order: 0-16 jaw,
        36-41 left eye, 42-47 right eye, 48-67 mouth, "left" as seen in the image), or None.

    Raises:
        ZooError: dlib or the landmark model is not installed (the message gives the install command).
    """
    detector, predictor = _models()
    pixels = _rgb_array(image)
    for times in upsample:
        faces = list(detector(pixels, int(times)))
        if faces:
            face = max(faces, key=lambda r: r.width() * r.height())
            shape = predictor(pixels, face)
            return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    return None


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The recipe's oriented square: (quad [4, 2] float64 corners top-left, bottom-left, bottom-right, top-right in
    (x, y) pixels, qsize = its side length in pixels), from 68 landmarks [68, 2]."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise InputError(f"expected 68 finite (x, y) landmarks, got an array of shape {lm.shape}")
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = 0.5 * (eye_left + eye_right)
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = 0.5 * (lm[48] + lm[54]) - eye_avg
    # x: half of the square's top edge; eye_to_mouth turned by -90 degrees is averaged with eye_to_eye.
    x = eye_to_eye - eye_to_mouth[::-1] * np.array([-1.0, 1.0])
    norm = np.hypot(*x)
    if norm == 0:
        raise InputError("degenerate landmarks: the eyes and the mouth coincide")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = x[::-1] * np.array([-1.0, 1.0])  # x turned by +90 degrees (towards the chin)
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2.0)


def _pad_and_blend(pixels: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Reflect-pad a uint8 H x W x 3 image by (left, top, right, bottom) and fade the padding to blur and median."""
    import scipy.ndimage

    left, top, right, bottom = pad
    img = np.pad(pixels.astype(np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w, _ = img.shape
    ys, xs = np.ogrid[:h, :w]
    xs = xs.astype(np.float32)
    ys = ys.astype(np.float32)
    # 1 on the outer edge, 0 where the original pixels start, negative inside.
    fade_x = 1.0 - np.minimum(xs / max(left, 1), (w - 1 - xs) / max(right, 1))
    fade_y = 1.0 - np.minimum(ys / max(top, 1), (h - 1 - ys) / max(bottom, 1))
    mask = np.maximum(fade_x, fade_y)[:, :, None]
    sigma = qsize * 0.02
    blurred = scipy.ndimage.gaussian_filter(img, [sigma, sigma, 0])
    img += (blurred - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def align_ffhq(image: ImageLike, output_size: int = 256, transform_size: int | None = None,
               landmarks: np.ndarray | None = None, enable_padding: bool = True) -> Image.Image | None:
    """FFHQ-aligned square crop of the largest face, or None when no face is found.

    Args:
        image: RGB photo, a PIL image (converted to RGB) or a uint8 array H x W x 3 with values in [0, 255].
        output_size: side of the returned crop in pixels (pSp / e4e / ReStyle / HyperStyle: 256; FFHQ: 1024).
        transform_size: side of the QUAD transform before the final Lanczos resize; None = output_size, as pSp
            (the ffhq-dataset release used 4096 for 1024). Must be >= output_size.
        landmarks: [68, 2] (x, y) landmarks of `image` (e.g. from `find_landmarks`); None = detect them.
        enable_padding: reflect-pad with blur/median blending where the square leaves the image (recipe: True);
            False leaves such regions black.

    Returns:
        RGB PIL image of output_size x output_size (uint8, [0, 255]) with the eyes level and centred horizontally,
        or None when no face is found.

    Raises:
        ZooError: dlib or the landmark model is not installed (only when `landmarks` is None).
        InputError: bad sizes, image or landmarks.
    """
    output_size = int(output_size)
    transform_size = output_size if transform_size is None else int(transform_size)
    if output_size < 1 or transform_size < output_size:
        raise InputError(f"need 1 <= output_size <= transform_size, got {output_size} and {transform_size}")
    pixels = _rgb_array(image)
    if landmarks is None:
        landmarks = find_landmarks(pixels)
        if landmarks is None:
            return None
    quad, qsize = ffhq_quad(landmarks)
    img = Image.fromarray(pixels, "RGB")

    # Shrink a much larger face first (cheaper, and the QUAD transform's bilinear sampling does not antialias).
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        size = (int(np.rint(img.width / shrink)), int(np.rint(img.height / shrink)))
        img = img.resize(size, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Crop to the square's bounding box plus a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    x0, y0 = int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min()))
    x1, y1 = int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max()))
    crop = (max(x0 - border, 0), max(y0 - border, 0), min(x1 + border, img.width), min(y1 + border, img.height))
    if crop[2] - crop[0] < img.width or crop[3] - crop[1] < img.height:
        img = img.crop(crop)
        quad -= np.array(crop[:2], dtype=np.float64)

    # Pad where the square leaves the (cropped) image.
    x0, y0 = int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min()))
    x1, y1 = int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max()))
    pad = (max(border - x0, 0), max(border - y0, 0), max(x1 - img.width + border, 0), max(y1 - img.height + border, 0))
    if enable_padding and max(pad) > border - 4:
        least = int(np.rint(qsize * 0.3))
        pad = tuple(max(p, least) for p in pad)
        img = Image.fromarray(_pad_and_blend(np.asarray(img), pad, qsize), "RGB")
        quad += np.array(pad[:2], dtype=np.float64)

    img = img.transform((transform_size, transform_size), Image.Transform.QUAD, (quad + 0.5).flatten().tolist(),
                        Image.Resampling.BILINEAR)
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return img


def _default_cache_dir() -> Path:
    from ..cards import cache_dir

    return cache_dir() / "aligned"


def cache_key(data: bytes, output_size: int, transform_size: int | None = None) -> str:
    """`{sha256 of the file bytes}_{output_size}` (plus `_t{transform_size}` when it differs from output_size)."""
    key = f"{hashlib.sha256(data).hexdigest()}_{int(output_size)}"
    if transform_size is not None and int(transform_size) != int(output_size):
        key += f"_t{int(transform_size)}"
    return key


def align_file(path: str | Path, output_size: int = 256, cache_dir: str | Path | None = None, *,
               transform_size: int | None = None) -> tuple[Image.Image | None, str]:
    """Align one image file, caching the crop; returns (aligned RGB image or None, one-line note).

    The crop is cached as `cache_dir / f"{sha256_of_file_bytes}_{output_size}.png"` (lossless, written atomically),
    so a second call returns the identical pixels without running dlib; a file without a face leaves an empty
    `{key}.noface` marker so that it is skipped quickly too. The input file is only read.

    Args:
        path: image file (any format PIL reads; EXIF orientation is applied).
        output_size: side of the crop in pixels (see `align_ffhq`).
        cache_dir: folder of the cache; None = `$ZOO_HOME/aligned` (`~/.cache/zoo/aligned`).
        transform_size: see `align_ffhq` (None = output_size).

    Returns:
        (image, note) with note one of "aligned", "cached", "no face found; skipped",
        "cannot read image (...); skipped"; a failed cache write is appended to the note, never raised.

    Raises:
        InputError: the file does not exist or cannot be opened.
        ZooError: dlib or the landmark model is not installed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    root = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    key = cache_key(data, output_size, transform_size)
    cached, no_face = root / f"{key}.png", root / f"{key}.noface"

    if cached.is_file():
        try:
            with Image.open(cached) as im:
                return im.convert("RGB"), "cached"
        except OSError:
            pass  # unreadable cache entry: recompute and overwrite it
    if no_face.is_file():
        return None, NO_FACE_NOTE

    try:
        with Image.open(io.BytesIO(data)) as im:
            photo = ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return None, f"cannot read image ({type(exc).__name__}); skipped"

    aligned = align_ffhq(photo, output_size=output_size, transform_size=transform_size)
    note = "aligned" if aligned is not None else NO_FACE_NOTE
    try:
        if aligned is None:
            atomic_write_bytes(no_face, b"")
        else:
            buf = io.BytesIO()
            aligned.save(buf, format="PNG")
            atomic_write_bytes(cached, buf.getvalue())
    except OSError as exc:
        note += f" (cache not written: {exc.strerror or exc})"
    return aligned, note


def aligned_file(path: str | Path, output_size: int = 256, cache_dir: str | Path | None = None, *,
                 transform_size: int | None = None) -> tuple[Path | None, str]:
    """Like `align_file`, but returns the cached crop's path (a PNG the caller may read like any input file), or
    None with the one-line note when no face was found, the image is unreadable or the cache cannot be written."""
    image, note = align_file(path, output_size, cache_dir, transform_size=transform_size)
    if image is None:
        return None, note
    root = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    cached = root / f"{cache_key(Path(path).read_bytes(), output_size, transform_size)}.png"
    return (cached, note) if cached.is_file() else (None, f"{note}; skipped")
