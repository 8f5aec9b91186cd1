"""Several arrays per sample as one row: a model's outputs (every runtime's, packed for comparison) and
the inputs of a model with several (packed in the input sets, split by each runner by its graph's input
names and shapes). Kept in models so the input sets' code keys do not cover the converters."""
from __future__ import annotations

import numpy as np


def pack(outputs) -> np.ndarray:
    """One array, or a sequence of arrays sharing their batch dimension N, as (N, total) float32: each
    output flattened per sample, concatenated in order."""
    if isinstance(outputs, np.ndarray):
        outputs = [outputs]
    n = len(outputs[0])
    return np.concatenate([np.asarray(o, np.float32).reshape(n, -1) for o in outputs], axis=1)


def split(packed: np.ndarray, shapes) -> list[np.ndarray]:
    """pack undone for arrays of known per-sample shapes: [(N, *shape), ...]."""
    sizes = [int(np.prod(s)) for s in shapes]
    if packed.ndim != 2 or packed.shape[1] != sum(sizes):
        raise ValueError(f"packed rows of {packed.shape} do not hold inputs of shapes {[tuple(s) for s in shapes]}")
    bounds = np.cumsum([0, *sizes])
    return [np.ascontiguousarray(packed[:, a:b].reshape(len(packed), *s), dtype=np.float32)
            for a, b, s in zip(bounds[:-1], bounds[1:], shapes)]


def split_inputs(x: np.ndarray, shapes) -> list[np.ndarray]:
    """A model's input rows as one float32 array per input: one input as it is, several packed per sample
    (models.user.pack_inputs) split by their per-sample shapes."""
    if not shapes or len(shapes) == 1:
        return [np.ascontiguousarray(x, dtype=np.float32)]
    return split(np.asarray(x, np.float32), shapes)
