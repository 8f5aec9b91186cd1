"""The sparsity check (compare.sparsity) catches an artifact that densified a pruned model's weights, reads
quantized weights as what they compute (zero at the zero point), and judges structured pruning by the
weight elements left."""
from __future__ import annotations

import numpy as np
import pytest

from compare import sparsity
from converters.stored_weights import onnx_weights

pytestmark = pytest.mark.selftest


def _onnx(tmp_path, weights: np.ndarray, zero_point=None):
    """A one-Conv ONNX file holding `weights`: float, or quantized with a DequantizeLinear and `zero_point`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], [numpy_helper.from_array(weights, "w")]
    conv_w = "w"
    if zero_point is not None:
        inits += [numpy_helper.from_array(np.float32(0.01), "scale"),
                  numpy_helper.from_array(np.asarray(zero_point, weights.dtype), "zp")]
        nodes.append(helper.make_node("DequantizeLinear", ["w", "scale", "zp"], ["w_f"]))
        conv_w = "w_f"
    nodes.append(helper.make_node("Conv", ["x", conv_w], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _pruned(rng, fraction: float) -> np.ndarray:
    w = rng.normal(size=(8, 4, 3, 3)).astype(np.float32)
    w[np.abs(w) < np.quantile(np.abs(w), fraction)] = 0.0
    return w


def test_densified_weights_fail_and_kept_zeros_pass(tmp_path):
    rng = np.random.default_rng(0)
    w = _pruned(rng, 0.75)
    source = sparsity.summary([sparsity.StoredTensor("w", w)])
    assert source["sparsity"] == pytest.approx(0.75, abs=0.01)
    kept, _ = sparsity.verdict(False, source, sparsity.summary(onnx_weights(_onnx(tmp_path, w))))
    assert kept
    dense = w + np.where(w == 0, 1e-6, 0).astype(np.float32)  # zeros replaced by tiny values: densified
    kept, why = sparsity.verdict(False, source, sparsity.summary(onnx_weights(_onnx(tmp_path, dense))))
    assert not kept and "densified" in why


def test_quantized_zero_is_the_zero_point(tmp_path):
    """uint8 weights with zero point 128 are zero at 128: read as 0 the check would call them dense."""
    rng = np.random.default_rng(1)
    w = _pruned(rng, 0.5)
    q = np.clip(np.round(w / 0.01) + 128, 0, 255).astype(np.uint8)
    stored = sparsity.summary(onnx_weights(_onnx(tmp_path, q, zero_point=128)))
    assert stored["sparsity"] >= 0.5
    per_channel = sparsity.StoredTensor("w", q, np.full(8, 128, np.uint8), 0)
    assert sparsity.summary([per_channel])["sparsity"] == stored["sparsity"]


def test_structured_pruning_judged_by_weights_left():
    source = {"params_ratio": 0.25}
    kept, _ = sparsity.verdict(True, source, {"weight_elements": 250}, {"weight_elements": 1000})
    assert kept
    kept, why = sparsity.verdict(True, source, {"weight_elements": 1000}, {"weight_elements": 1000})
    assert not kept and "1.000" in why
