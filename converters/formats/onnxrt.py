"""ONNX and onnxruntime. Steps: export with the legacy TorchScript exporter (dynamo=False, opset 17: about
10x faster than dynamo, one deterministic file), then onnxruntime.quantization's static QDQ and dynamic
int8; a QAT subject's int8 is its learned fake quantization exported as QDQ (onnx_qat, models.qat); the
runner is an onnxruntime CPU session with explicit thread counts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.metrics import constant_error
from converters import stored_weights
from converters.formats import CALIBRATION, Format, Step, register
from converters.formats import pytorch  # noqa: F401  (registers the weights step this format exports from)
from converters.torch_weights import WEIGHTS_FILE, load
from converters.onnx_names import CALIBRATION_FILE, INPUT_NAME, ONNX_FILE, OPSET, OUTPUT_NAME, graph_inputs

FLOAT_SOURCE_FILE = "float_source.onnx"  # the float graph the quantizer saw (after quant_pre_process)
REFERENCE_FILE = "reference.onnx"
TOOLS = ("torch", "onnx", "onnxruntime", "numpy")


def export(params: dict, out_dir: Path) -> None:
    import onnx
    import torch

    from models import Subject

    deps = params["deps"]
    subject = Subject.from_params(params["subject"])
    net = load(params["subject"], Path(deps["weights"]) / WEIGHTS_FILE)
    dummies = tuple(torch.zeros(shape) for shape in subject.input_shapes(1))
    names = [o.name for o in subject.outputs] if subject.user else [OUTPUT_NAME]
    try:
        torch.onnx.export(net, dummies, str(out_dir / ONNX_FILE), dynamo=False, opset_version=OPSET,
                          input_names=subject.input_names(), output_names=names, do_constant_folding=True)
    except Exception as exc:
        raise RuntimeError(f"model {subject.model!r} cannot be exported to ONNX (torch.onnx.export, TorchScript "
                           f"exporter, opset {OPSET}): {type(exc).__name__}: {exc}\nThe forward must be traceable "
                           "with a fixed input shape: no data-dependent Python control flow or output shapes, no "
                           "ops without an ONNX symbolic at this opset") from exc
    onnx.checker.check_model(str(out_dir / ONNX_FILE))
    exported = [name for name, _ in graph_inputs(out_dir / ONNX_FILE)]
    if exported != subject.input_names():  # an input forward ignores is dropped from the graph
        raise RuntimeError(f"model {subject.model!r}: the exported graph's inputs are {exported}, declared "
                           f"{subject.input_names()}: every declared input must be used by forward, in its order")


def export_qat(params: dict, out_dir: Path) -> None:
    """A QAT subject's learned fake quantization exported as QDQ ONNX (converters.qat_onnx): the int8
    artifact that carries QAT's scales, with nothing calibrated again."""
    from converters.qat_onnx import export_qdq
    from models import Subject, qat

    subject = Subject.from_params(params["subject"])
    net = load(params["subject"], Path(params["deps"]["weights"]) / WEIGHTS_FILE)
    quantized = qat.quantized_network(net, qat.shipped_state(subject), subject.input_shapes(1)[0])
    export_qdq(quantized, subject, out_dir / ONNX_FILE)


def feed(x: np.ndarray, inputs: list[tuple[str, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    """A session's feed from one array (one input) or rows of several inputs packed per sample
    (models.user.pack_inputs), split by the graph's own input names and shapes."""
    from models.packing import split_inputs

    return dict(zip([n for n, _ in inputs], split_inputs(x, [s for _, s in inputs])))


class _Calibration:
    """onnxruntime CalibrationDataReader over an NCHW .npy file (several inputs: packed per sample), one
    sample per batch."""

    def __init__(self, path: Path, model_path: Path | None = None):
        self.data = np.load(path)
        self.inputs = graph_inputs(model_path) if model_path is not None else [(INPUT_NAME, self.data.shape[1:])]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.data):
            return None
        self.i += 1
        return feed(self.data[self.i - 1:self.i], self.inputs)

    def rewind(self):
        self.i = 0


def _preprocessed(params: dict, out_dir: Path) -> Path:
    """quant_pre_process's float graph, kept beside the quantized one: the simulated reference starts there."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out_dir / FLOAT_SOURCE_FILE
    quant_pre_process(str(Path(params["deps"]["onnx"]) / ONNX_FILE), str(pre))
    return pre


def quantize_static(params: dict, out_dir: Path) -> None:
    """Static QDQ int8: per-channel s8 weights, u8 activations, reduce_range (measured the fastest and
    most accurate combination on AVX2 without VNNI), MinMax calibration on the suite's calibration set."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static as qs

    pre = _preprocessed(params, out_dir)
    calibration = Path(params["deps"][CALIBRATION]) / CALIBRATION_FILE
    qs(str(pre), str(out_dir / ONNX_FILE), _Calibration(calibration, pre),
       quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
       weight_type=QuantType.QInt8, reduce_range=True, calibrate_method=CalibrationMethod.MinMax)


def quantize_dynamic(params: dict, out_dir: Path) -> None:
    """Dynamic-range int8: weights quantized offline, activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic as qd

    pre = _preprocessed(params, out_dir)
    qd(str(pre), str(out_dir / ONNX_FILE), weight_type=QuantType.QInt8)


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    if np.size(scale) > 1:
        shape[axis] = -1
    return (q.astype(np.float64) - np.reshape(zero_point, shape)) * np.reshape(scale, shape).astype(np.float64)


def simulate(params: dict, out_dir: Path) -> None:
    """The simulated-quantization reference of a quantized ONNX artifact: the float graph it was quantized
    from, with every quantized constant replaced by the artifact's own dequantized values and a
    QuantizeLinear/DequantizeLinear pair on every activation the artifact quantizes statically, run in float
    with graph optimizations off. It is what the artifact computes by definition; the artifact's integer
    kernels differ from it by rounding only. Dynamic activation quantization (per call) is not simulated.
    Beside it, reference.json: the worst quantized constant against the float value it stands for."""
    import json

    import onnx
    from onnx import helper, numpy_helper

    entry = Path(params["deps"][params["options"]["of"]])
    model, source = onnx.load(str(entry / ONNX_FILE)), onnx.load(str(entry / FLOAT_SOURCE_FILE))
    inits = {i.name: i for i in model.graph.initializer}
    axes = {n.input[0]: next((a.i for a in n.attribute if a.name == "axis"), 1)
            for n in model.graph.node if n.op_type == "DequantizeLinear"}
    float_inits = {i.name: i for i in source.graph.initializer}
    weights = {n.input[i] for n in source.graph.node if n.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose")
               for i in (1, 2) if i < len(n.input)}
    # quantize_dynamic turns Gemm(transB=1) into MatMulInteger with the weight stored [in, out]; a square
    # weight has the same shape either way, so the layout comes from the graphs, not the shape (found by the
    # fuzz self-test: a 16x16 hidden fc simulated transposed)
    transposed_b = {n.input[1] for n in source.graph.node if n.op_type == "Gemm"
                    and any(a.name == "transB" and a.i == 1 for a in n.attribute)}
    matmul_b = {n.input[1] for n in model.graph.node if n.op_type in ("MatMulInteger", "MatMul", "DynamicQuantizeMatMul")}
    worst = (0.0, "")
    for name, init in inits.items():
        base = name.removesuffix("_quantized")
        if base == name or base not in float_inits:
            continue
        scale = numpy_helper.to_array(inits.get(f"{base}_scale") or inits[f"{name}_scale"])
        zero = numpy_helper.to_array(inits.get(f"{base}_zero_point") or inits[f"{name}_zero_point"])
        quantized, original = numpy_helper.to_array(init), numpy_helper.to_array(float_inits[base]).astype(np.float64)
        axis = axes.get(name, 0)
        stored = _dequantize(quantized, scale, zero, axis)
        step = np.broadcast_to(_dequantize(np.ones_like(quantized), scale, np.zeros_like(zero), axis), stored.shape)
        if (base in transposed_b and name in matmul_b) or (stored.shape != original.shape
                                                            and stored.T.shape == original.shape):
            stored, step = stored.T, step.T  # MatMulInteger's [in, out]
        if base in weights:
            worst = max(worst, (constant_error(stored, step, original), base))
        float_inits[base].CopyFrom(numpy_helper.from_array(stored.astype(np.float32), base))
    graph, outputs, done = source.graph, {o.name for o in source.graph.output}, set()
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    for node in [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]:
        # the quantizer renames a quantized graph output's producer tensor <output>_QuantizeLinear_Input
        tensor, scale, zero = node.input[0].removesuffix("_QuantizeLinear_Input"), inits[node.input[1]], inits[node.input[2]]
        if tensor in done or tensor not in produced:  # not a tensor of the float graph: nothing to simulate
            continue
        done.add(tensor)
        quantized, restored = f"{tensor}_sim_q", f"{tensor}_sim_dq"
        graph.initializer.extend([numpy_helper.from_array(numpy_helper.to_array(scale), f"{tensor}_sim_scale"),
                                  numpy_helper.from_array(numpy_helper.to_array(zero), f"{tensor}_sim_zero")])
        for consumer in graph.node:
            consumer.input[:] = [restored if i == tensor else i for i in consumer.input]
        graph.node.append(helper.make_node("QuantizeLinear", [tensor, f"{tensor}_sim_scale", f"{tensor}_sim_zero"],
                                           [quantized]))
        graph.node.append(helper.make_node("DequantizeLinear", [quantized, f"{tensor}_sim_scale",
                                                                f"{tensor}_sim_zero"], [restored]))
        if tensor in outputs:  # keep the graph's output name on the simulated value
            for o in graph.output:
                if o.name == tensor:
                    o.name = restored
    onnx.save(_sorted(source), str(out_dir / REFERENCE_FILE))
    (out_dir / REFERENCE_FILE).with_suffix(".json").write_text(
        json.dumps({"constant_error_steps": worst[0], "worst_constant": worst[1]}))


def _sorted(model):
    """The graph's nodes in topological order (appended Q/DQ pairs move next to their producers)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        progress = [n for n in pending if all(i in ready for i in n.input)]
        if not progress:
            raise ValueError("the simulated graph has a cycle or a dangling input")
        for n in progress:
            ordered.append(n)
            ready.update(n.output)
        pending = [n for n in pending if n not in progress]
    del graph.node[:]
    graph.node.extend(ordered)
    return model


def reference_runner(path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
    """Runs a simulated reference: float kernels, every graph rewrite off (no QDQ fusion)."""
    import onnxruntime as ort

    return OrtRunner(path, subject_params, threads, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL)


class OrtRunner:
    """onnxruntime CPU session; `invoke` (session.run) is the only timed call. optimized=False keeps only
    basic graph rewrites (no NCHWc layout kernels): a genuine slowdown, measured 2.5x on MobileNetV2."""

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True,
                 level=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if level is not None:
            options.graph_optimization_level = level
        elif not optimized:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.threads = threads
        self.inputs = [(i.name, tuple(i.shape[1:])) for i in self.session.get_inputs()]
        self._feed = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        self._feed = feed(x, self.inputs)

    def invoke(self) -> None:
        self._y = self.session.run(None, self._feed)

    def get_output(self):
        return self._y[0] if len(self._y) == 1 else self._y


EXPORT = Step("onnx", export, needs=("weights",), tools=TOOLS, options={"opset": OPSET})
STATIC = Step("onnx_int8", quantize_static, needs=("onnx", CALIBRATION), tools=TOOLS)
DYNAMIC = Step("onnx_dynamic_int8", quantize_dynamic, needs=("onnx",), tools=TOOLS)
QAT = Step("onnx_qat", export_qat, needs=("weights",), tools=TOOLS, options={"opset": OPSET})
SIM_STATIC = Step("onnx_int8_reference", simulate, needs=("onnx_int8",), tools=TOOLS, options={"of": "onnx_int8"})
SIM_DYNAMIC = Step("onnx_dynamic_int8_reference", simulate, needs=("onnx_dynamic_int8",), tools=TOOLS,
                   options={"of": "onnx_dynamic_int8"})
register(Format("onnx", {"fp32": ("onnx", ONNX_FILE), "int8": ("onnx_int8", ONNX_FILE),
                         "dynamic_int8": ("onnx_dynamic_int8", ONNX_FILE)},
                OrtRunner, steps=(EXPORT, STATIC, DYNAMIC, SIM_STATIC, SIM_DYNAMIC, QAT),
                references={"int8": ("onnx_int8_reference", REFERENCE_FILE),
                            "dynamic_int8": ("onnx_dynamic_int8_reference", REFERENCE_FILE)},
                reference_runner=reference_runner, weights=stored_weights.onnx_weights,
                qat_artifacts={"int8": ("onnx_qat", ONNX_FILE)}, scales=stored_weights.onnx_activation_scales))
