"""The constant tensors each format's artifact stores, read with the format's own tools: the readers the
format plug-ins register as `Format.weights` (compare.sparsity judges what they return)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.sparsity import StoredTensor


def torch_weights(net) -> list[StoredTensor]:
    """A PyTorch model's Conv2d and Linear weights (what pruning acts on)."""
    from torch import nn

    return [StoredTensor(n, m.weight.detach().numpy()) for n, m in net.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


# (op type, position of the quantized tensor, position of its zero point) of ONNX's integer ops
_ONNX_ZERO_POINTS = {"DequantizeLinear": (0, 2), "ConvInteger": (1, 3), "MatMulInteger": (1, 3),
                     "QLinearConv": (3, 5), "QLinearMatMul": (3, 5)}


def onnx_weights(path: Path) -> list[StoredTensor]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_of, axis_of = {}, {}
    for node in model.graph.node:
        where = _ONNX_ZERO_POINTS.get(node.op_type)
        if where and len(node.input) > where[1] and node.input[where[0]] in init:
            zero_of[node.input[where[0]]] = init.get(node.input[where[1]], 0)
            axis_of[node.input[where[0]]] = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return [StoredTensor(name, values, zero_of.get(name, 0), axis_of.get(name, 0))
            for name, values in init.items()]


def tflite_weights(path: Path) -> list[StoredTensor]:
    """Every tensor of the flatbuffer that has a buffer of its own (a constant), with its zero points."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
              schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
              schema.TensorType.INT16: np.int16, schema.TensorType.INT32: np.int32,
              schema.TensorType.INT64: np.int64}
    model = flatbuffer_utils.read_model(str(path))
    out = []
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
            if data is None or len(data) == 0 or tensor.type not in dtypes:
                continue
            values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtypes[tensor.type])
            shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
            if values.size != int(np.prod(shape)):
                continue  # sparse-encoded or packed: not read here
            q = tensor.quantization
            zero = np.asarray(q.zeroPoint) if q is not None and q.zeroPoint is not None else 0
            axis = int(q.quantizedDimension) if q is not None else 0
            out.append(StoredTensor(tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name),
                                    values.reshape(shape), zero, axis))
    return out


def openvino_weights(path: Path) -> list[StoredTensor]:
    """Every Constant of the IR; an integer constant's zero point is the constant its Convert's Subtract
    takes away (NNCF's asymmetric weights), else 0."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        values = op.get_data()
        zero = 0
        if values.dtype.kind in "iu":
            for convert in (t.get_node() for t in op.output(0).get_target_inputs()):
                for sub in (t.get_node() for t in convert.output(0).get_target_inputs()):
                    if sub.get_type_name() == "Subtract":
                        source = sub.input_value(1).get_node()
                        while source.get_type_name() == "Convert":
                            source = source.input_value(0).get_node()
                        if source.get_type_name() == "Constant":
                            zero = source.get_data().reshape(-1) if source.get_data().size > 1 else \
                                source.get_data().reshape(()).item()
        out.append(StoredTensor(op.get_friendly_name(), np.asarray(values), zero, 0))
    return out


def savedmodel_weights(path: Path) -> list[StoredTensor]:
    """The Const nodes of the SavedModel's graph and its functions, and its variables."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import tensor_util

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    out = []
    for graph in (m.graph_def for m in saved.meta_graphs):
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        for node in nodes:
            if node.op == "Const" and "value" in node.attr:
                out.append(StoredTensor(node.name, tensor_util.MakeNdarray(node.attr["value"].tensor)))
    index = Path(path) / "variables" / "variables.index"
    if index.is_file():
        reader = tf.train.load_checkpoint(str(Path(path) / "variables" / "variables"))
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if isinstance(value, np.ndarray):
                out.append(StoredTensor(name, value))
    return out


# --- activation quantization scales (Format.scales; compare.qat judges them) -------------------------------
def onnx_activation_scales(path: Path) -> list[float]:
    """The scale of every QuantizeLinear on an activation (its input is computed, not an initializer)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [float(np.reshape(init[n.input[1]], -1)[0]) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in init and n.input[1] in init
            and np.size(init[n.input[1]]) == 1]


def tflite_activation_scales(path: Path) -> list[float]:
    """The scale of every int8/uint8/int16 tensor without a buffer of its own (an activation), per tensor."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    quantized = {schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16}
    model = flatbuffer_utils.read_model(str(path))
    out = []
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
            q = tensor.quantization
            if (data is None or len(data) == 0) and tensor.type in quantized and q is not None \
                    and q.scale is not None and len(q.scale) == 1:
                out.append(float(q.scale[0]))
    return out


def openvino_activation_scales(path: Path) -> list[float]:
    """The step of every FakeQuantize on an activation (its input is not a Constant):
    (input_high - input_low) / (levels - 1), per tensor."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize" or op.input_value(0).get_node().get_type_name() == "Constant":
            continue
        low, high = (op.input_value(i).get_node() for i in (1, 2))
        if low.get_type_name() != "Constant" or high.get_type_name() != "Constant" or low.get_data().size != 1:
            continue
        levels = int(op.get_attributes()["levels"])
        out.append(float((high.get_data().reshape(-1)[0] - low.get_data().reshape(-1)[0]) / (levels - 1)))
    return out
