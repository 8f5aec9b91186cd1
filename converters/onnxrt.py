"""ONNX and onnxruntime. build = export with the legacy TorchScript exporter (dynamo=False, opset 17:
about 10x faster than dynamo, one deterministic file) and onnxruntime.quantization's static QDQ and
dynamic int8; run = an onnxruntime CPU session with explicit thread counts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters import pytorch

ONNX_FILE = "model.onnx"
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def export(params: dict, out_dir: Path) -> None:
    import onnx
    import torch

    net = pytorch.load(params["subject"], Path(params["weights_file"]))
    size = params["input_size"]
    dummy = torch.zeros(1, 3, size, size)
    torch.onnx.export(net, (dummy,), str(out_dir / ONNX_FILE), dynamo=False, opset_version=OPSET,
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True)
    onnx.checker.check_model(str(out_dir / ONNX_FILE))


class _Calibration:
    """onnxruntime CalibrationDataReader over an NCHW .npy file, one sample per batch."""

    def __init__(self, path: str):
        self.data = np.load(path)
        self.i = 0

    def get_next(self):
        if self.i >= len(self.data):
            return None
        self.i += 1
        return {INPUT_NAME: self.data[self.i - 1:self.i]}

    def rewind(self):
        self.i = 0


def _preprocessed(params: dict, out_dir: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out_dir / "preprocessed.onnx"
    quant_pre_process(params["onnx_file"], str(pre))
    return pre


def quantize_static(params: dict, out_dir: Path) -> None:
    """Static QDQ int8: per-channel s8 weights, u8 activations, reduce_range (measured the fastest and
    most accurate combination on AVX2 without VNNI), MinMax calibration on the suite's calibration set."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static as qs

    pre = _preprocessed(params, out_dir)
    qs(str(pre), str(out_dir / ONNX_FILE), _Calibration(params["calibration_file"]),
       quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
       weight_type=QuantType.QInt8, reduce_range=True, calibrate_method=CalibrationMethod.MinMax)
    pre.unlink()


def quantize_dynamic(params: dict, out_dir: Path) -> None:
    """Dynamic-range int8: weights quantized offline, activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic as qd

    pre = _preprocessed(params, out_dir)
    qd(str(pre), str(out_dir / ONNX_FILE), weight_type=QuantType.QInt8)
    pre.unlink()


class OrtRunner:
    """onnxruntime CPU session; `invoke` (session.run) is the only timed call. optimized=False keeps only
    basic graph rewrites (no NCHWc layout kernels): a genuine slowdown, measured 2.5x on MobileNetV2."""

    def __init__(self, path: Path, threads: int, optimized: bool = True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if not optimized:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.threads = threads
        self._feed = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        self._feed = {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}

    def invoke(self) -> None:
        self._y = self.session.run(None, self._feed)[0]

    def get_output(self) -> np.ndarray:
        return self._y
