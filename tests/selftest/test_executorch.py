"""The executorch format's own machinery on small modules (in `tox -e executorch` and CI's executorch pass;
skipped where ExecuTorch is not installed): a .pte the runtime refuses is a failed conversion, not a runner
error, and the int8 reference (the PT2E graph in PyTorch) is what the .pte computes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.selftest
pytest.importorskip("executorch")
torch = pytest.importorskip("torch")


class _Head(torch.nn.Module):
    """A feature conv and a 1x1 classifier; `shared` applies the same classifier at a second, pooled scale
    (the SSDLite example's net.cls), otherwise a separate one."""

    def __init__(self, shared: bool):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.cls = torch.nn.Conv2d(16, 5, 1)
        self.cls2 = self.cls if shared else torch.nn.Conv2d(16, 5, 1)

    def forward(self, x):
        f = torch.relu(self.features(x))
        pooled = torch.nn.functional.avg_pool2d(f, 2, 2)
        return torch.cat([self.cls(f).flatten(1), self.cls2(pooled).flatten(1)], 1)


def _int8(net, out_dir, shape=(1, 3, 16, 16)):
    """The executorch_int8 step's recipe on random calibration data; returns the quantized graph's path."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from converters.formats import executorch

    torch.manual_seed(0)
    sample = (torch.zeros(shape),)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    graph = prepare_pt2e(torch.export.export(net.eval(), sample).module(), quantizer)
    with torch.no_grad():
        for _ in range(8):
            graph(torch.randn(shape))
    exported = torch.export.export(convert_pt2e(graph), sample)
    torch.export.save(exported, str(out_dir / executorch.REFERENCE_FILE))
    executorch._lower(SimpleNamespace(model="head"), exported, out_dir)
    return out_dir / executorch.REFERENCE_FILE


def test_a_pte_the_runtime_refuses_is_a_failed_conversion(tmp_path):
    """The ssdlite_mobilenet_v2-executorch-int8 mechanism: the quantizer annotates a shared convolution's
    first use only, and XNNPACK refuses the float one when the method loads. A separate convolution loads."""
    (tmp_path / "separate").mkdir()
    _int8(_Head(shared=False), tmp_path / "separate")
    (tmp_path / "shared").mkdir()
    with pytest.raises(RuntimeError, match="does not load in the ExecuTorch runtime"):
        _int8(_Head(shared=True), tmp_path / "shared")


def test_the_int8_reference_is_what_the_pte_computes(tmp_path):
    """The .pte and its reference agree to integer rounding, and are far closer to each other than either
    is to the float module (a reference that were the float module would not be)."""
    from converters import predict
    from converters.formats.executorch import MODEL_FILE, ExecuTorchRunner, QuantizedGraphRunner

    net = _Head(shared=False)
    reference = _int8(net, tmp_path)
    x = np.random.default_rng(1).standard_normal((8, 3, 16, 16)).astype(np.float32)
    artifact = predict(ExecuTorchRunner(tmp_path / MODEL_FILE), x)
    simulated = predict(QuantizedGraphRunner(reference), x)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()

    def noise(a, b):
        return float(np.sum((a - b) ** 2) / np.sum(b ** 2))

    assert noise(artifact, simulated) < noise(simulated, y) / 10
    assert noise(simulated, y) > 0  # quantized: not the float module
