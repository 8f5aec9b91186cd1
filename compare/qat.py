"""Are a QAT model's learned activation scales kept by a conversion path? Pure numpy.

A path that carries QAT stores the scales the model learned: the exported QDQ graph holds them as they
are (float32), OpenVINO as FakeQuantize ranges whose step (high - low) / 255 is the same scale to a few
float32 roundings. A path that re-quantizes (calibrates the float weights again, as a post-training
quantizer does) stores scales of its own, which match a learned one only by accident.

    kept fraction = learned activation scales found among the artifact's activation scales (within RTOL)
                    / learned activation scales

Measured on both QAT subjects (136 learned scales each): onnx-int8 and openvino-int8 1.00; tflite-int8,
whose onnx2tf path calibrates again, 0.007 (1 scale, a coincidence). The broken reference of the self-test,
every scale of a real QAT export moved by 1 % (a recalibration close to what QAT learned), measures 0.00.
KEPT = 0.5, a stated rule: half the clean value, 70x the re-quantized one. A path that kept half its
scales and recalibrated the rest would still pass; one that kept fewer fails.
"""
from __future__ import annotations

import numpy as np

RTOL = 1e-5  # float32 arithmetic on the way (OpenVINO's range ends and their difference): ~1e-7 measured
KEPT = 0.5


def kept_fraction(learned: list[float], stored: list[float], rtol: float = RTOL) -> float:
    """The share of `learned` scales that appear among `stored` (each within rtol of its own value)."""
    if not learned:
        raise ValueError("no learned activation scales: is this a QAT model's state?")
    stored_sorted = np.sort(np.asarray(stored, np.float64))
    if stored_sorted.size == 0:
        return 0.0
    found = 0
    for scale in learned:
        i = int(np.searchsorted(stored_sorted, scale))
        near = stored_sorted[max(i - 1, 0):i + 1]
        found += bool(np.any(np.abs(near - scale) <= rtol * abs(scale)))
    return found / len(learned)


def budget():
    """The kept fraction's floor as a compare.budgets.Budget (the `qat` suite)."""
    from compare.budgets import Budget

    return Budget({"min_scales_kept": KEPT}, {"min_scales_kept": "compare.qat.KEPT"})
