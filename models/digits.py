"""scikit-learn's digits (1,797 real 8x8 handwritten digits, 10 classes) as a small labelled image task.

Fixed split from one PCG64 permutation (seed 1797): 400 test, 100 calibration, the remaining 1,297 train.
Images are scaled to 0-255, resized to the model's input size with Pillow (bilinear), replicated to three
channels and normalized per the model's InputSpec.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.builder import InputSpec
from models.images import normalize

SPLIT_SEED = 1797
SPLITS = {"test": 400, "calibration": 100}  # train: everything else
SIZE = 32  # measured: 32x32 trains MobileNetV2/V3 to 96-98 % test accuracy in about a minute on 2 cores


@lru_cache(maxsize=None)
def _indices() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    n = len(load_digits().target)
    order = np.random.Generator(np.random.PCG64(SPLIT_SEED)).permutation(n)
    test, calib = SPLITS["test"], SPLITS["calibration"]
    return {"test": order[:test], "calibration": order[test:test + calib], "train": order[test + calib:]}


@lru_cache(maxsize=8)
def _images(size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    resized = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in raw])
    return np.repeat(resized[..., None], 3, axis=3), d.target.astype(np.int64)


def split(spec: InputSpec, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs NCHW float32, labels) of one split: train, calibration or test."""
    images, labels = _images(spec.size)
    idx = _indices()[name]
    return normalize(images[idx], spec), labels[idx]

