"""The input sets a subject is evaluated and calibrated on, per its `data` kind.

natural:      parity inputs and calibration inputs are disjoint streams of photo crops (models.images).
digits:       scikit-learn's handwritten digits with a fixed split (models.digits).
folder:<dir>: the user's labelled image folder (models.folder).
Calibration modes other than "natural" exist only so self-tests can prove a mis-calibrated int8
conversion is caught.
"""
from __future__ import annotations

import numpy as np

from models import images

PARITY_COUNT = 32
CALIBRATION_MODES = ("natural", "wrong_scale", "wrong_data")


def parity_inputs(subject) -> np.ndarray:
    """The fixed inputs golden outputs are stored for (NCHW float32; a user model's own input shape, several
    inputs packed per sample: models.user.pack_inputs)."""
    if subject.user:
        from models import user

        return user.inputs(subject.model, subject.user.inputs, "parity", PARITY_COUNT)
    if subject.data == "digits":
        from models import digits

        return digits.split(subject.arch().input, "test")[0][:PARITY_COUNT]
    return images.image_set("parity", PARITY_COUNT, subject.arch().input)


def parity_recipe(subject) -> dict:
    if subject.user:
        from models import user

        return user.recipe(subject.user.inputs, "parity", PARITY_COUNT)
    return images.recipe("parity", PARITY_COUNT, subject.arch().input)


def labelled(subject, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of a labelled subject's split ("test" or "calibration")."""
    if subject.user and subject.data.startswith("folder:"):
        from models import folder
        from models.builder import InputSpec

        inp = subject.user.input
        if not inp.is_image or inp.shape[0] != 3 or inp.shape[1] != inp.shape[2]:
            raise ValueError(f"model {subject.model!r}: labels need a square RGB input, not {inp.shape}")
        return folder.split(subject.data.split(":", 1)[1], InputSpec(inp.shape[1], tuple(inp.mean), tuple(inp.std)),
                            split)
    spec = subject.arch().input
    if subject.data == "digits":
        from models import digits

        return digits.split(spec, split)
    if subject.data.startswith("folder:"):
        from models import folder

        return folder.split(subject.data.split(":", 1)[1], spec, split)
    raise ValueError(f"subject {subject.id} has no labelled data (data={subject.data!r})")


def calibration_set(subject, count: int, mode: str = "natural") -> np.ndarray:
    if subject.user and subject.data == "natural":
        from models import user

        x = user.inputs(subject.model, subject.user.inputs, "calibration", count)
    elif subject.data == "natural":
        spec = subject.arch().input
        x = images.image_set("calibration", count, spec)
    else:
        x = labelled(subject, "calibration")[0][:count]
    if mode == "natural":
        return x
    if mode == "wrong_scale":  # a pipeline that forgot to normalize: tiny-range inputs
        return (x * 0.05).astype(np.float32)
    if mode == "wrong_data":  # uniform noise instead of images
        rng = np.random.Generator(np.random.PCG64(7))
        return rng.uniform(-1, 1, size=x.shape).astype(np.float32)
    raise ValueError(f"unknown calibration mode {mode!r}; known: {', '.join(CALIBRATION_MODES)}")


def calibration_recipe(subject, count: int, mode: str = "natural") -> dict:
    if subject.user and subject.data == "natural":
        from models import user

        return {**user.recipe(subject.user.inputs, "calibration", count), "mode": mode}
    if subject.user:  # a models.model registration scored on its labelled folder
        from models import folder

        inp = subject.user.input
        return {"data": "folder", "digest": folder.digest(subject.data.split(":", 1)[1]), "split": "calibration",
                "count": count, "shape": list(inp.shape), "mode": mode, "mean": list(inp.mean), "std": list(inp.std)}
    spec = subject.arch().input
    if subject.data == "natural":
        base = images.recipe("calibration", count, spec)
    elif subject.data.startswith("folder:"):
        from models import folder

        base = {"data": "folder", "digest": folder.digest(subject.data.split(":", 1)[1])}
    else:
        base = {"data": subject.data}
    return {**base, "split": "calibration", "count": count, "size": spec.size, "mode": mode,
            "mean": list(spec.mean), "std": list(spec.std)}
