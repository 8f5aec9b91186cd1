"""Faults injected at run time, at every precision of both toolchains: around the runtime (what a deployment
feeds it or reads back) and inside the artifact (edits through each toolchain's own format: an ONNX graph or
a TFLite flatbuffer). Each is a bug real pipelines ship: a colour-order or layout mistake at the input, an
output buffer reused, a weight scale mis-applied, per-channel parameters in the wrong channel order, a
residual connection dropped, weights corrupted."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


# --- around the runtime -------------------------------------------------------------------------------------

class _Wrapped:
    def __init__(self, runner, feed=None, read=None):
        self.runner, self.feed, self.read, self.previous, self.first = runner, feed, read, None, None

    def set_input(self, x):
        self.runner.set_input(self.feed(x) if self.feed else x)

    def invoke(self):
        self.runner.invoke()

    def get_output(self):
        y = self.runner.get_output().copy()
        if self.read == "stale":
            y, self.previous = (self.previous if self.previous is not None else y), y
        elif self.read == "constant":
            self.first = y if self.first is None else self.first
            y = self.first
        return y


RUNTIME = {
    "swapped_channels": ("RGB fed as BGR", lambda r: _Wrapped(r, feed=lambda x: x[:, ::-1].copy())),
    "nhwc_read_as_nchw": ("an NHWC input buffer read as NCHW",
                          lambda r: _Wrapped(r, feed=lambda x: np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(x.shape))),
    "stale_output": ("each call returns the previous call's output", lambda r: _Wrapped(r, read="stale")),
    "input_independent": ("every call returns the first call's output", lambda r: _Wrapped(r, read="constant")),
}


# --- inside an ONNX artifact --------------------------------------------------------------------------------

def _mid(items):
    return items[len(items) // 2]


def _onnx_weight_scales(model, per_channel: bool):
    """Scale initializers of the int8 weights (onnxruntime names them <weight>_scale next to
    <weight>_quantized, in QDQ and in dynamic graphs alike)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for name, init in sorted(inits.items()):
        if name.endswith("_quantized") and numpy_helper.to_array(init).dtype == np.int8:
            scale = inits.get(name.removesuffix("_quantized") + "_scale")
            if scale is not None and (numpy_helper.to_array(scale).size > 1 or not per_channel):
                found.append(scale)
    return found


def onnx_fault(name: str, src: Path, dst: Path) -> bool:
    """Write `src` with fault `name` to `dst`; False when the fault does not apply to this graph."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    if name in ("weight_scale_x1.5", "reversed_channel_scales"):
        scales = _onnx_weight_scales(model, per_channel=name == "reversed_channel_scales")
        if not scales:
            return False
        target = _mid(scales)
        s = numpy_helper.to_array(target)
        target.CopyFrom(numpy_helper.from_array((s * 1.5 if name == "weight_scale_x1.5" else s[::-1]).astype(s.dtype),
                                                target.name))
    elif name == "perturbed_weights":
        convs = [inits[n.input[1]] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits
                 and numpy_helper.to_array(inits[n.input[1]]).dtype == np.float32]
        if not convs:
            return False
        target = _mid(convs)
        w = numpy_helper.to_array(target)
        noise = np.random.default_rng(0).standard_normal(w.shape) * 0.01 * w.std()
        target.CopyFrom(numpy_helper.from_array((w + noise).astype(np.float32), target.name))
    elif name == "dropped_residual":
        producer = {o: n for n in model.graph.node for o in n.output}

        def constant(tensor):  # an initializer, or computed from initializers only (a reshaped bias)
            node = producer.get(tensor)
            return tensor in inits or (node is not None and all(constant(i) for i in node.input if i))

        adds = [n for n in model.graph.node if n.op_type == "Add" and not any(constant(i) for i in n.input)]
        if not adds:
            return False
        add = _mid(adds)
        for node in model.graph.node:
            node.input[:] = [add.input[0] if i == add.output[0] else i for i in node.input]
        model.graph.node.remove(add)
    else:
        raise KeyError(name)
    onnx.save(model, str(dst))
    return True


# --- inside a TFLite flatbuffer -----------------------------------------------------------------------------

CONV_2D, DEPTHWISE_CONV_2D, ADD = 3, 4, 0


def tflite_fault(name: str, src: Path, dst: Path) -> bool:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from converters.tflite_simulation import _TYPES, _constant, _opcode

    model = flatbuffer_utils.read_model(str(src))
    graph = model.subgraphs[0]
    convs = [op for op in graph.operators if _opcode(model, op) in (CONV_2D, DEPTHWISE_CONV_2D)]
    if name in ("weight_scale_x1.5", "reversed_channel_scales"):
        weights = [graph.tensors[op.inputs[1]] for op in convs]
        weights = [t for t in weights if t.quantization is not None and t.quantization.scale is not None
                   and len(t.quantization.scale) > (1 if name == "reversed_channel_scales" else 0)]
        if not weights:
            return False
        q = _mid(weights).quantization
        q.scale = (np.asarray(q.scale) * 1.5 if name == "weight_scale_x1.5" else np.asarray(q.scale)[::-1]).tolist()
    elif name == "perturbed_weights":
        weights = [op.inputs[1] for op in convs]
        producer = {t: op for op in graph.operators for t in op.outputs}
        # a float16 model dequantizes its constants at run time: perturb the stored float16 values
        weights = [producer[t].inputs[0] if t in producer else t for t in weights]
        weights = [t for t in weights if _constant(model, graph, t) is not None and graph.tensors[t].type in (0, 1)]
        if not weights:
            return False
        index = _mid(weights)
        w = _constant(model, graph, index).astype(np.float64)
        noisy = (w + np.random.default_rng(0).standard_normal(w.shape) * 0.01 * w.std()).astype(
            _TYPES[graph.tensors[index].type])
        model.buffers.append(schema.BufferT())
        model.buffers[-1].data = np.frombuffer(noisy.tobytes(), np.uint8)
        graph.tensors[index].buffer = len(model.buffers) - 1
    elif name == "dropped_residual":
        adds = [op for op in graph.operators if _opcode(model, op) == ADD
                and all(_constant(model, graph, t) is None for t in op.inputs)]
        if not adds:
            return False
        add = _mid(adds)
        for op in graph.operators:
            op.inputs = [add.inputs[0] if t == add.outputs[0] else t for t in op.inputs]
        graph.operators.remove(add)
    else:
        raise KeyError(name)
    flatbuffer_utils.write_model(model, str(dst))
    return True


ARTIFACT = {
    "weight_scale_x1.5": "one mid convolution's weight scales x1.5 (a mis-applied scale)",
    "reversed_channel_scales": "one mid convolution's per-channel weight scales in reverse channel order",
    "perturbed_weights": "one mid convolution's float weights plus 1 % noise",
    "dropped_residual": "one mid residual Add bypassed (a dropped op)",
}
QUANTIZED_ONLY = ("weight_scale_x1.5", "reversed_channel_scales")
FLOAT_ONLY = ("perturbed_weights",)


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    runtime: Callable | None = None  # wraps a runner
    artifact: bool = False  # an edit of the artifact file


def faults_for(quantized: bool) -> list[Fault]:
    out = [Fault(n, d, runtime=w) for n, (d, w) in RUNTIME.items()]
    out += [Fault(n, d, artifact=True) for n, d in ARTIFACT.items()
            if not (n in QUANTIZED_ONLY and not quantized) and not (n in FLOAT_ONLY and quantized)]
    return out


def edit(fmt: str, name: str, src: Path, dst: Path) -> bool:
    return (onnx_fault if fmt == "onnx" else tflite_fault)(name, src, dst)
