"""Measure where litert-torch's int8 loses accuracy on a subject: the evidence behind the litert-int8 known
failures.

    python -m scripts.litert_levers SUBJECT [SUBJECT ...] [--cache DIR]      (in `tox -e litert`'s env)

SUBJECT is a zoo model (judged against its stored golden outputs on the parity inputs, as test_parity does)
or a digits-trained one, `<model>_digits` (judged against PyTorch on the labelled test split, as the trained
suite does). Each row is one way of computing the same int8 model, from the suite's own artifacts (built or
reused through the artifact cache):

  pt2e_graph        the PT2E graph in PyTorch after convert_pt2e: what the quantizer declares, calibrated as
                    the litert_int8 step calibrates (fake quantization on float kernels)
  artifact          the litert-int8 artifact on XNNPACK, as the suite runs it
  artifact_builtin  the same file on TFLite's builtin kernels (no XNNPACK)
  biases_rescaled   the artifact with every int32 bias whose scale is not input scale x weight scale
                    requantized to that scale (the scale TFLite's integer kernels assume, and never read)
  simulation        the artifact's simulated reference (litert_reference): its stored constants and
                    activation grids on float kernels

and `bias scale` says how far off the worst such bias is (its scale over input x weight scale) and where.

This is measurement, not a fix: a case that fails because of a measured lever is a known failure whose
reason cites this script's numbers.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

INT32 = 2  # TFLite TensorType
OP_NAMES = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED", 67: "TRANSPOSE_CONV"}


def _quantized_biases(model):
    """(op code, output tensor, input, weight, bias) of every weighted op (tflite_simulation.WEIGHTED_OPS)
    with a quantized int32 bias."""
    from converters.tflite_simulation import WEIGHTED_OPS, _opcode

    graph = model.subgraphs[0]
    for op in graph.operators:
        if _opcode(model, op) not in WEIGHTED_OPS or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        x, w, b = (graph.tensors[t] for t in op.inputs[:3])
        if b.type == INT32 and all(t.quantization is not None and t.quantization.scale is not None
                                   for t in (x, w, b)):
            yield _opcode(model, op), graph.tensors[op.outputs[0]], x, w, b


def bias_scales(model) -> list[tuple[str, str, float]]:
    """(op, output tensor, worst bias scale / (input scale x weight scale)) for every weighted op whose
    int32 bias is not on the grid its integer kernel assumes."""
    out = []
    for code, y, x, w, b in _quantized_biases(model):
        ratio = np.asarray(b.quantization.scale) / (np.asarray(x.quantization.scale) * np.asarray(w.quantization.scale))
        worst = float(ratio[np.argmax(np.abs(ratio - 1))])
        if abs(worst - 1) > 1e-3:
            out.append((OP_NAMES[code], y.name.decode(errors="replace"), worst))
    return out


def rescale_biases(src: Path, dst: Path) -> None:
    """Write `src` with each off-grid int32 bias requantized to input scale x weight scale."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    for _, _, x, w, b in list(_quantized_biases(model)):
        if model.buffers[b.buffer].data is None:
            continue
        target = np.asarray(x.quantization.scale) * np.asarray(w.quantization.scale)
        declared = np.asarray(b.quantization.scale)
        if np.allclose(declared, target, rtol=1e-3):
            continue
        stored = np.frombuffer(np.asarray(model.buffers[b.buffer].data, np.uint8).tobytes(), np.int32)
        value = stored * declared  # what the bias stands for
        model.buffers[b.buffer].data = np.frombuffer(np.round(value / target).astype(np.int32).tobytes(), np.uint8)
        b.quantization.scale = [float(s) for s in np.broadcast_to(target, declared.shape)]
    flatbuffer_utils.write_model(model, str(dst))


def levers(name: str, cache: str) -> tuple[list[tuple[str, dict]], list]:
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from tensorflow.lite.tools import flatbuffer_utils
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from compare.metrics import parity_metrics
    from converters import predict
    from converters.cache import ArtifactCache
    from converters.formats import litert
    from converters.onnx_names import CALIBRATION_FILE
    from converters.pipeline import Pipeline
    from converters.torch_weights import WEIGHTS_FILE, load
    from models.packing import split_inputs
    from scripts.nncf_levers import judged

    pipe = Pipeline(ArtifactCache(cache))
    subject, x, labels, expected = judged(pipe, name)
    params = subject.to_params()
    artifact = pipe.entry("litert_int8", subject) / litert.MODEL_FILE
    outputs = {}
    net = load(params, pipe.entry("weights", subject) / WEIGHTS_FILE).eval()
    shapes = subject.sample_shapes()
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    graph = prepare_pt2e(torch.export.export(net, tuple(torch.zeros(s) for s in subject.input_shapes(1))).module(),
                         quantizer)
    with torch.no_grad():
        for row in np.load(pipe.calibration(subject) / CALIBRATION_FILE):
            graph(*(torch.from_numpy(np.ascontiguousarray(a)) for a in split_inputs(row[None], shapes)))
        graph = convert_pt2e(graph, fold_quantize=False)
        outputs["pt2e_graph"] = np.concatenate([graph(*(torch.from_numpy(np.ascontiguousarray(a)) for a in
                                                        split_inputs(x[i:i + 1], shapes))).numpy()
                                                for i in range(len(x))])
    outputs["artifact"] = predict(litert.LiteRtRunner(artifact, params, 1), x)
    outputs["artifact_builtin"] = predict(litert.LiteRtRunner(artifact, params, 1, optimized=False), x)
    with tempfile.TemporaryDirectory(prefix=f"litert-levers-{name}-") as tmp:
        rescaled = Path(tmp) / "biases_rescaled.tflite"
        rescale_biases(artifact, rescaled)
        outputs["biases_rescaled"] = predict(litert.LiteRtRunner(rescaled, params, 1), x)
    outputs["simulation"] = predict(litert.reference_runner(
        pipe.entry("litert_reference", subject) / litert.REFERENCE_FILE, params, 1), x)
    rows = []
    for lever, y in outputs.items():
        metrics = parity_metrics(expected, y)
        if labels is not None:
            metrics["accuracy_drop"] = 100 * (np.mean(expected.argmax(1) == labels) - np.mean(y.argmax(1) == labels))
        rows.append((lever, metrics))
    return rows, bias_scales(flatbuffer_utils.read_model(str(artifact)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("subjects", nargs="+")
    parser.add_argument("--cache", default=os.environ.get("CONVSUITE_CACHE_DIR", ".convsuite-cache"))
    args = parser.parse_args(argv)
    lines = [f"{'subject':34s} {'computed as':18s} {'SNR dB':>7s} {'cos mean':>9s} {'top-1':>6s} {'acc drop':>8s}"]
    for name in args.subjects:
        rows, off = levers(name, args.cache)
        for lever, m in rows:
            drop = f"{m['accuracy_drop']:+8.2f}" if "accuracy_drop" in m else f"{'':8s}"
            lines.append(f"{name:34s} {lever:18s} {m['snr_db']:7.2f} {m['cosine_mean']:9.4f} "
                         f"{m['top1_agreement']:6.3f} {drop}")
        worst = max(off, key=lambda o: abs(o[2] - 1), default=None)
        lines.append(f"{name:34s} bias scale: " + (f"{len(off)} op(s) off the input x weight grid, worst "
                                                   f"{worst[2]:.4g}x at {worst[0]} {worst[1]}" if worst else
                                                   "every int32 bias on the input x weight grid"))
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
