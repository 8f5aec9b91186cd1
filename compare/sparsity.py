"""What a converted artifact stores of a pruned model: the zeros of unstructured pruning, the narrower tensors
of structured pruning. Each format's plug-in reads its artifact's constant tensors (`Format.weights`, the
readers are in converters.stored_weights); the filters and matrices among them (is_weight) are the weights.
A stored value counts as zero when it equals its tensor's zero point (int8 weights stored with a zero point
of 128 are zero at 128), so quantized artifacts are read as what they compute.

Judged against the PyTorch model the artifact came from:

    unstructured   kept when the artifact's zero fraction is at least the PyTorch weights' minus SLACK (BN
                   folding scales a filter, which keeps its zeros; quantization can only add zeros, rounding
                   small weights to 0); lost (densified) otherwise
    structured     kept when the artifact's weight elements, over the unpruned model's artifact of the same
                   format and precision, are within STRUCTURE_SLACK of PyTorch's ratio
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_ELEMENTS = 16  # smaller 2-D+ constants are shapes and indices, not weights
SLACK = 0.005  # of the weights: unstructured zeros may be this much fewer than PyTorch's
STRUCTURE_SLACK = 0.01  # of the unpruned artifact's weights: converter constants that do not scale with width


@dataclass
class StoredTensor:
    name: str
    values: np.ndarray
    zero: object = 0  # the stored value that means 0 (a quantized tensor's zero point; per-channel: an array)
    axis: int = 0  # the channel axis of a per-channel zero point


def is_weight(t: StoredTensor) -> bool:
    """A filter or matrix: two axes longer than 1. A [1, C, 1, 1] or [C, 1, 1, 1] constant is a vector however
    it is shaped: OpenVINO stores each convolution's bias (the folded BatchNorm shift) as [1, C, 1, 1] for an
    Add, NNCF its per-channel weight scales as [C, 1, 1, 1]."""
    return sum(d > 1 for d in t.values.shape) >= 2 and t.values.size >= MIN_ELEMENTS and t.values.dtype.kind in "fiu"


def zeros(t: StoredTensor) -> int:
    zero = np.asarray(t.zero)
    if zero.ndim == 1 and zero.size > 1:
        shape = [1] * t.values.ndim
        shape[t.axis] = zero.size
        zero = zero.reshape(shape)
    return int(np.count_nonzero(t.values == zero))


def summary(tensors: list[StoredTensor]) -> dict:
    """Weight elements, their zeros and the zero fraction of an artifact's stored tensors."""
    weights = [t for t in tensors if is_weight(t)]
    total = sum(t.values.size for t in weights)
    zero = sum(zeros(t) for t in weights)
    return {"weight_tensors": len(weights), "weight_elements": int(total), "zero_elements": int(zero),
            "sparsity": zero / total if total else 0.0}


def verdict(structured: bool, source: dict, stored: dict, base_stored: dict | None = None) -> tuple[bool, str]:
    """(kept, why) for a pruned model's artifact (module docstring)."""
    if structured:
        want = source["params_ratio"]
        got = stored["weight_elements"] / base_stored["weight_elements"]
        return abs(got - want) <= STRUCTURE_SLACK, \
            (f"weight elements {got:.3f} of the unpruned model's artifact; PyTorch's pruned weights are "
             f"{want:.3f} of its unpruned ones")
    kept = stored["sparsity"] >= source["sparsity"] - SLACK
    return kept, (f"{stored['sparsity']:.3f} of {stored['weight_elements']} stored weights are zero; PyTorch's "
                  f"pruned weights {source['sparsity']:.3f}" + ("" if kept else " (densified)"))
