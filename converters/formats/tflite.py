"""TFLite through onnxslim + onnx2tf. build = one onnx2tf run that writes the SavedModel and every TFLite variant
(fp32, fp16, dynamic-range, integer and int16x8, float or integer I/O); run = the ai-edge-litert
Interpreter with NCHW->NHWC on the way in and the tensors' own scale/zero point for integer I/O."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from converters.formats import CALIBRATION, Format, Step, register
from converters.formats import onnxrt
from converters.formats.onnxrt import constant_error

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
    deps = params["deps"]
    source = out_dir / onnxrt.ONNX_FILE
    onnx.save(onnxslim.slim(onnx.load(str(Path(deps["onnx"]) / onnxrt.ONNX_FILE))), str(source))

    calib = np.load(Path(deps[CALIBRATION]) / onnxrt.CALIBRATION_FILE)
    calib_nhwc = calib.transpose(0, 2, 3, 1).astype(np.float32)
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

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
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


# --- the simulated-quantization reference -----------------------------------------------------------------
# TFLite type codes (schema TensorType) -> numpy
_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64, 7: np.int16, 9: np.int8}
QUANTIZE, DEQUANTIZE = 114, 6
WEIGHTED_OPS = (3, 4, 9, 67)  # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV


def _opcode(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _constant(model, graph, index) -> np.ndarray | None:
    tensor = graph.tensors[index]
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    return np.frombuffer(bytes(data), _TYPES[tensor.type]).reshape(tensor.shape)


def _stored(quantized: np.ndarray, tensor) -> tuple[np.ndarray, np.ndarray]:
    """A quantized (or float16) constant as the float values it stands for, and the size of one step of its
    grid at each element."""
    if quantized.dtype == np.float16:
        values = quantized.astype(np.float64)
        return values, np.spacing(np.abs(quantized)).astype(np.float64)
    params = tensor.quantization
    scale, zero = np.asarray(params.scale, np.float64), np.asarray(params.zeroPoint, np.float64)
    shape = [1] * quantized.ndim
    if scale.size > 1:
        shape[params.quantizedDimension] = -1
    step = np.broadcast_to(scale.reshape(shape), quantized.shape)
    return (quantized.astype(np.float64) - zero.reshape(shape)) * scale.reshape(shape), step


def simulated(float_path: Path, quant_path: Path):
    """The float model of the same conversion computing what the quantized model stands for: every constant
    the quantized model stores as int8/int16/int32 or float16 replaced by the values it dequantizes to, and
    every activation it quantizes passed through a QUANTIZE/DEQUANTIZE pair with its scale and zero point.
    Ops are matched by their order and type (the quantizer keeps the graph's op sequence and adds QUANTIZE/
    DEQUANTIZE at its edges and for float16 constants). Returns (model, worst constant error in steps, the
    tensor): each stored constant against the float value it stands for."""
    import difflib
    import copy

    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    fm, qm = flatbuffer_utils.read_model(str(float_path)), flatbuffer_utils.read_model(str(quant_path))
    fg, qg = fm.subgraphs[0], qm.subgraphs[0]
    f_ops, q_ops = [_opcode(fm, o) for o in fg.operators], [_opcode(qm, o) for o in qg.operators]
    producer = {t: op for op in qg.operators for t in op.outputs}
    pairs = {}  # quantized activation tensor -> float tensor
    fake_after: dict[int, object] = {}  # float activation tensor -> the quantized tensor whose params apply
    worst = (0.0, "")
    for block in difflib.SequenceMatcher(None, f_ops, q_ops, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            f_op, q_op = fg.operators[block.a + k], qg.operators[block.b + k]
            weighted = _opcode(fm, f_op) in WEIGHTED_OPS
            for i, (qt, ft) in enumerate(zip(q_op.inputs, f_op.inputs)):
                if qt < 0 or ft < 0 or list(qg.tensors[qt].shape) != list(fg.tensors[ft].shape):
                    continue
                value = _constant(fm, fg, ft)
                if value is None:
                    pairs.setdefault(qt, ft)
                    continue
                source = qt  # a float16 or int8 constant may be dequantized at run time
                if qt in producer and _opcode(qm, producer[qt]) == DEQUANTIZE:
                    source = producer[qt].inputs[0]
                src, quantized = qg.tensors[source], _constant(qm, qg, source)
                quantized_src = src.quantization is not None and src.quantization.scale is not None
                if quantized is None or not (src.type == 1 or quantized_src) or quantized.shape != value.shape:
                    continue
                stored, step = _stored(quantized, src)
                # filters and biases have grids chosen for them, so each must round to its nearest step
                # (other constants share an activation's grid and may be clipped by design)
                if weighted and i in (1, 2):
                    error = constant_error(stored, step, value.astype(np.float64))
                    worst = max(worst, (error, fg.tensors[ft].name.decode(errors="replace")))
                # a copy per op: the float model shares equal constants, the quantized one gives each op its grid
                own = copy.deepcopy(fg.tensors[ft])
                fm.buffers.append(schema.BufferT())
                fm.buffers[-1].data = np.frombuffer(stored.astype(np.float32).tobytes(), np.uint8)
                own.buffer, own.type = len(fm.buffers) - 1, 0
                fg.tensors.append(own)
                f_op.inputs[i] = len(fg.tensors) - 1
            for qt, ft in zip(q_op.outputs, f_op.outputs):
                if qt >= 0 and ft >= 0 and list(qg.tensors[qt].shape) == list(fg.tensors[ft].shape):
                    pairs.setdefault(qt, ft)
    for qt, ft in pairs.items():
        q_tensor = qg.tensors[qt]
        if q_tensor.quantization is not None and q_tensor.quantization.scale is not None and q_tensor.type in (7, 9):
            fake_after.setdefault(ft, q_tensor)
    codes = {}
    for code in (QUANTIZE, DEQUANTIZE):
        donor = next((c for c in qm.operatorCodes if max(c.builtinCode, c.deprecatedBuiltinCode) == code), None)
        fm.operatorCodes.append(copy.deepcopy(donor) if donor is not None else schema.OperatorCodeT())
        fm.operatorCodes[-1].builtinCode = fm.operatorCodes[-1].deprecatedBuiltinCode = code
        fm.operatorCodes[-1].version = max(1, fm.operatorCodes[-1].version or 1)
        codes[code] = len(fm.operatorCodes) - 1
    restored = {}
    inserted: dict[int, list] = {}
    for ft, q_tensor in fake_after.items():
        base = fg.tensors[ft]
        quantized = copy.deepcopy(q_tensor)
        quantized.name, quantized.buffer = base.name + b"_sim_q", 0
        back = copy.deepcopy(base)
        back.name, back.quantization = base.name + b"_sim_dq", None
        fg.tensors += [quantized, back]
        qi, di = len(fg.tensors) - 2, len(fg.tensors) - 1
        ops = []
        for code, inputs, outputs in ((QUANTIZE, [ft], [qi]), (DEQUANTIZE, [qi], [di])):
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = codes[code], inputs, outputs
            ops.append(op)
        inserted[ft] = ops
        restored[ft] = di
    for op in fg.operators:
        op.inputs = [restored.get(t, t) for t in op.inputs]
    order = [op for t in fg.inputs for op in inserted.get(t, [])]
    for op in fg.operators:
        order.append(op)
        order += [new for t in op.outputs for new in inserted.get(t, [])]
    fg.operators = order
    fg.outputs = [restored.get(t, t) for t in fg.outputs]
    return fm, worst[0], worst[1]


def simulate(params: dict, out_dir: Path) -> None:
    """Write the simulated reference of every non-fp32 TFLite variant (see `simulated`) and beside each a
    .json with its worst quantized constant against the float value it stands for."""
    from tensorflow.lite.tools import flatbuffer_utils

    import json

    saved_model = Path(params["deps"]["tflite"]) / SAVED_MODEL_DIR
    for precision in REFERENCE_PRECISIONS:
        model, error, tensor = simulated(saved_model / PRECISION_FILES["fp32"], saved_model / PRECISION_FILES[precision])
        flatbuffer_utils.write_model(model, str(out_dir / f"reference_{precision}.tflite"))
        (out_dir / f"reference_{precision}.json").write_text(
            json.dumps({"constant_error_steps": error, "worst_constant": tensor}))


def reference_runner(path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
    """Runs a simulated reference with TFLite's builtin float kernels (no XNNPACK rewrites)."""
    return TFLiteRunner(path, subject_params, threads, optimized=False)


TOOLS = ("onnx", "onnxslim", "onnx2tf", "tensorflow", "tf_keras", "ai-edge-litert", "numpy")
REFERENCE_PRECISIONS = ("fp16", "dynamic_int8", "int8", "full_int8", "int16x8")
CONVERT = Step("tflite", build, needs=("onnx", CALIBRATION), tools=TOOLS, options={"quant_type": "per-channel"})
SIMULATE = Step("tflite_reference", simulate, needs=("tflite",), tools=TOOLS)
register(Format("tflite", {p: ("tflite", f"{SAVED_MODEL_DIR}/{f}") for p, f in PRECISION_FILES.items()},
                TFLiteRunner, steps=(CONVERT, SIMULATE),
                references={p: ("tflite_reference", f"reference_{p}.tflite") for p in REFERENCE_PRECISIONS},
                reference_runner=reference_runner))
