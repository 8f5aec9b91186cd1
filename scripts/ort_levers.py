"""Measure onnxruntime quantization levers on a zoo model: the evidence behind known-failure mechanisms.

    python -m scripts.ort_levers SUBJECT [SUBJECT ...] --path dynamic|static [--cache DIR]

For each subject (a zoo model, a `<model>_digits` model or a variant of one), quantizes the suite's own float
ONNX artifact (built or reused through the artifact cache) the way the suite does, then with one lever
changed at a time, and prints parity against the stored golden outputs (a digits subject: against PyTorch on
its labelled test split). A lever that restores most of the loss names where the loss sits:

  dynamic  default (the suite's converter) | depthwise convs left float | pointwise convs left float |
           per-channel weights
  static   default (the suite's converter: MinMax, per-channel, reduce_range) | percentile calibration |
           depthwise convs left float | pointwise convs left float | reduce_range off (full 8-bit weights:
           on CPUs without VNNI, u8 x s8 pairs can saturate int16, the README says why the suite keeps it on)

This is measurement, not a fix: the suite keeps converting the way users do, and a case that fails because of
a documented lever is a known failure whose reason cites this script's numbers.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np


def _run(path: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def levers(model: str, path: str, cache: str) -> list[tuple[str, dict]]:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, \
        quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from compare import golden
    from compare.metrics import parity_metrics
    from converters.cache import ArtifactCache
    from converters.formats.onnxrt import _Calibration
    from converters.onnx_names import CALIBRATION_FILE, ONNX_FILE
    from converters.pipeline import Pipeline
    from models import datasets, subjects
    from models.images import array_digest
    from models.subject import Subject

    pipe = Pipeline(ArtifactCache(cache))
    digits = {s.id: s for s in subjects.digits()}
    subject = digits[model] if model in digits else Subject.of(model)
    if subject.data == "digits":  # a digits model or variant: against PyTorch on its labelled test split
        x = datasets.labelled(subject, "test")[0]
        expected = pipe.reference_outputs(subject, x)
    else:
        x = datasets.parity_inputs(subject)
        expected = golden.load(Path(__file__).resolve().parent.parent / "golden", subject.id, subject.identity(),
                               array_digest(x)).logits
    with tempfile.TemporaryDirectory(prefix=f"levers-{model}-") as tmp:  # removed with its models
        work = Path(tmp)
        pre = str(work / "pre.onnx")
        quant_pre_process(str(pipe.entry("onnx", subject) / ONNX_FILE), pre)
        nodes = onnx.load(pre).graph.node
        depthwise = [n.name for n in nodes if n.op_type == "Conv"
                     and any(a.name == "group" and a.i > 1 for a in n.attribute)]
        pointwise = [n.name for n in nodes if n.op_type == "Conv" and n.name not in depthwise]
        out, rows = str(work / "q.onnx"), []
        if path == "dynamic":
            variants = {"default": {}, "depthwise convs float": {"nodes_to_exclude": depthwise},
                        "pointwise convs float": {"nodes_to_exclude": pointwise},
                        "per-channel weights": {"per_channel": True}}
            for label, extra in variants.items():
                quantize_dynamic(pre, out, weight_type=QuantType.QInt8, **extra)
                rows.append((label, parity_metrics(expected, _run(out, x))))
        else:
            calibration = pipe.calibration(subject) / CALIBRATION_FILE
            base = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, reduce_range=True, calibrate_method=CalibrationMethod.MinMax)
            variants = {"default": {}, "percentile calibration": {"calibrate_method": CalibrationMethod.Percentile},
                        "depthwise convs float": {"nodes_to_exclude": depthwise},
                        "pointwise convs float": {"nodes_to_exclude": pointwise},
                        "reduce_range off": {"reduce_range": False}}
            for label, extra in variants.items():
                quantize_static(pre, out, _Calibration(calibration), **{**base, **extra})
                rows.append((label, parity_metrics(expected, _run(out, x))))
        return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--path", choices=("dynamic", "static"), required=True)
    parser.add_argument("--cache", default=os.environ.get("CONVSUITE_CACHE_DIR", ".convsuite-cache"))
    args = parser.parse_args(argv)
    print(f"{'model':28s} {'lever':24s} {'SNR dB':>7s} {'cos mean':>9s} {'top-1':>6s}")
    for model in args.models:
        for label, m in levers(model, args.path, args.cache):
            print(f"{model:28s} {label:24s} {m['snr_db']:7.2f} {m['cosine_mean']:9.4f} {m['top1_agreement']:6.3f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
