"""TFLite through onnxslim + onnx2tf: the `tflite` step (converters.tflite_convert: one onnx2tf run for
every variant), the `tflite_reference` step (converters.tflite_simulation) and the runner
(converters.tflite_runtime: the ai-edge-litert Interpreter)."""
from __future__ import annotations

from converters import stored_weights, tflite_convert, tflite_runtime, tflite_simulation
from converters.formats import CALIBRATION, Format, Step, register
from converters.formats import onnxrt  # noqa: F401  (the onnx step this format converts from)

TOOLS = ("onnx", "onnxslim", "onnx2tf", "tensorflow", "tf_keras", "ai-edge-litert", "numpy")
REFERENCE_PRECISIONS = ("fp16", "dynamic_int8", "int8", "full_int8", "int16x8")
CONVERT = Step("tflite", tflite_convert.build, needs=("onnx", CALIBRATION), tools=TOOLS,
               options={"quant_type": "per-channel"})
SIMULATE = Step("tflite_reference", tflite_simulation.simulate, needs=("tflite",), tools=TOOLS,
                options={"precisions": REFERENCE_PRECISIONS})
register(Format("tflite", {p: ("tflite", f"{tflite_convert.SAVED_MODEL_DIR}/{f}")
                           for p, f in tflite_convert.PRECISION_FILES.items()},
                tflite_runtime.TFLiteRunner, steps=(CONVERT, SIMULATE),
                references={p: ("tflite_reference", f"reference_{p}.tflite") for p in REFERENCE_PRECISIONS},
                reference_runner=tflite_runtime.reference_runner, weights=stored_weights.tflite_weights,
                scales=stored_weights.tflite_activation_scales))
