"""Parity metrics: properties that must hold for any input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from compare import metrics

pytestmark = pytest.mark.selftest

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
logits = arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(2, 20)), elements=finite)


def _nonzero(a):
    return np.all(np.linalg.norm(a.astype(np.float64), axis=1) > 1e-3)


@given(logits, st.floats(1e-3, 1e3))
def test_cosine_is_invariant_to_positive_scale(x, scale):
    if not _nonzero(x):
        return
    np.testing.assert_allclose(metrics.cosine_similarity(x, x * scale), 1.0, atol=1e-6)


@given(logits)
def test_cosine_of_negation_is_minus_one(x):
    if _nonzero(x):
        np.testing.assert_allclose(metrics.cosine_similarity(x, -x), -1.0, atol=1e-6)


@given(logits, logits)
@settings(max_examples=50)
def test_cosine_is_symmetric_and_bounded(a, b):
    if a.shape != b.shape:
        return
    ab, ba = metrics.cosine_similarity(a, b), metrics.cosine_similarity(b, a)
    np.testing.assert_allclose(ab, ba, atol=1e-12)
    assert np.all((ab >= -1) & (ab <= 1))


@given(logits, st.integers(-4, 4))
def test_top1_agreement_is_one_under_exact_rescaling(x, exponent):
    # scaling by a power of two is exact in floating point, so it cannot create ties (a smooth monotonic
    # map such as tanh can round neighbouring float32 values to the same number)
    assert metrics.top1_agreement(x, np.ldexp(x, exponent)) == 1.0


def test_nan_and_inf_give_nan_cosine_and_never_pass():
    ref = np.ones((3, 4), np.float32)
    bad = ref.copy()
    bad[1, 2], bad[2, 0] = np.nan, np.inf
    cos = metrics.cosine_similarity(ref, bad)
    assert cos[0] == pytest.approx(1.0) and np.isnan(cos[1]) and np.isnan(cos[2])
    assert np.isnan(metrics.parity_metrics(ref, bad)["cosine_worst"])


def test_zero_vectors():
    z = np.zeros((1, 5))
    assert metrics.cosine_similarity(z, z)[0] == 1.0
    assert metrics.cosine_similarity(z, np.ones((1, 5)))[0] == 0.0


def test_known_values():
    ref = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    act = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 1.5]])
    m = metrics.parity_metrics(ref, act)
    assert m["cosine_worst"] == pytest.approx(0.0)
    assert m["top1_agreement"] == 0.5
    assert m["max_abs_error"] == pytest.approx(1.0)
    assert metrics.accuracy(act, [1, 1]) == 100.0


def test_bit_exact_outputs_have_infinite_snr_that_passes_any_floor():
    from compare.budgets import Budget
    from compare.verdict import judge

    x = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    m = metrics.parity_metrics(x, x.copy())
    assert m["snr_db"] == np.inf and m["max_abs_error"] == 0.0 and m["cosine_worst"] == pytest.approx(1.0)
    budget = Budget({"min_snr_db": 80.0, "max_abs_error": 1e-3}, {"min_snr_db": "t", "max_abs_error": "t"})
    assert judge("m-onnx-fp32", "parity", m, budget).passed


# --- declared outputs (compare.outputs) ------------------------------------------------------------------

def test_packed_outputs_unpack_into_their_declared_shapes():
    from converters import pack
    from compare.outputs import OutputShapeError, Slot, unpack

    rng = np.random.default_rng(0)
    boxes, scores = rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 5, 2))
    layout = [Slot("boxes", "boxes", (5, 4), "scores"), Slot("scores", "scores", (5, 2))]
    out = unpack(pack([boxes, scores]), layout)
    np.testing.assert_allclose(out["boxes"], boxes, rtol=1e-6)
    np.testing.assert_allclose(out["scores"], scores, rtol=1e-6)
    with pytest.raises(OutputShapeError, match="29 values per sample"):
        unpack(pack([boxes, scores])[:, :29], layout)


def test_kind_metrics_on_identical_shuffled_and_input_independent_outputs():
    from compare.metrics import broken_outputs, variation_snr_db
    from compare.outputs import box_iou, detection_agreement, pixel_metrics

    rng = np.random.default_rng(1)
    dense = rng.normal(size=(4, 5, 6, 6))
    assert pixel_metrics(dense, dense) == {"pixel_agreement": 1.0, "miou": 1.0}
    transposed = pixel_metrics(dense, dense.transpose(0, 1, 3, 2))  # a layout bug
    assert transposed["pixel_agreement"] < 0.5 and transposed["miou"] < 0.5
    scores = rng.dirichlet(np.full(4, 0.3), size=(4, 20))
    assert detection_agreement(scores, scores) == 1.0
    assert detection_agreement(np.full_like(scores, 0.25), np.full_like(scores, 0.25)) == 1.0  # nothing detected
    assert detection_agreement(scores, np.roll(scores, 1, axis=1)) < 0.5
    boxes = np.concatenate([rng.uniform(0, 0.5, (4, 20, 2)), rng.uniform(0.6, 1, (4, 20, 2))], -1)
    assert box_iou(boxes, boxes, scores) == pytest.approx(1.0)
    assert box_iou(boxes, boxes + 1.0, scores) == 0.0
    assert np.isnan(box_iou(boxes, np.full_like(boxes, np.nan), scores))
    broken = broken_outputs(boxes)
    assert variation_snr_db(boxes, broken["input_independent"]) == pytest.approx(0.0, abs=1e-9)
    assert variation_snr_db(boxes, broken["stale"]) < -2.0
    assert variation_snr_db(boxes, boxes) == float("inf")
