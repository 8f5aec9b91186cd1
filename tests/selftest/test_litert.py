"""The litert format's own machinery on small modules converted by litert-torch (in `tox -e litert`; skipped
where litert-torch is not installed): the runner feeds the module's NCHW layout, the simulated reference is
withheld where the float and int8 graphs' ops differ, and the levers script's bias rescaling puts every
int32 bias on the grid TFLite's integer kernels assume."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.selftest
litert_torch = pytest.importorskip("litert_torch")
torch = pytest.importorskip("torch")


def _float(module, path, shape=(1, 3, 16, 16)):
    litert_torch.convert(module.eval(), (torch.zeros(shape),)).export(str(path))
    return path


def _int8(module, path, shape=(1, 3, 16, 16)):
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    sample = (torch.zeros(shape),)
    graph = prepare_pt2e(torch.export.export(module.eval(), sample).module(), quantizer)
    with torch.no_grad():
        for _ in range(8):
            graph(torch.rand(shape) * 2 - 1)
    graph = convert_pt2e(graph, fold_quantize=False)
    litert_torch.convert(graph, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
    return path


def _net(*layers):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), *layers)


def test_the_runner_feeds_the_modules_own_layout(tmp_path):
    from converters.formats.litert import LiteRtRunner
    from converters import predict

    net = _net(torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))  # a 4-D output: no transpose on the way out either
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    y = predict(LiteRtRunner(_float(net, tmp_path / "f.tflite")), x)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy().reshape(len(x), -1)  # predict packs each sample's output
    assert y.shape == expected.shape and np.abs(y - expected).max() < 1e-4  # NHWC order would differ


def test_a_reference_is_withheld_where_the_int8_graphs_ops_differ(tmp_path):
    """A hard-sigmoid's +3 is folded into the convolution's bias at fp32 and kept as an ADD at int8 (as in
    MobileNetV3's squeeze-excite gates): no simulation pairs those graphs. A ReLU network's graphs match."""
    from converters.formats.litert import _op_difference

    gate = _net(torch.nn.Hardsigmoid())
    assert "ADD" in _op_difference(_float(gate, tmp_path / "gf.tflite"), _int8(gate, tmp_path / "gq.tflite"))
    plain = _net(torch.nn.ReLU())
    assert _op_difference(_float(plain, tmp_path / "pf.tflite"), _int8(plain, tmp_path / "pq.tflite")) == ""


def test_rescaled_biases_sit_on_the_input_x_weight_grid_and_keep_their_values(tmp_path):
    """litert-torch's int8 classifier after a global mean (the zoo's head) is where its bias scale was
    measured off the grid; whatever the converter writes, the rescaled file has every bias on it."""
    from tensorflow.lite.tools import flatbuffer_utils

    from scripts.litert_levers import bias_scales, rescale_biases

    head = _net(torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
    with torch.no_grad():
        head[-1].bias.uniform_(-2, 2)
    source = _int8(head, tmp_path / "q.tflite")
    rescale_biases(source, tmp_path / "r.tflite")
    assert bias_scales(flatbuffer_utils.read_model(str(tmp_path / "r.tflite"))) == []

    def biases(path):
        model = flatbuffer_utils.read_model(str(path))
        graph = model.subgraphs[0]
        out = []
        for op in graph.operators:
            if len(op.inputs) > 2 and op.inputs[2] >= 0 and graph.tensors[op.inputs[2]].type == 2:
                tensor = graph.tensors[op.inputs[2]]
                raw = np.asarray(model.buffers[tensor.buffer].data, np.uint8).tobytes()
                scale = np.asarray(tensor.quantization.scale)
                out.append((np.frombuffer(raw, np.int32) * scale, scale))
        return out

    for (before, _), (after, step) in zip(biases(source), biases(tmp_path / "r.tflite")):
        assert np.all(np.abs(after - before) <= step / 2 + 1e-12)
