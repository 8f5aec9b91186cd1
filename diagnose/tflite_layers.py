"""Localize a TFLite artifact's error, layer by layer, named by PyTorch module paths.

Matching. onnx2tf renames everything (`model_25/tf.math.add_9/Add;...`): TFLite tensor names carry no trace
of the PyTorch module or the ONNX node. So modules are matched by value, on the float32 TFLite model that
the same onnx2tf run wrote: every operator output of that model, run with all tensors preserved
(`experimental_preserve_all_tensors`) on the same inputs, against every PyTorch module output of the same
shape (NHWC against NCHW transposed); a module is matched to the tensor that reproduces it best when that
reaches MATCH_DB (float round-off, far above any quantized precision). Several nested modules with the same
output share one tensor; the deepest names it. The quantized models of the same run keep the float32
model's operator names (up to the constants they fuse), so their tensors are found by the first part of
the name. Not matched, listed with the reason: modules no tensor reproduces (a layout or a fold onnx2tf
chose, e.g. a BatchNorm folded into its convolution, whose pre-fold output exists nowhere) and tensors a
quantized model renamed.

Errors, as SNR in dB against PyTorch's output of the same module:

  cumulative  the artifact run end to end with every tensor preserved (the interpreter's own kernels: the
              read-out does not change what runs), each integer tensor dequantized with its own scale and
              zero point
  local       not measured: an interpreter runs a whole graph and cannot be fed a reference value in the
              middle. `drop_db` stands in for it: how much cumulative SNR the layer loses against the worst of
              the matched tensors that feed it (found by walking the artifact's operator inputs back through
              unmatched operators; the model input counts as exact). onnxruntime's local error, measured on
              cut-out sub-graphs, is the one to trust where both exist

`worst_local_layer` is the layer with the largest drop, `first_divergent_layer` the first layer whose drop is
at least half of it (none when no layer loses more than 3 dB) -- unless the float32 model itself leaves
PyTorch: a module that no tensor reproduces although tensors of its shape exist, and around which nothing is
reproduced either (so it is no fold), is then the first divergent layer (`float_model_diverges_at`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MATCH_DB = 40.0
JUMP_DB = 3.0


def _run_all(path: Path, x: np.ndarray) -> tuple[list[dict], dict[int, np.ndarray]]:
    """Operators (in execution order) and every operator output, dequantized to float32, stacked over x."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from converters.tflite_runtime import dequantize, quantize

    interpreter = Interpreter(model_path=str(path), num_threads=1, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    wanted = sorted({i for op in ops for i in op["outputs"]})
    first_in = interpreter.get_input_details()[0]
    found: dict[int, list[np.ndarray]] = {i: [] for i in wanted}
    for sample in x:
        nhwc = np.ascontiguousarray(sample[None].transpose(0, 2, 3, 1), dtype=np.float32)
        interpreter.set_tensor(first_in["index"], quantize(nhwc, first_in))
        interpreter.invoke()
        for i in wanted:
            try:
                value = interpreter.get_tensor(i)
            except ValueError:  # a tensor the runtime does not keep (scratch)
                continue
            d = details[i]
            q = d.get("quantization_parameters", {})
            if np.dtype(d["dtype"]).kind in "iu" and len(q.get("scales", [])) == 1:
                value = dequantize(value, {"dtype": d["dtype"], "quantization": (q["scales"][0], q["zero_points"][0])})
            found[i].append(np.asarray(value, dtype=np.float32).copy())
    names = {i: details[i]["name"] for i in wanted}
    values = {i: np.concatenate(v) for i, v in found.items() if len(v) == len(x)}
    return [{"op": op["op_name"], "inputs": [int(i) for i in op["inputs"]], "outputs": list(op["outputs"]),
             "names": [names[o] for o in op["outputs"]]} for op in ops], values


def _as_nchw(value: np.ndarray) -> np.ndarray:
    return value.transpose(0, 3, 1, 2) if value.ndim == 4 else value


def _key(name: str) -> str:
    return name.split(";")[0]


def match_modules(reference: dict[str, np.ndarray], ops: list[dict], values: dict[int, np.ndarray],
                  order: list[str]) -> tuple[list[dict], dict[str, str]]:
    """[{module, tensor name, op, position}] in execution order, {module: why not matched}, and the modules
    the float32 model itself does not reproduce (not folds: nothing around them is reproduced either)."""
    from compare.metrics import snr_db

    by_shape: dict[tuple, list[tuple[int, int, str, str]]] = {}
    for position, op in enumerate(ops):
        for index, name in zip(op["outputs"], op["names"]):
            if index in values:
                by_shape.setdefault(_as_nchw(values[index]).shape, []).append((position, index, name, op["op"]))
    owner: dict[int, dict] = {}
    unmatched = {}
    reproduced: set[str] = set()
    rng = np.random.Generator(np.random.PCG64(0))
    picks: dict[tuple, np.ndarray] = {}
    nchw = {i: _as_nchw(v) for i, v in values.items()}
    for module in order:
        if module not in reference:
            continue
        shape = reference[module].shape
        candidates = by_shape.get(shape, [])
        # a cheap first pass on 512 fixed elements, then the full comparison for the plausible ones
        size = int(np.prod(shape))
        pick = picks.setdefault(shape, rng.choice(size, size=min(size, 512), replace=False))
        ref_flat = reference[module].reshape(-1)
        plausible = [c for c in candidates
                     if snr_db(ref_flat[pick], nchw[c[1]].reshape(-1)[pick]) >= MATCH_DB - 10]
        scored = [(snr_db(reference[module], nchw[i]), position, i, name, op)
                  for position, i, name, op in plausible]
        best = max(scored, default=None)
        if best is None or best[0] < MATCH_DB:
            unmatched[module] = ("no tensor of its shape" if not candidates else
                                 "no tensor reproduces it (folded into a neighbour or laid out differently)")
            continue
        snr, position, index, name, op = best
        reproduced.add(module)
        previous = owner.get(index)
        if previous is None or len(module) > len(previous["module"]):
            owner[index] = {"module": module, "tensor": name, "op": op, "position": position, "index": index,
                            "match_snr_db": snr}
    # a module nothing reproduces although tensors of its shape exist, with no enclosing or enclosed module
    # reproduced either (so not a fold), is where the float model itself leaves PyTorch
    def related(module: str) -> bool:
        return any(m in reproduced for m in reference
                   if m != module and (module.startswith(m + ".") or m.startswith(module + ".")))

    diverged = [m for m in order if m in unmatched and unmatched[m].startswith("no tensor reproduces")
                and not related(m)]
    return sorted(owner.values(), key=lambda layer: layer["position"]), unmatched, diverged


def localize(float_tflite: Path, artifact: Path, net, x: np.ndarray) -> dict:
    """The diagnosis of one TFLite artifact (module docstring) on inputs `x` (N samples)."""
    from compare.metrics import snr_db
    from diagnose.onnx_layers import net_output, torch_outputs

    order = [name for name, _ in net.named_modules() if name]
    reference = torch_outputs(net, x, order)
    float_ops, float_values = _run_all(float_tflite, x)
    layers, unmatched, diverged = match_modules(reference, float_ops, float_values, order)
    ops, values = (float_ops, float_values) if artifact == float_tflite else _run_all(artifact, x)
    index_of = {_key(name): index for op in ops for index, name in zip(op["outputs"], op["names"])}
    final_index = ops[-1]["outputs"][0]
    final = _as_nchw(values[final_index]) if final_index in values else None
    producer = {o: op for op in ops for o in op["outputs"]}
    cumulative: dict[int, float] = {}
    rows = []

    def upstream(tensor: int, seen: set) -> list[float]:
        """Cumulative SNRs of the nearest matched tensors feeding `tensor` (inf at the model input)."""
        if tensor in cumulative:
            return [cumulative[tensor]]
        op = producer.get(tensor)
        if op is None or tensor in seen:
            return [] if op is not None or tensor not in graph_inputs else [float("inf")]
        seen.add(tensor)
        return [v for t in op["inputs"] if t >= 0 for v in upstream(t, seen)]

    graph_inputs = {ops[0]["inputs"][0]} if ops else set()
    for layer in layers:
        index = index_of.get(_key(layer["tensor"]))
        if index is None or index not in values:
            unmatched[layer["module"]] = "the artifact has no tensor of that name (renamed by the quantizer)"
            continue
        snr = snr_db(reference[layer["module"]], _as_nchw(values[index]).reshape(reference[layer["module"]].shape))
        feeding = [v for t in producer[index]["inputs"] if t >= 0 for v in upstream(t, set())]
        before = min(feeding) if feeding else None
        drop = before - snr if before is not None and np.isfinite(snr) and np.isfinite(before) else None
        cumulative[index] = snr
        rows.append({"module": layer["module"], "tensor": layer["tensor"], "op": layer["op"],
                     "cumulative_snr_db": snr, "local_snr_db": None, "drop_db": drop})
    drops = [row for row in rows if row["drop_db"] is not None]
    worst = max(drops, key=lambda row: row["drop_db"]) if drops else None
    if diverged:  # the float32 conversion itself is wrong from there on: that comes before any quantization
        first = diverged[0]
    elif worst is None or worst["drop_db"] < JUMP_DB:
        first = None
    else:
        first = next(row["module"] for row in drops if row["drop_db"] >= max(JUMP_DB, worst["drop_db"] / 2))
    expected = net_output(net, x)
    final = final.reshape(len(x), -1) if final is not None else None
    return {"toolchain": "tflite", "samples": int(len(x)),  # several outputs: no single final tensor to compare
            "final_snr_db": snr_db(expected, final) if final is not None and final.shape == expected.shape else None,
            "first_divergent_layer": first, "worst_local_layer": worst["module"] if worst else None,
            "rule": f"first layer whose cumulative-SNR drop is at least half the largest drop and {JUMP_DB:g} dB "
                    f"(local error cannot be fed in an interpreter)",
            "perturbation_snr_db": float("inf"), "matched": len(rows), "unmatched": unmatched,
            "float_model_diverges_at": diverged[:5], "layers": rows}
