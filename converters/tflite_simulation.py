"""The simulated-quantization reference of a TFLite artifact: the float32 model of the same onnx2tf run,
computing in float what the quantized model stands for (its own constants, its own activation grids), and
the check of every stored filter and bias against the float value it stands for."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.metrics import constant_error
from converters.tflite_convert import PRECISION_FILES, SAVED_MODEL_DIR

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


def _align(fm, qm):
    """Match the quantized model's ops to the float model's by data flow: an op matches the unused float op
    of the same type whose activation inputs are the tensors its own activation inputs stand for (order
    free: the converters may swap an Add's inputs, and may order same-shaped branches differently).
    QUANTIZE/DEQUANTIZE ops that convert an activation stand for the tensor they convert; DEQUANTIZE of a
    constant (float16 weights) is part of that constant. Returns ([(float op, quantized op)], {quantized
    tensor: float tensor})."""
    fg, qg = fm.subgraphs[0], qm.subgraphs[0]
    q_producer = {t: op for op in qg.operators for t in op.outputs}

    def q_constant(t):
        made = q_producer.get(t)
        return _constant(qm, qg, t) is not None or (
            made is not None and _opcode(qm, made) == DEQUANTIZE and _constant(qm, qg, made.inputs[0]) is not None)

    def activations(graph_model, graph, op, constant):
        return sorted(t for t in op.inputs if t >= 0 and not constant(t))

    stands_for = dict(zip(qg.inputs, fg.inputs))
    f_constant = lambda t: _constant(fm, fg, t) is not None  # noqa: E731
    free = list(range(len(fg.operators)))
    pairs = []
    for q_op in qg.operators:
        code = _opcode(qm, q_op)
        acts = activations(qm, qg, q_op, q_constant)
        if code in (QUANTIZE, DEQUANTIZE):
            if len(acts) == 1 and acts[0] in stands_for:  # a type conversion of an activation
                stands_for.setdefault(q_op.outputs[0], stands_for[acts[0]])
            continue
        if any(t not in stands_for for t in acts):
            continue
        want = sorted(stands_for[t] for t in acts)
        candidates = [i for i in free if _opcode(fm, fg.operators[i]) == code
                      and activations(fm, fg, fg.operators[i], f_constant) == want]
        if not candidates:
            continue
        # two ops on the same input (a ResNet block's first conv and its projection shortcut) are told apart
        # by their constants: the same shapes, then the closest values (found by the fuzz self-test: a 3x3
        # conv and a 1x1 shortcut on one input were paired crosswise, biases compared 5000 steps apart)
        match = min(candidates, key=lambda i: _constant_distance(fm, fg.operators[i], qm, q_op))
        free.remove(match)
        pairs.append((fg.operators[match], q_op))
        for qt, ft in zip(q_op.outputs, fg.operators[match].outputs):
            stands_for.setdefault(qt, ft)
    return pairs, stands_for


def _constant_distance(fm, f_op, qm, q_op) -> tuple[int, float]:
    """How unlike a float op's constants are a quantized op's: (inputs whose shapes differ, mean relative
    difference of the first constant that matches in shape). (0, 0.0) for ops without constants."""
    fg, qg = fm.subgraphs[0], qm.subgraphs[0]
    q_producer = {t: op for op in qg.operators for t in op.outputs}
    mismatched, distance = 0, None
    for qt, ft in zip(q_op.inputs, f_op.inputs):
        value = _constant(fm, fg, ft) if qt >= 0 and ft >= 0 else None
        if value is None:
            continue
        source = qt
        if qt in q_producer and _opcode(qm, q_producer[qt]) == DEQUANTIZE:
            source = q_producer[qt].inputs[0]
        quantized = _constant(qm, qg, source)
        if quantized is None or quantized.shape != value.shape:
            mismatched += 1
            continue
        src = qg.tensors[source]
        if distance is None and (src.type == 1 or (src.quantization is not None and src.quantization.scale is not None)):
            stored = _stored(quantized, src)[0]
            distance = float(np.mean(np.abs(stored - value)) / (np.mean(np.abs(value)) + 1e-12))
    return mismatched, distance if distance is not None else 0.0


def simulated(float_path: Path, quant_path: Path):
    """The float model of the same conversion computing what the quantized model stands for: every constant
    the quantized model stores as int8/int16/int32 or float16 replaced by the values it dequantizes to, and
    every activation it quantizes passed through a QUANTIZE/DEQUANTIZE pair with its scale and zero point.
    Ops are matched by data flow (`_align`). Returns (model, worst constant error in steps, the tensor):
    each stored filter and bias against the float value it stands for."""
    import copy

    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    fm, qm = flatbuffer_utils.read_model(str(float_path)), flatbuffer_utils.read_model(str(quant_path))
    fg, qg = fm.subgraphs[0], qm.subgraphs[0]
    producer = {t: op for op in qg.operators for t in op.outputs}
    pairs, stands_for = _align(fm, qm)
    worst = (0.0, "")
    for f_op, q_op in pairs:
        weighted = _opcode(fm, f_op) in WEIGHTED_OPS
        for i, (qt, ft) in enumerate(zip(q_op.inputs, f_op.inputs)):
            value = _constant(fm, fg, ft) if qt >= 0 and ft >= 0 else None
            if value is None:
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
    fake_after: dict[int, object] = {}  # float activation tensor -> the quantized tensor whose params apply
    for qt, ft in stands_for.items():
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
    _drop_unused_buffers(fm)
    return fm, worst[0], worst[1]


def _drop_unused_buffers(model) -> None:
    """Empty every buffer no op reads any more: the float constants the stored values replaced.
    Left in, they doubled each reference file (measured: 195 MB against 98 MB for ResNet-50's float
    model, five references per model). Indices stay, so no tensor is renumbered."""
    used = {entry.buffer for entry in model.metadata or ()}  # metadata (runtime version) lives in buffers too
    for graph in model.subgraphs:
        live = {t for op in graph.operators for t in (*op.inputs, *op.outputs)}
        live |= {*graph.inputs, *graph.outputs}
        used |= {graph.tensors[t].buffer for t in live if t >= 0}
    for index, buffer in enumerate(model.buffers):
        if index not in used and buffer.data is not None:
            buffer.data = None


def simulate(params: dict, out_dir: Path) -> None:
    """Write the simulated reference of every non-fp32 TFLite variant (see `simulated`) and beside each a
    .json with its worst quantized constant against the float value it stands for."""
    from tensorflow.lite.tools import flatbuffer_utils

    import json

    saved_model = Path(params["deps"]["tflite"]) / SAVED_MODEL_DIR
    for precision in params["options"]["precisions"]:
        model, error, tensor = simulated(saved_model / PRECISION_FILES["fp32"], saved_model / PRECISION_FILES[precision])
        flatbuffer_utils.write_model(model, str(out_dir / f"reference_{precision}.tflite"))
        (out_dir / f"reference_{precision}.json").write_text(
            json.dumps({"constant_error_steps": error, "worst_constant": tensor}))
