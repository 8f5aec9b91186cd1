"""A QAT model's learned fake quantization as QDQ ONNX (models.qat makes the model; this writes the graph the
onnx_qat step ships and OpenVINO reads)."""
from __future__ import annotations

from pathlib import Path


def export_qdq(net, subject, path: Path) -> None:
    """The fake-quantized network as QDQ ONNX (TorchScript exporter, the suite's opset), with every
    per-tensor scale and zero point made a scalar: the exporter writes them as [1]-shaped tensors, which
    onnxruntime's QDQ fusions (QLinearAdd) reject."""
    import onnx
    import torch
    from onnx import numpy_helper

    from converters.onnx_names import OPSET, OUTPUT_NAME

    dummies = tuple(torch.zeros(shape) for shape in subject.input_shapes(1))
    torch.onnx.export(net, dummies, str(path), dynamo=False, opset_version=OPSET,
                      input_names=subject.input_names(), output_names=[OUTPUT_NAME], do_constant_folding=True)
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            for name in node.input[1:3]:
                if name in inits and tuple(inits[name].dims) == (1,):
                    inits[name].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(inits[name]).reshape(()), name))
    _quantize_biases(model)
    _store_weights_quantized(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _quantize_biases(model) -> None:
    """Every Conv/Gemm bias as int32 at input scale x weight scale behind a DequantizeLinear, the way
    onnxruntime's own quantizer writes it. onnxruntime quantizes a float bias of a QDQ Conv that way when it
    loads the graph (its WeightBiasQuantization rewrite), so the artifact computes the same; written into
    the graph, the rounding is part of what the graph declares, and its float-kernel reference (run with
    every rewrite off) computes it too. Measured on mobilenet_v2_digits_qat: the rounding alone moves
    onnxruntime's outputs from 44.6 to 31.9 dB SNR against the fake-quantized PyTorch network, on channels
    whose folded BatchNorm made the weight scale large (a bias step up to 0.088)."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    constant, producer = _constants(graph)

    def dq_scale(tensor):
        node = producer.get(tensor)
        scale = constant(node.input[1]) if node is not None and node.op_type == "DequantizeLinear" else None
        return None if scale is None else scale.astype(np.float64)

    for node in list(graph.node):
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            continue
        bias, s_in, s_w = constant(node.input[2]), dq_scale(node.input[0]), dq_scale(node.input[1])
        if bias is None or s_in is None or s_w is None or s_in.size != 1:
            continue
        bias = bias.astype(np.float64)
        scale = (float(s_in) * np.broadcast_to(s_w.reshape(-1), bias.shape)).astype(np.float32)
        q = np.clip(np.round(bias / scale), -2**31, 2**31 - 1).astype(np.int32)
        name = node.input[2]
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int32"),
                                  numpy_helper.from_array(scale, f"{name}_int32_scale"),
                                  numpy_helper.from_array(np.zeros_like(q), f"{name}_int32_zero")])
        dq = helper.make_node("DequantizeLinear", [f"{name}_int32", f"{name}_int32_scale", f"{name}_int32_zero"],
                              [f"{name}_dq"], axis=0)
        graph.node.insert(list(graph.node).index(node), dq)
        node.input[2] = f"{name}_dq"
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _store_weights_quantized(model) -> None:
    """Every QuantizeLinear of a constant (a weight's fake quantization) folded into the int8 tensor it
    computes: the exporter leaves the float weights and their QuantizeLinear in the graph (3.7x the file of
    onnxruntime's own quantizer on MobileNetV2, 14.3 against 3.9 MB), which runtimes fold at load time to
    the same int8 values. Round half to even in float32, as QuantizeLinear does."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    constant, _ = _constants(graph)

    for node in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        weight, scale, zero = (constant(i) for i in node.input[:3])
        if weight is None or scale is None or zero is None:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * weight.ndim
        if scale.size > 1:
            shape[axis] = -1
        info = np.iinfo(zero.dtype)
        # in float32, as QuantizeLinear computes it (float64 division rounds some weights the other way)
        q = np.round(weight.astype(np.float32) / scale.reshape(shape).astype(np.float32)).astype(np.float64) \
            + zero.reshape(shape)
        name = f"{node.output[0]}_stored"
        graph.initializer.append(numpy_helper.from_array(np.clip(q, info.min, info.max).astype(zero.dtype), name))
        for consumer in graph.node:
            consumer.input[:] = [name if i == node.output[0] else i for i in consumer.input]
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for identity in [n for n in graph.node if n.op_type == "Identity" and not set(n.output) & used]:
        graph.node.remove(identity)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _constants(graph):
    """(constant(name) -> the initializer's array behind `name`, through the exporter's Identity copies, or
    None; the map of each tensor to the node that produces it)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def constant(name):
        while name not in inits and name in producer and producer[name].op_type == "Identity":
            name = producer[name].input[0]
        return numpy_helper.to_array(inits[name]) if name in inits else None

    return constant, producer
