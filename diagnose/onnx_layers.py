"""Localize an onnxruntime artifact's error, layer by layer, named by PyTorch module paths.

Matching. `torch.onnx.export` (TorchScript) names every node by the module scope that produced it
(`/features/features.12/branch/se/Mul` -> module `features.12.branch.se`); onnxruntime's quantizers keep the
float tensor names of the graph they quantize. A module is matched to the one tensor its scope hands to
the rest of the graph (its exit), when that tensor has the shape of the module's PyTorch output. Not matched,
and listed with the reason: modules with no node (a BatchNorm folded into its convolution at export), the
module before such a fold (its exit carries the folded module too), modules whose scope hands on several
tensors or none, and a shape mismatch.

Errors, each as SNR in dB against PyTorch's output of the same module on the same inputs:

  cumulative  the artifact run end to end, every matched tensor read out (onnxruntime's qdq_loss_debug
              augmentation). Reading tensors out keeps onnxruntime from fusing across them (a QDQ pair then
              runs as DequantizeLinear -> float op -> QuantizeLinear, not as QLinearConv): `perturbation`
              says how far the read-out run's final output is from the artifact's own
  local       the module's part of the artifact alone (onnx.utils.Extractor, from the tensors entering its
              scope to its exit), fed PyTorch's values of those tensors: the error this layer adds by itself

`worst_local_layer` is the module that adds the most error by itself; `first_divergent_layer` the first
module, in graph order, whose local SNR is within 3 dB of that worst one: where the error jumps first (none
when every layer stays above 60 dB, float round-off). (The
cumulative SNR is not monotonic: a residual add brings it back up when the branch is small beside its skip,
so "where the cumulative error crosses a level" names transient dips.)
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

JUMP_DB = 3.0
ROUNDOFF_DB = 60.0  # a layer at or above this local SNR adds no more than float round-off
DEQUANTIZED = "_DequantizeLinear_Output"  # onnxruntime.quantization's name for a tensor's QDQ output


def module_path(node_name: str) -> str | None:
    """`/features/features.1/branch/se/reduce/Conv` -> `features.1.branch.se.reduce` (None: no scope)."""
    if not node_name.startswith("/"):
        return None
    current = ""
    for part in node_name.strip("/").split("/")[:-1]:
        current = part if not current or part.startswith(current + ".") else f"{current}.{part}"
    return current or None


@dataclass
class Layer:
    module: str
    tensor: str
    op: str
    position: int
    inputs: list[str]
    cumulative_snr_db: float | None = None
    local_snr_db: float | None = None


def match_layers(graph, module_order: list[str], shapes: dict[str, tuple],
                 identities: frozenset[str] = frozenset()) -> tuple[list[Layer], dict[str, str]]:
    """Matched layers in graph order, and {module: why it is not matched} for the rest. Where several
    nested modules hand on the same tensor, the layer is named by the deepest one whose own inputs are all
    matched tensors (so it can be fed PyTorch's values), else by the deepest."""
    known = set(module_order)
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    constants = {i for i, n in enumerate(graph.node) if n.op_type == "Constant"}
    initializers = {t.name for t in graph.initializer}
    consumers = defaultdict(set)
    for i, node in enumerate(graph.node):
        for t in node.input:
            consumers[t].add(i)
    members: dict[str, set[int]] = defaultdict(set)
    for i, node in enumerate(graph.node):
        path = module_path(node.name)
        if path is None:
            continue
        parts = path.split(".")
        for k in range(1, len(parts) + 1):
            if ".".join(parts[:k]) in known:
                members[".".join(parts[:k])].add(i)
    graph_outputs = {o.name for o in graph.output}
    unmatched: dict[str, str] = {}
    for k, module in enumerate(module_order):
        if module in members or "." not in module:
            continue
        if module in identities:
            unmatched[module] = "an identity (no node, nothing to compare)"
            continue
        unmatched[module] = "no node in the graph (folded at export)"
        parent = module.rsplit(".", 1)[0]
        before = [m for m in module_order[:k] if m.rsplit(".", 1)[0] == parent and m in members]
        if before:
            unmatched[before[-1]] = f"its exit also carries {module}, folded into it at export"
    candidates: dict[str, list[Layer]] = defaultdict(list)
    for module, nodes in members.items():
        if module in unmatched:
            continue
        exits = [o for i in sorted(nodes) for o in graph.node[i].output
                 if o in graph_outputs or consumers[o] - nodes]
        if len(exits) != 1:
            unmatched[module] = f"its scope hands on {len(exits)} tensors"
            continue
        if module not in shapes:
            unmatched[module] = "PyTorch gave no tensor output"
            continue
        tensor = exits[0]
        inputs = sorted({t for i in nodes for t in graph.node[i].input
                         if t and t not in initializers and producer.get(t) not in nodes | constants})
        candidates[tensor].append(Layer(module, tensor, graph.node[producer[tensor]].op_type, producer[tensor],
                                        inputs))
    feedable = set(candidates) | {i.name for i in graph.input}
    layers = []
    for tensor, found in candidates.items():
        found.sort(key=lambda layer: -len(layer.module))
        layers.append(next((layer for layer in found if set(layer.inputs) <= feedable), found[0]))
    return sorted(layers, key=lambda layer: layer.position), unmatched


def torch_outputs(net, x: np.ndarray, modules: list[str]) -> dict[str, np.ndarray]:
    """Every named module's output on `x` (forward hooks; tensor outputs only)."""
    import torch

    found: dict[str, np.ndarray] = {}
    handles = []
    for name, module in net.named_modules():
        if name in modules:
            def hook(_, __, out, name=name):
                if isinstance(out, torch.Tensor):
                    found[name] = out.detach().numpy().copy()
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            net(torch.from_numpy(np.ascontiguousarray(x)))
    finally:
        for handle in handles:
            handle.remove()
    return found


def _session(model, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model if isinstance(model, (str, bytes)) else model.SerializeToString(),
                                options, providers=["CPUExecutionProvider"])


def _per_sample(session, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
    n = len(next(iter(feeds.values())))
    runs = [session.run(outputs, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
    return [np.concatenate([r[j] for r in runs]) for j in range(len(runs[0]))]


def localize(float_onnx: Path, artifact: Path, net, x: np.ndarray, work: Path) -> dict:
    """The diagnosis of one onnxruntime artifact (module docstring) on inputs `x` (N samples)."""
    import onnx
    from onnx.utils import Extractor
    from onnxruntime.quantization.qdq_loss_debug import _TENSOR_SAVE_POSTFIX, \
        modify_model_output_intermediate_tensors

    from compare.metrics import snr_db

    order = [name for name, _ in net.named_modules() if name]
    reference = torch_outputs(net, x, order)
    float_graph = onnx.shape_inference.infer_shapes(onnx.load(str(float_onnx))).graph
    identities = frozenset(name for name, m in net.named_modules() if type(m).__name__ == "Identity")
    layers, unmatched = match_layers(float_graph, order, {k: v.shape[1:] for k, v in reference.items()},
                                     identities)
    model = onnx.load(str(artifact))
    present = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    input_name = model.graph.input[0].name
    output_name = model.graph.output[0].name
    for layer in layers:
        if layer.tensor not in present:
            unmatched[layer.module] = "the artifact has no tensor of that name (renamed or fused by the converter)"
    layers = [layer for layer in layers if layer.module not in unmatched
              and reference[layer.module].shape[1:] == _shape_of(float_graph, layer.tensor, reference[layer.module])]

    augmented = work / "augmented.onnx"
    modify_model_output_intermediate_tensors(str(artifact), str(augmented))
    session = _session(str(augmented))
    # read out only the matched tensors (what the next layer sees) and the final output: a 224x224 model's
    # every tensor over 8 inputs would take gigabytes
    seen_of = {layer.module: layer.tensor + DEQUANTIZED if layer.tensor + DEQUANTIZED in present else layer.tensor
               for layer in layers}
    available = {o.name for o in session.get_outputs()}
    names = [n for n in [output_name] + [t + _TENSOR_SAVE_POSTFIX for t in seen_of.values()] if n in available]
    values = dict(zip(names, _per_sample(session, {input_name: x}, names)))
    read = {n.removesuffix(_TENSOR_SAVE_POSTFIX): v.reshape(len(x), -1) for n, v in values.items()}
    final = _per_sample(_session(str(artifact)), {input_name: x}, [output_name])[0]
    perturbation = snr_db(final, read[output_name].reshape(final.shape)) if output_name in read else None

    known = {layer.tensor: reference[layer.module] for layer in layers} | {input_name: x}
    # the Extractor cuts along value infos; give it the float tensors it cuts at (shape inference leaves
    # some QDQ outputs untyped)
    typed = {info.name for info in list(model.graph.value_info) + list(model.graph.input)}
    for layer in layers:
        for name in (layer.tensor, layer.tensor + DEQUANTIZED):
            if name in present and name not in typed:
                model.graph.value_info.append(onnx.helper.make_tensor_value_info(
                    name, onnx.TensorProto.FLOAT, (1, *reference[layer.module].shape[1:])))
    extractor = Extractor(model)
    for layer in layers:
        # what the next layer sees: a quantizer's DequantizeLinear output where it quantized the tensor (it may
        # have dropped a Relu into the quantization range, leaving the unclipped tensor under the old name)
        seen = seen_of[layer.module]
        if seen in read:
            layer.cumulative_snr_db = snr_db(reference[layer.module], read[seen].reshape(
                reference[layer.module].shape))
        if all(t in known for t in layer.inputs):
            try:
                part = extractor.extract_model(layer.inputs, [seen])
                local = _per_sample(_session(part), {t: known[t] for t in layer.inputs})[0]
                layer.local_snr_db = snr_db(reference[layer.module], local.reshape(reference[layer.module].shape))
            except Exception as exc:  # noqa: BLE001 - a part that cannot be cut out is reported, not fatal
                layer.local_snr_db = None
                unmatched.setdefault(layer.module + " (local)", f"could not be cut out: {exc}".splitlines()[0])
    expected = net_output(net, x)  # several outputs: the first is read out, no single final tensor to compare
    final_snr = snr_db(expected, final.reshape(len(x), -1)) if final.size == expected.size else None
    local = [layer for layer in layers if layer.local_snr_db is not None]
    worst = min(local, key=lambda layer: layer.local_snr_db) if local else None
    if worst is not None and worst.local_snr_db >= ROUNDOFF_DB:
        first = None  # no layer adds more than float round-off: nothing diverges
    else:
        first = next((layer.module for layer in local if layer.local_snr_db <= worst.local_snr_db + JUMP_DB),
                     None) if worst else None
    return {"toolchain": "onnxruntime", "samples": int(len(x)), "final_snr_db": final_snr,
            "first_divergent_layer": first, "worst_local_layer": worst.module if worst else None,
            "rule": f"first module whose local SNR is within {JUMP_DB:g} dB of the worst local SNR",
            "perturbation_snr_db": perturbation, "matched": len(layers), "unmatched": unmatched,
            "layers": [{k: v for k, v in asdict(layer).items() if k not in ("position", "inputs")}
                       for layer in layers]}


def net_output(net, x: np.ndarray) -> np.ndarray:
    """The network's output on `x`, several outputs packed per sample (converters.pack)."""
    import torch

    from converters import pack

    with torch.inference_mode():
        y = net(torch.from_numpy(np.ascontiguousarray(x)))
    return pack([t.numpy() for t in y] if isinstance(y, tuple) else y.numpy())


def _shape_of(graph, tensor: str, like: np.ndarray) -> tuple:
    """The tensor's static shape from the graph's value infos (export records them), else `like`'s."""
    for info in list(graph.value_info) + list(graph.output):
        if info.name == tensor:
            dims = tuple(d.dim_value for d in info.type.tensor_type.shape.dim)
            return dims[1:] if dims and all(dims) else like.shape[1:]
    return like.shape[1:]
