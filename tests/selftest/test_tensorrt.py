"""The tensorrt format's parts that run without a GPU: where there is none its cases are skipped saying why
(not failed, not silently absent), and the QDQ graph its int8 engine is built from is one TensorRT takes
(symmetric int8, zero points 0, float biases) and computes what its simulated reference does."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.selftest
torch = pytest.importorskip("torch")


def test_without_a_gpu_its_cases_are_skipped_saying_why(monkeypatch):
    from converters.formats import get, tensorrt

    monkeypatch.setattr(tensorrt.shutil, "which", lambda name: None)
    tensorrt.gpu.cache_clear()
    try:
        fmt = get("tensorrt")
        reason = fmt.unavailable()
        assert reason and ("NVIDIA GPU" in reason or "pip install" in reason)
        if not fmt.missing_requirements():  # TensorRT installed here: the GPU check is what says no
            assert "NVIDIA GPU" in reason
    finally:
        tensorrt.gpu.cache_clear()


def test_a_missing_module_names_the_install(monkeypatch):
    from converters.formats import get

    fmt = get("tensorrt")
    monkeypatch.setattr(type(fmt), "missing_requirements", lambda self: ["tensorrt"])
    assert "needs tensorrt" in fmt.unavailable() and "pypi.nvidia.com" in fmt.unavailable()


def _exported(tmp_path):
    from converters.onnx_names import CALIBRATION_FILE, ONNX_FILE, OPSET

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU6(),
                              torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.Hardswish(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[-1].bias.uniform_(-1, 1)
    (tmp_path / "onnx").mkdir()
    (tmp_path / "calibration").mkdir()
    torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), str(tmp_path / "onnx" / ONNX_FILE), dynamo=False,
                      opset_version=OPSET, input_names=["input"], output_names=["logits"])
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calibration" / CALIBRATION_FILE, rng.standard_normal((16, 3, 16, 16)).astype(np.float32))
    return net, {"onnx": str(tmp_path / "onnx"), "calibration": str(tmp_path / "calibration")}


def test_the_qdq_graph_is_one_tensorrt_builds(tmp_path):
    import onnx
    from onnx import numpy_helper

    from converters.formats import tensorrt
    from converters.onnx_names import ONNX_FILE

    _, deps = _exported(tmp_path)
    out = tmp_path / "qdq"
    out.mkdir()
    tensorrt.quantize_qdq({"deps": deps}, out)
    model = onnx.load(str(out / ONNX_FILE))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for node in qdq:
        zero = inits[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), node.name  # symmetric int8: zero points 0
    quantized = {n.input[0] for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    assert quantized and all(inits[name].dtype == np.int8 for name in quantized)  # no int32 biases
    bias = next(n for n in model.graph.node if n.op_type == "Gemm").input[2]
    assert bias in inits and inits[bias].dtype == np.float32


def test_the_int8_reference_is_the_qdq_graph_in_float(tmp_path):
    """The simulated reference onnx-int8 uses, built from the TensorRT QDQ graph: close to the QDQ graph
    computed by onnxruntime, and near the float network (a broken reference would be neither)."""
    from converters import predict
    from converters.formats import onnxrt, tensorrt

    net, deps = _exported(tmp_path)
    (tmp_path / "qdq").mkdir()
    (tmp_path / "ref").mkdir()
    tensorrt.quantize_qdq({"deps": deps}, tmp_path / "qdq")
    onnxrt.simulate({"deps": {"tensorrt_qdq": str(tmp_path / "qdq")}, "options": {"of": "tensorrt_qdq"}},
                    tmp_path / "ref")
    x = np.random.default_rng(1).standard_normal((8, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    reference = predict(onnxrt.reference_runner(tmp_path / "ref" / onnxrt.REFERENCE_FILE), x)
    graph = predict(onnxrt.reference_runner(tmp_path / "qdq" / "model.onnx"), x)

    def snr(a, b):
        with np.errstate(divide="ignore"):
            return 10 * np.log10(np.sum(b ** 2) / np.sum((a - b) ** 2))

    assert snr(reference, graph) > 60  # the same quantization: rounding apart
    assert 15 < snr(reference, y) < 60  # quantized: near the float network, not equal to it
