"""The openvino format's promises that a matrix row cannot show: an "fp32" artifact runs in f32 whatever the
CPU offers (OpenVINO's default is bf16 where the CPU has it), the IR keeps fp32 weights, its size counts
the weights file, and outputs cached per CPU are keyed by the oneDNN ISA cap the run is under."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.selftest


def _small_net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Hardswish(),
                               torch.nn.Conv2d(8, 8, 3, groups=8, padding=1), torch.nn.ReLU6(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()


def test_an_fp32_ir_runs_in_f32_with_fp32_weights(tmp_path):
    ov = pytest.importorskip("openvino")
    import torch

    from converters.formats.openvino import OpenVinoRunner

    net, x = _small_net(), np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    model = ov.convert_model(net, example_input=torch.from_numpy(x), input=[list(x.shape)])
    model.inputs[0].get_tensor().set_names({"input"})
    path = tmp_path / "model.xml"
    ov.save_model(model, str(path), compress_to_fp16=False)
    weights = [op for op in ov.Core().read_model(str(path)).get_ops() if op.get_type_name() == "Constant"
               and op.get_output_element_type(0) != ov.Type.i64 and op.get_output_element_type(0) != ov.Type.i32]
    assert weights and all(op.get_output_element_type(0) == ov.Type.f32 for op in weights)

    runner = OpenVinoRunner(path, None, threads=1)
    assert runner.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    runner.set_input(x)
    runner.invoke()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert np.abs(runner.get_output() - expected).max() < 1e-5  # bf16 is ~1e-3 off here


def test_the_artifact_size_counts_the_weights_beside_the_ir(tmp_path):
    from converters.pipeline import Pipeline

    (tmp_path / "model.xml").write_bytes(b"x" * 10)
    (tmp_path / "model.bin").write_bytes(b"x" * 1000)
    (tmp_path / "other.bin").write_bytes(b"x" * 5)

    class Stub:
        def artifact(self, case):
            return tmp_path / "model.xml"

    assert Pipeline.artifact_size(Stub(), None) == 1010


def test_outputs_cached_per_cpu_are_keyed_by_the_isa_cap(monkeypatch):
    from converters import latency

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    native = latency.kernel_identity()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert latency.kernel_identity() == [*native, "ONEDNN_MAX_CPU_ISA=AVX2"]
