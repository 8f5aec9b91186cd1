"""The input sets a subject is evaluated and calibrated on, per its `data` kind.

natural: parity inputs and calibration inputs are disjoint streams of photo crops (models.images).
digits:  scikit-learn's handwritten digits with a fixed split (models.digits).
Calibration modes other than "natural" exist only so self-tests can prove a mis-calibrated int8
conversion is caught.
"""
from __future__ import annotations

import numpy as np

from models import images

PARITY_COUNT = 32
CALIBRATION_MODES = ("natural", "wrong_scale", "wrong_data")


def parity_inputs(subject) -> np.ndarray:
    """The fixed inputs golden outputs are stored for (NCHW float32)."""
    if subject.data == "digits":
        from models import digits

        return digits.split(subject.arch().input, "test")[0][:PARITY_COUNT]
    return images.image_set("parity", PARITY_COUNT, subject.arch().input)


def parity_recipe(subject) -> dict:
    return images.recipe("parity", PARITY_COUNT, subject.arch().input)


def calibration_set(subject, count: int, mode: str = "natural") -> np.ndarray:
    spec = subject.arch().input
    if subject.data == "digits":
        from models import digits

        x = digits.split(spec, "calibration")[0][:count]
    else:
        x = images.image_set("calibration", count, spec)
    if mode == "natural":
        return x
    if mode == "wrong_scale":  # a pipeline that forgot to normalize: tiny-range inputs
        return (x * 0.05).astype(np.float32)
    if mode == "wrong_data":  # uniform noise instead of images
        rng = np.random.Generator(np.random.PCG64(7))
        return rng.uniform(-1, 1, size=x.shape).astype(np.float32)
    raise ValueError(f"unknown calibration mode {mode!r}; known: {', '.join(CALIBRATION_MODES)}")


def calibration_recipe(subject, count: int, mode: str = "natural") -> dict:
    spec = subject.arch().input
    base = images.recipe("calibration", count, spec) if subject.data != "digits" else \
        {"data": "digits", "split": "calibration", "count": count, "size": spec.size}
    return {**base, "mode": mode}
