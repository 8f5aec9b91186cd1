"""TFLite through onnxslim + onnx2tf: one onnx2tf run writes the SavedModel and every TFLite variant (fp32,
fp16, dynamic-range, integer and int16x8, float or integer I/O)."""
from __future__ import annotations

import hashlib
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from converters.onnx_names import CALIBRATION_FILE, ONNX_FILE, graph_inputs
from models.packing import split_inputs

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
# Calibrate each float model once and skip the unused int16-I/O variant (_calibrate_once); a self-test turns it
# off to check that the files are the same either way.
CALIBRATE_ONCE = True
# onnx2tf fetches this file from GitHub for any 4-D 3-channel input unless it is in the working directory.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


@contextmanager
def _calibrate_once():
    """While onnx2tf writes its integer variants: calibrate each float model once, and skip the variant no
    precision uses. onnx2tf converts the SavedModel four times with the same representative dataset (int8,
    full int8, int16x8, int16x8 with int16 I/O), and TensorFlow's converter calibrates for each, twice for
    the int16 ones (a calibration whose result its int16 path then discards, and its own): six passes of
    the 32 calibration samples through the float model on reference kernels, 10 of MobileNetV2's 30 s.
    Calibration is deterministic (per-tensor min/max of the same samples through the same model), so a
    second pass over the same model bytes returns the first one's result: the .tflite files are byte for
    byte what onnx2tf writes without this (tests/selftest/test_tflite_convert.py). The int16-I/O variant is
    refused with a RuntimeError, which onnx2tf catches and logs as a failed variant."""
    import tensorflow as tf
    from tensorflow.lite.python import lite
    from tensorflow.lite.python.optimize import calibrator

    calibrate, convert = calibrator.Calibrator.calibrate, lite.TFLiteSavedModelConverterV2.convert
    done: dict[str, bytes] = {}

    def calibrate_once(self, dataset_gen):
        key = hashlib.sha256(self._model_content).hexdigest()
        if key not in done:
            done[key] = calibrate(self, dataset_gen)
        return done[key]

    def convert_used(self):
        if self.inference_input_type == tf.int16 and self.inference_output_type == tf.int16:
            print("convsuite: skipping onnx2tf's int16-activation variant with int16 I/O, which no precision uses "
                  "(onnx2tf logs it as failed)", flush=True)
            raise RuntimeError("convsuite: int16 I/O variant not built")
        return convert(self)

    calibrator.Calibrator.calibrate, lite.TFLiteSavedModelConverterV2.convert = calibrate_once, convert_used
    try:
        yield
    finally:
        calibrator.Calibrator.calibrate, lite.TFLiteSavedModelConverterV2.convert = calibrate, convert


def build(params: dict, out_dir: Path) -> None:
    import onnx
    import onnx2tf
    import onnxslim

    # onnx2tf gets a private copy: it rewrites its input file in place (op names), which must never
    # happen to a cached artifact. onnxslim first folds the legacy exporter's dynamic Pad subgraph
    # (TF-"SAME" stride-2 padding) into constant pads: onnx2tf 1.28.8 transposes the dynamic form wrongly
    # (pads land on N and H, measured: EfficientNet-Lite0 output [10, 1000] instead of [1, 1000]).
    deps = params["deps"]
    source = out_dir / ONNX_FILE
    onnx.save(onnxslim.slim(onnx.load(str(Path(deps["onnx"]) / ONNX_FILE))), str(source))

    # One calibration file per graph input, NHWC for 4-D inputs (onnx2tf's layout), under the input's name.
    inputs = graph_inputs(source)
    calib = np.load(Path(deps["calibration"]) / CALIBRATION_FILE)
    arrays = split_inputs(calib, [shape for _, shape in inputs])
    custom, written = [], []
    for (name, _), array in zip(inputs, arrays):
        nhwc = (array.transpose(0, 2, 3, 1) if array.ndim == 4 else array).astype(np.float32)
        path = out_dir / f"calibration_{name}_nhwc.npy"
        np.save(path, nhwc)
        written.append(path)
        # The calibration arrays are normalized already, so mean 0 / std 1 makes onnx2tf use them as they are.
        channels = (1,) * (nhwc.ndim - 1) + nhwc.shape[-1:]  # one mean / std per channel (a 1-channel input)
        custom.append([name, str(path), np.zeros(channels, np.float32), np.ones(channels, np.float32)])
    # Our own (already normalized) crops under the sample file's name: onnx2tf then never touches the
    # network, and its internal dummy inference sees the same data as the calibration.
    shutil.copyfile(written[0], out_dir / ONNX2TF_SAMPLE_FILE)
    saved_model = out_dir / SAVED_MODEL_DIR
    if CALIBRATE_ONCE:
        with _calibrate_once():
            _onnx2tf(onnx2tf, source, saved_model, custom)
    else:
        _onnx2tf(onnx2tf, source, saved_model, custom)
    for f in (*written, out_dir / ONNX2TF_SAMPLE_FILE, source):
        f.unlink()
    for f in saved_model.glob("*.tflite"):  # any variant no precision uses
        if f.name not in PRECISION_FILES.values():
            f.unlink()
    missing = [name for name in PRECISION_FILES.values() if not (saved_model / name).is_file()]
    if missing:
        raise RuntimeError(f"onnx2tf finished but did not write {missing}")


def _onnx2tf(onnx2tf, source: Path, saved_model: Path, custom: list) -> None:
    onnx2tf.convert(
        input_onnx_file_path=str(source),
        output_folder_path=str(saved_model),
        output_signaturedefs=True,
        not_use_onnxsim=True,  # onnxsim is not a dependency; the legacy exporter's graph needs no cleanup
        output_integer_quantized_tflite=True,
        output_dynamic_range_quantized_tflite=True,
        quant_type="per-channel",
        custom_input_op_name_np_data_path=custom,
        non_verbose=False,
        verbosity="info",
    )
