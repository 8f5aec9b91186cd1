"""TFLite through onnxslim + onnx2tf. build = one onnx2tf run that writes the SavedModel and every TFLite variant
(fp32, fp16, dynamic-range, integer and int16x8, float or integer I/O); run = the ai-edge-litert
Interpreter with NCHW->NHWC on the way in and the tensors' own scale/zero point for integer I/O."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from converters import onnxrt

SAVED_MODEL_DIR = "saved_model"
# precision -> the file onnx2tf writes for it ("model" is the ONNX file's stem)
PRECISION_FILES = {
    "fp32": "model_float32.tflite",
    "fp16": "model_float16.tflite",
    "dynamic_int8": "model_dynamic_range_quant.tflite",
    "int8": "model_integer_quant.tflite",  # integer kernels, float32 input and output
    "full_int8": "model_full_integer_quant.tflite",  # int8 input and output tensors
    "int16x8": "model_integer_quant_with_int16_act.tflite",  # int16 activations, int8 weights
}
# onnx2tf fetches this file from GitHub for any 4-D 3-channel input unless it is in the working directory.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def build(params: dict, out_dir: Path) -> None:
    import onnx
    import onnx2tf
    import onnxslim

    # onnx2tf gets a private copy: it rewrites its input file in place (op names), which must never
    # happen to a cached artifact. onnxslim first folds the legacy exporter's dynamic Pad subgraph
    # (TF-"SAME" stride-2 padding) into constant pads: onnx2tf 1.28.8 transposes the dynamic form wrongly
    # (pads land on N and H, measured: EfficientNet-Lite0 output [10, 1000] instead of [1, 1000]).
    source = out_dir / onnxrt.ONNX_FILE
    onnx.save(onnxslim.slim(onnx.load(params["onnx_file"])), str(source))

    calib_nhwc = np.load(params["calibration_file"]).transpose(0, 2, 3, 1).astype(np.float32)
    calib_path = out_dir / "calibration_nhwc.npy"
    np.save(calib_path, calib_nhwc)
    # Our own (already normalized) crops under the sample file's name: onnx2tf then never touches the
    # network, and its internal dummy inference sees the same data as the calibration.
    shutil.copyfile(calib_path, out_dir / ONNX2TF_SAMPLE_FILE)
    # The calibration array is normalized already, so mean 0 / std 1 makes onnx2tf use it as is.
    zero, one = np.zeros((1, 1, 1, 3), np.float32), np.ones((1, 1, 1, 3), np.float32)
    saved_model = out_dir / SAVED_MODEL_DIR
    onnx2tf.convert(
        input_onnx_file_path=str(source),
        output_folder_path=str(saved_model),
        output_signaturedefs=True,
        not_use_onnxsim=True,  # onnxsim is not a dependency; the legacy exporter's graph needs no cleanup
        output_integer_quantized_tflite=True,
        output_dynamic_range_quantized_tflite=True,
        quant_type="per-channel",
        custom_input_op_name_np_data_path=[[onnxrt.INPUT_NAME, str(calib_path), zero, one]],
        non_verbose=False,
        verbosity="info",
    )
    for f in (calib_path, out_dir / ONNX2TF_SAMPLE_FILE, source):
        f.unlink()
    missing = [name for name in PRECISION_FILES.values() if not (saved_model / name).is_file()]
    if missing:
        raise RuntimeError(f"onnx2tf finished but did not write {missing}")


class TFLiteRunner:
    """ai-edge-litert Interpreter, batch 1, NHWC. `invoke` is the only timed call; (de)quantization of
    integer I/O happens in set_input / get_output with the tensors' own parameters. optimized=False runs
    the builtin kernels without the default XNNPACK delegate (a genuine slowdown)."""

    def __init__(self, path: Path, threads: int, optimized: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if optimized else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                       experimental_op_resolver_type=resolver)
        self.interpreter.allocate_tensors()
        self.threads = threads
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]

    @property
    def io_dtypes(self) -> tuple[str, str]:
        return np.dtype(self._in["dtype"]).name, np.dtype(self._out["dtype"]).name

    def set_input(self, x: np.ndarray) -> None:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=np.float32)
        self.interpreter.set_tensor(self._in["index"], quantize(x, self._in))

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_output(self) -> np.ndarray:
        return dequantize(self.interpreter.get_tensor(self._out["index"]), self._out)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
