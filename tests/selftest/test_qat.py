"""The QAT check (compare.qat, tests/test_qat.py) finds a QAT model's learned scales in the graph it exports
and in OpenVINO's reading of it, and calls a graph whose scales were calibrated again re-quantized, even
when they are within 1 % of the learned ones. And the excess-error metric ignores float32 round-off."""
from __future__ import annotations

import numpy as np
import pytest

from compare import qat as rules
from compare.metrics import excess_error_db
from compare.verdict import judge

pytestmark = pytest.mark.selftest


def _qat_graph(tmp_path):
    """A small conv net through the suite's QAT flow (models.qat: folded, prepared, observed on a few
    inputs, observers frozen), exported as QDQ ONNX; returns (learned activation scales, onnx path)."""
    import torch
    from torch import nn

    from models import qat

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                        nn.Conv2d(8, 4, 1), nn.ReLU()).eval()
    prepared = qat.prepare(qat.folded(net), (1, 3, 8, 8))
    with torch.no_grad():
        for _ in range(4):
            prepared(torch.randn(2, 3, 8, 8))
    state = prepared.state_dict()
    learned = qat.activation_scales(state)
    path = tmp_path / "qat.onnx"

    class _Subject:  # what export_qdq reads of a subject
        @staticmethod
        def input_shapes(batch):
            return [(batch, 3, 8, 8)]

        @staticmethod
        def input_names():
            return ["input"]

    from converters.qat_onnx import export_qdq

    quantized = qat.quantized_network(qat.folded(net), state, (1, 3, 8, 8))
    export_qdq(quantized, _Subject(), path)
    return learned, path


def test_exported_graph_keeps_the_learned_scales_and_a_recalibrated_one_does_not(tmp_path):
    import onnx
    from onnx import numpy_helper

    from converters.stored_weights import onnx_activation_scales

    learned, path = _qat_graph(tmp_path)
    assert len(learned) >= 3
    assert rules.kept_fraction(learned, onnx_activation_scales(path)) == 1.0
    model = onnx.load(str(path))  # every activation scale 1 % off: what a recalibration close to QAT gives
    scales = {n.input[1] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    for init in model.graph.initializer:
        if init.name in scales and np.size(numpy_helper.to_array(init)) == 1:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.01), init.name))
    onnx.save(model, str(tmp_path / "recalibrated.onnx"))
    kept = rules.kept_fraction(learned, onnx_activation_scales(tmp_path / "recalibrated.onnx"))
    assert kept == 0.0
    verdict = judge("x-onnx-int8", "qat", {"scales_kept": kept}, rules.budget())
    assert not verdict.passed and "min_scales_kept" in verdict.message()


def test_openvino_reading_of_the_graph_keeps_the_learned_scales(tmp_path):
    pytest.importorskip("openvino")
    import openvino as ov

    from converters.stored_weights import openvino_activation_scales

    learned, path = _qat_graph(tmp_path)
    ov.save_model(ov.convert_model(str(path)), str(tmp_path / "model.xml"), compress_to_fp16=False)
    assert rules.kept_fraction(learned, openvino_activation_scales(tmp_path / "model.xml")) == 1.0


def test_kept_fraction_counts_each_learned_scale():
    learned = [0.01, 0.02, 0.04, 0.08]
    assert rules.kept_fraction(learned, [0.08, 0.02]) == 0.5
    assert rules.kept_fraction(learned, [0.02 * (1 + 3e-6), 0.04 * (1 - 3e-6)]) == 0.5  # float32 round trips
    assert rules.kept_fraction(learned, []) == 0.0
    with pytest.raises(ValueError, match="no learned activation scales"):
        rules.kept_fraction([], [0.1])


def test_excess_error_is_zero_at_float32_round_off():
    rng = np.random.default_rng(0)
    expected = rng.normal(size=(32, 10))
    reference = expected + rng.normal(size=expected.shape) * 1e-7  # ~140 dB
    actual = expected + rng.normal(size=expected.shape) * 5e-7  # ~126 dB: 14 dB "worse", both round-off
    assert excess_error_db(expected, reference, actual) > 10
    assert excess_error_db(expected, reference, actual, float_floor_db=80.0) == 0.0
    quantized = expected + rng.normal(size=expected.shape) * 0.05  # ~26 dB: judged as before
    assert excess_error_db(expected, reference, quantized, float_floor_db=80.0) > 50
