"""Parity metrics between a converted model's outputs and reference (golden) outputs. Pure numpy.

All functions take (N, C) arrays of logits, reference first.
"""
from __future__ import annotations

import numpy as np


def _as_2d(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def cosine_similarity(reference, actual) -> np.ndarray:
    """Per-sample cosine similarity. A zero vector against a zero vector counts as 1, against a non-zero
    vector as 0; NaN or Inf anywhere in a sample gives NaN (callers must treat NaN as failure)."""
    r, a = _as_2d(reference), _as_2d(actual)
    dot = np.einsum("ij,ij->i", r, a)
    norms = np.linalg.norm(r, axis=1) * np.linalg.norm(a, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    both_zero = (np.linalg.norm(r, axis=1) == 0) & (np.linalg.norm(a, axis=1) == 0)
    cos = np.where(both_zero, 1.0, np.clip(cos, -1.0, 1.0))
    finite = np.isfinite(r).all(axis=1) & np.isfinite(a).all(axis=1)
    return np.where(finite, cos, np.nan)


def top1_agreement(reference, actual) -> float:
    """Fraction of samples whose arg-max class is the same in both."""
    r, a = _as_2d(reference), _as_2d(actual)
    return float(np.mean(r.argmax(axis=1) == a.argmax(axis=1)))


def max_abs_error(reference, actual) -> float:
    return float(np.max(np.abs(_as_2d(reference) - _as_2d(actual))))


def snr_db(reference, actual) -> float:
    """Signal-to-quantization-noise ratio in dB over all samples (inf when identical)."""
    r, a = _as_2d(reference), _as_2d(actual)
    noise = np.sum((r - a) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(r ** 2) / noise))


def variation_snr_db(reference, actual) -> float:
    """SNR of the input-dependent part: the reference's variation around its mean over samples against the
    error, in dB. An output dominated by a constant (a detector's anchors, a constant background logit)
    has a high plain SNR even when it ignores its input; here any input-independent output measures 0 dB
    exactly, a stale one about -3 dB (inf when identical)."""
    r, a = _as_2d(reference), _as_2d(actual)
    noise = np.sum((r - a) ** 2)
    signal = np.sum((r - r.mean(axis=0, keepdims=True)) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(max(signal, 1e-300) / noise))


def parity_metrics(reference, actual) -> dict[str, float]:
    """Every parity metric the budgets can refer to, as plain floats."""
    cos = cosine_similarity(reference, actual)
    return {
        "cosine_mean": float(np.mean(cos)),
        "cosine_worst": float(np.min(cos)),
        "top1_agreement": top1_agreement(reference, actual),
        "max_abs_error": max_abs_error(reference, actual),
        "snr_db": snr_db(reference, actual),
    }


def accuracy(logits, labels) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * np.mean(_as_2d(logits).argmax(axis=1) == np.asarray(labels)))


def broken_outputs(outputs) -> dict:
    """Outputs a broken pipeline would produce from the same expected outputs: every sample the mean output
    (input-independent) or the previous sample's output (stale). A budget must fail both by a wide margin."""
    outputs = np.asarray(outputs)
    return {"input_independent": np.repeat(outputs.mean(0, keepdims=True), len(outputs), 0),
            "stale": np.roll(outputs, 1, axis=0)}


def broken_snr_db(expected) -> dict[str, float]:
    return {kind: snr_db(expected, broken) for kind, broken in broken_outputs(expected).items()}


def excess_error_db(expected, reference, actual, float_floor_db: float | None = None) -> float:
    """How much further `actual` is from `expected` than `reference` is, in dB of SNR: 0 when an artifact
    computes its quantization as well as its simulation does. Robust where the two differ by rounding that a
    sensitive network amplifies (both land equally far from the float model); a conversion error makes it
    grow. Both bit-exact counts as 0, and so does an artifact at least `float_floor_db` from `expected` (the
    fp32 budget's SNR floor): there both errors are float32 summation-order round-off, and their ratio
    measures nothing (found on a QAT model whose float16-exact weights make fp16 lossless: 125.5 dB against
    the reference's 128.1 dB, 3 dB "excess")."""
    a, b = snr_db(expected, reference), snr_db(expected, actual)
    if a == b or (float_floor_db is not None and b >= float_floor_db):
        return 0.0
    return float(a - b)


def constant_error(stored: np.ndarray, step: np.ndarray, original: np.ndarray) -> float:
    """How far stored constants are from the float values they stand for, in their own grid steps: at most
    0.5 for round-to-nearest (whatever the precision costs the model). The float values are allowed a
    relative 1e-5 of slack: a grid finer than float32 (int32 biases) cannot be met more closely, and two
    conversions of one graph fold constants in different orders (measured: 2.6e-6 relative on a TFLite
    bias shared by two convolutions)."""
    slack = np.abs(original) * 1e-5
    return float(np.max((np.abs(stored - original) - slack) / np.maximum(step, 1e-45), initial=0.0))
