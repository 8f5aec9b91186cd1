"""Deliberately broken conversions, as edits of a correct ONNX graph: each is a bug that real conversion
pipelines ship (a preprocessing mismatch, a layout confusion, a dropped op or parameter). Every function
takes and returns an onnx.ModelProto and leaves its input untouched."""
from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference


def _first_consumers(graph, name):
    return [(node, i) for node in graph.node for i, inp in enumerate(node.input) if inp == name]


def _insert_after_input(model, make_nodes):
    """Route the graph input through new nodes: make_nodes(input_name, output_name) -> (nodes, inits)."""
    m = copy.deepcopy(model)
    source = m.graph.input[0].name
    fixed = source + "_mutated"
    for node, i in _first_consumers(m.graph, source):
        node.input[i] = fixed
    nodes, inits = make_nodes(source, fixed)
    m.graph.initializer.extend(inits)
    for n in reversed(nodes):
        m.graph.node.insert(0, n)
    return m


def swapped_channels(model, **_):
    """RGB fed as BGR: the input's channel axis reversed before the first layer."""
    def nodes(src, dst):
        idx = numpy_helper.from_array(np.array([2, 1, 0], np.int64), "bgr_index")
        return [helper.make_node("Gather", [src, "bgr_index"], [dst], axis=1)], [idx]
    return _insert_after_input(model, nodes)


def wrong_normalization(model, mean, std, **_):
    """The deployed preprocessing divides by 0.5 around 0.5 (Inception style) instead of the model's own
    mean/std: x' = (x * std + mean - 0.5) / 0.5."""
    scale = (np.asarray(std, np.float32) / 0.5).reshape(1, 3, 1, 1)
    shift = ((np.asarray(mean, np.float32) - 0.5) / 0.5).reshape(1, 3, 1, 1)

    def nodes(src, dst):
        inits = [numpy_helper.from_array(scale, "norm_scale"), numpy_helper.from_array(shift, "norm_shift")]
        return [helper.make_node("Mul", [src, "norm_scale"], ["norm_scaled"]),
                helper.make_node("Add", ["norm_scaled", "norm_shift"], [dst])], inits
    return _insert_after_input(model, nodes)


def _conv_weights(m):
    inits = {i.name: i for i in m.graph.initializer}
    return [inits[n.input[1]] for n in m.graph.node if n.op_type == "Conv" and n.input[1] in inits]


def _replace(m, init, array):
    init.CopyFrom(numpy_helper.from_array(array.astype(np.float32), init.name))


def perturbed_layer(model, seed=0, relative=0.01, **_):
    """One mid-network convolution's weights plus Gaussian noise of 1 % of their own spread."""
    m = copy.deepcopy(model)
    convs = _conv_weights(m)
    target = convs[len(convs) // 2]
    w = numpy_helper.to_array(target)
    noise = np.random.default_rng(seed).standard_normal(w.shape) * relative * w.std()
    _replace(m, target, w + noise)
    return m


def dropped_bias(model, **_):
    """The first convolution loses its bias (the folded BatchNorm shift): a converter that drops an
    optional input."""
    m = copy.deepcopy(model)
    conv = next(n for n in m.graph.node if n.op_type == "Conv" and len(n.input) == 3)
    del conv.input[2]
    return m


def layout_confusion(model, **_):
    """NCHW memory read as NHWC by a reshape before the classifier's pooling: the final features are
    reinterpreted (Reshape to [N, H, W, C], then Transpose back to NCHW) instead of transposed."""
    m = copy.deepcopy(model)
    inferred = shape_inference.infer_shapes(m)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    pool = [n for n in m.graph.node if n.op_type == "GlobalAveragePool"][-1]
    feature = pool.input[0]
    n, c, h, w = shapes[feature]
    if h * w == 1:
        raise ValueError("the final feature map is 1x1; a layout confusion there would be invisible")
    m.graph.initializer.append(numpy_helper.from_array(np.array([n, h, w, c], np.int64), "nhwc_shape"))
    nodes = [helper.make_node("Reshape", [feature, "nhwc_shape"], ["as_nhwc"]),
             helper.make_node("Transpose", ["as_nhwc"], ["as_nchw"], perm=[0, 3, 1, 2])]
    pool.input[0] = "as_nchw"
    position = list(m.graph.node).index(pool)
    for node in reversed(nodes):
        m.graph.node.insert(position, node)
    return m


def hardswish_as_relu6(model, **_):
    """Every HardSwish lowered to ReLU6 (Clip 0..6): the MobileNetV3 activation a converter 'approximates'."""
    m = copy.deepcopy(model)
    swaps = [n for n in m.graph.node if n.op_type == "HardSwish"]
    if not swaps:
        raise ValueError("the model has no HardSwish node")
    m.graph.initializer.extend([numpy_helper.from_array(np.array(0, np.float32), "relu6_min"),
                                numpy_helper.from_array(np.array(6, np.float32), "relu6_max")])
    for node in swaps:
        node.op_type = "Clip"
        node.input.extend(["relu6_min", "relu6_max"])
    return m


def nan_weight(model, **_):
    """One weight of the first convolution is NaN (a corrupted or badly cast initializer)."""
    m = copy.deepcopy(model)
    target = _conv_weights(m)[0]
    w = numpy_helper.to_array(target).copy()
    w.flat[0] = np.nan
    _replace(m, target, w)
    return m


def truncated_classes(model, **_):
    """The classifier's output sliced to one class fewer (a mis-sized head)."""
    m = copy.deepcopy(model)
    out = m.graph.output[0]
    classes = out.type.tensor_type.shape.dim[1].dim_value
    producer = next(n for n in m.graph.node if out.name in n.output)
    producer.output[list(producer.output).index(out.name)] = "full_logits"
    m.graph.initializer.extend([numpy_helper.from_array(np.array([v], np.int64), f"slice_{k}")
                                for k, v in (("start", 0), ("end", classes - 1), ("axis", 1))])
    m.graph.node.append(helper.make_node("Slice", ["full_logits", "slice_start", "slice_end", "slice_axis"],
                                         [out.name]))
    out.type.tensor_type.shape.dim[1].dim_value = classes - 1
    return m


MUTATIONS = {
    "swapped_channels": swapped_channels,
    "wrong_normalization": wrong_normalization,
    "perturbed_layer": perturbed_layer,
    "dropped_bias": dropped_bias,
    "layout_confusion": layout_confusion,
    "hardswish_as_relu6": hardswish_as_relu6,
    "nan_weight": nan_weight,
    "truncated_classes": truncated_classes,
}


def save(model, path) -> None:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
