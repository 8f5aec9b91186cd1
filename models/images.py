"""Deterministic natural-image inputs: random crops of the photos that ship inside scikit-image and
scikit-learn, resized with Pillow and normalized per a model's InputSpec. No network, no torch RNG.

Each *stream* (parity, calibration, bn) has its own seed, so the sets are disjoint crops of the photos.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from models.builder import InputSpec

# Colour photos first, then greyscale ones (replicated to three channels).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field",
          "immunohistochemistry", "china", "flower", "camera", "coins", "grass", "gravel", "brick", "moon")
STREAM_SEEDS = {"parity": 20240101, "calibration": 20240202, "bn": 20240303, "userdata": 20240404,
                "distill": 20240505, "qat": 20240606}


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """One shipped photo as uint8 HxWx3."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


def _crop(rng: np.random.Generator, img: np.ndarray, size: int, width: int | None = None) -> np.ndarray:
    """A random-resized crop (area 20-100 %, aspect 3/4-4/3) resized to size x width (default square),
    random horizontal flip."""
    from PIL import Image

    h, w = img.shape[:2]
    area = rng.uniform(0.2, 1.0) * h * w
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(min(h, round(np.sqrt(area / aspect))))
    cw = int(min(w, round(np.sqrt(area * aspect))))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = Image.fromarray(img[top:top + ch, left:left + cw]).resize((width or size, size), Image.BILINEAR)
    out = np.asarray(crop)
    return out[:, ::-1] if rng.random() < 0.5 else out


def natural_crops(count: int, size: int, stream: str, width: int | None = None, variant: int = 0) -> np.ndarray:
    """`count` uint8 crops (N, size, width or size, 3), cycling over PHOTOS, reproducible from `stream`'s
    seed; variant k > 0 (a model's k-th input) draws other crops from the same stream."""
    rng = np.random.Generator(np.random.PCG64([STREAM_SEEDS[stream], variant] if variant else STREAM_SEEDS[stream]))
    return np.stack([_crop(rng, load_photo(PHOTOS[i % len(PHOTOS)]), size, width) for i in range(count)])


def center_crop(name: str, size: int) -> np.ndarray:
    """The central square of a photo resized to size x size (uint8, 1 x H x W x 3): classification-style."""
    from PIL import Image

    img = load_photo(name)
    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))[None]


def normalize(images: np.ndarray, spec: InputSpec, layout: str = "NCHW") -> np.ndarray:
    """uint8 NHWC RGB -> float32 normalized per `spec`, NCHW (PyTorch/ONNX) or NHWC (TFLite)."""
    x = images.astype(np.float32) / 255.0
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "NCHW" else x)


def image_set(stream: str, count: int, spec: InputSpec) -> np.ndarray:
    """The normalized NCHW float32 input set of one stream."""
    return normalize(natural_crops(count, spec.size, stream), spec)


def recipe(stream: str, count: int, spec: InputSpec) -> dict:
    """What produced an input set (recorded in golden manifests and cache keys)."""
    import PIL

    return {"photos": list(PHOTOS), "stream": stream, "seed": STREAM_SEEDS[stream], "count": count,
            "size": spec.size, "mean": list(spec.mean), "std": list(spec.std), "resample": "bilinear",
            "pillow": PIL.__version__}


def array_digest(array: np.ndarray) -> str:
    """Short content hash of an array (dtype, shape and bytes)."""
    h = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]
