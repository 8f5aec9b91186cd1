"""Measure NNCF quantization levers on a subject: the evidence behind the openvino-int8 known failures.

    python -m scripts.nncf_levers SUBJECT [SUBJECT ...] [--levers NAME ...] [--cache DIR]

SUBJECT is a zoo model (judged against its stored golden outputs on the parity inputs, as test_parity does)
or a digits-trained one, `<model>_digits` (judged against PyTorch on the labelled test split, as the trained
suite does). For each, quantizes the suite's own OpenVINO fp32 IR (built or reused through the artifact
cache) the way the suite does (`suite`: NNCF's defaults with overflow_fix=ENABLE), then with one lever
changed at a time, `nncf_defaults` among them (converters.formats.openvino.levers), and prints SNR, mean
cosine, top-1 agreement and, for digits subjects, the accuracy drop. Runs on this CPU's kernels: set
ONEDNN_MAX_CPU_ISA=AVX2 to see AVX2's.

This is measurement, not a fix: a case that fails because of a measured lever is a known failure whose
reason cites this script's numbers.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _subject(name: str):
    from models import subjects
    from models.subject import Subject

    digits = {s.id: s for s in subjects.digits()}
    return digits[name] if name in digits else Subject.of(name)


def judged(pipe, name: str):
    """(subject, inputs, labels or None, expected outputs) for SUBJECT: a zoo model against its golden outputs
    on the parity inputs, as test_parity judges it; a digits one against PyTorch on the labelled test split."""
    from compare import golden
    from models import datasets
    from models.images import array_digest

    subject = _subject(name)
    if subject.data == "digits":
        x, labels = datasets.labelled(subject, "test")
        return subject, x, labels, pipe.reference_outputs(subject, x)
    x = datasets.parity_inputs(subject)
    return subject, x, None, golden.load(ROOT / "golden", subject.id, subject.identity(), array_digest(x)).logits


def levers(name: str, chosen: list[str], cache: str) -> list[tuple[str, dict]]:
    import nncf
    import openvino as ov

    from compare.metrics import parity_metrics
    from converters import predict
    from converters.cache import ArtifactCache
    from converters.formats import openvino as ovf
    from converters.onnx_names import CALIBRATION_FILE
    from converters.pipeline import Pipeline

    pipe = Pipeline(ArtifactCache(cache))
    subject, x, labels, expected = judged(pipe, name)
    model = ov.Core().read_model(str(pipe.entry("openvino", subject) / ovf.IR_FILE))
    data = np.load(pipe.calibration(subject) / CALIBRATION_FILE)
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"nncf-levers-{name}-") as tmp:  # removed with its models
        work = Path(tmp)
        for lever in chosen:
            quantized = nncf.quantize(model.clone(), ovf.dataset(subject, data), subset_size=len(data),
                                      **ovf.levers()[lever])
            path = work / lever / ovf.IR_FILE
            path.parent.mkdir()
            ov.save_model(quantized, str(path), compress_to_fp16=False)
            y = predict(ovf.OpenVinoRunner(path, subject.to_params(), 1), x)
            metrics = parity_metrics(expected, y)
            if labels is not None:
                metrics["accuracy_drop"] = 100 * (np.mean(expected.argmax(1) == labels)
                                                  - np.mean(y.argmax(1) == labels))
            rows.append((lever, metrics))
    return rows


def main(argv=None) -> int:
    os.environ.setdefault("CI", "true")  # OpenVINO's and NNCF's telemetry off, as in the suite's steps
    from converters.formats import openvino as ovf

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("subjects", nargs="+")
    parser.add_argument("--levers", nargs="+", default=list(ovf.levers()), choices=list(ovf.levers()))
    parser.add_argument("--cache", default=os.environ.get("CONVSUITE_CACHE_DIR", ".convsuite-cache"))
    args = parser.parse_args(argv)
    lines = [f"{'subject':34s} {'lever':20s} {'SNR dB':>7s} {'cos mean':>9s} {'top-1':>6s} {'acc drop':>8s}"]
    for name in args.subjects:
        for lever, m in levers(name, args.levers, args.cache):
            drop = f"{m['accuracy_drop']:+8.2f}" if "accuracy_drop" in m else f"{'':8s}"
            lines.append(f"{name:34s} {lever:20s} {m['snr_db']:7.2f} {m['cosine_mean']:9.4f} "
                         f"{m['top1_agreement']:6.3f} {drop}")
    print("\n".join(lines), flush=True)  # after NNCF's progress bars
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
