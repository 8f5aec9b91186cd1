"""Detection power at every precision of both toolchains: faults injected at run time (around onnxruntime
and the TFLite interpreter) and inside each artifact (an ONNX graph edit, a TFLite flatbuffer edit) must fail
the same verdict the matrix applies (the golden comparison and, for quantized artifacts, the simulated-
quantization reference rebuilt from the faulty artifact, as the matrix would build it), against the same
budgets. A fault that changes the outputs less than the precision's own error may pass: the line says so,
with both sizes, instead of pretending; one that changes them more and passes fails this test."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from compare.cases import ResultRow, precision as precision_of
from compare.metrics import snr_db
from converters import formats, predict
from converters.pipeline import Case
from harness.checks import output_verdicts, simulated
from models import Subject, datasets
from tests.selftest import faults

pytestmark = pytest.mark.selftest
MODEL = "mobilenet_v3_small"  # hard-swish, squeeze-excite and residual adds
COLUMNS = [(f.name, p) for f in formats.formats() if f.name in ("onnx", "tflite") for p in f.precisions]


def _rebuilt_reference(fmt, case, faulty, pipeline, tmp_path):
    """(runner, static checks) of a faulty artifact's simulated reference, made the way the matrix makes it
    from a real one."""
    if case.precision not in fmt.references:
        return None, {}
    if fmt.name == "onnx":
        from converters.formats import onnxrt

        entry = tmp_path / "entry"
        entry.mkdir(exist_ok=True)
        shutil.copyfile(faulty, entry / onnxrt.ONNX_FILE)
        shutil.copyfile(pipeline.artifact(case).parent / onnxrt.FLOAT_SOURCE_FILE, entry / onnxrt.FLOAT_SOURCE_FILE)
        onnxrt.simulate({"deps": {"of": str(entry)}, "options": {"of": "of"}}, entry)
        path = entry / onnxrt.REFERENCE_FILE
        static = json.loads(path.with_suffix(".json").read_text())["constant_error_steps"]
    else:
        from tensorflow.lite.tools import flatbuffer_utils

        from converters import tflite_simulation

        path = tmp_path / f"reference-{faulty.name}"
        float_model = pipeline.artifact(Case(case.subject, "tflite", "fp32"))
        model, static, _ = tflite_simulation.simulated(float_model, faulty)
        flatbuffer_utils.write_model(model, str(path))
    return fmt.reference_runner(path, case.subject.to_params(), 1), {"constant_error_steps": static}


def _line(case, fault, verdicts, size_db, own_db) -> tuple[str, bool]:
    failed = [c for v in verdicts for c in v.failures]
    problems = [p for v in verdicts for p in v.problems]
    sizes = f"(the fault moves outputs to {size_db:.1f} dB SNR; the precision's own error is {own_db:.1f} dB)"
    head = f"detection {case.subject.id} {case.format}-{case.precision} {fault.name}"
    if failed or problems:
        suites = sorted({v.suite for v in verdicts if not v.passed})
        detail = "; ".join(problems + [f"{v.suite} {c.margin()}" for v in verdicts for c in v.failures][:3])
        return f"{head}: caught by {'+'.join(suites)}: {detail} {sizes}", True
    if size_db > own_db:
        return f"{head}: not caught, and smaller than the precision's own error {sizes}", True
    return f"{head}: NOT CAUGHT {sizes}", False


@pytest.mark.parametrize("format_name, precision", COLUMNS, ids=[f"{f}-{p}" for f, p in COLUMNS])
def test_faults_are_caught_at_every_precision(format_name, precision, pipeline, golden_store, budgets,
                                              record_result, tmp_path):
    fmt, subject = formats.get(format_name), Subject.of(MODEL)
    case = Case(subject, format_name, precision)
    inputs, golden = datasets.parity_inputs(subject), golden_store(subject).logits
    clean = predict(pipeline.runner(case, threads=1), inputs)
    reference, static = simulated(pipeline, case, inputs)
    own = snr_db(golden, clean)
    missed, tried = [], 0
    for fault in faults.faults_for(precision_of(precision).quantized):
        if fault.runtime is not None:
            outputs = predict(fault.runtime(pipeline.runner(case, threads=1)), inputs)
            fault_reference, fault_static = reference, static
        else:
            faulty = tmp_path / f"{fault.name}{pipeline.artifact(case).suffix}"
            if not faults.edit(format_name, fault.name, pipeline.artifact(case), faulty):
                continue  # e.g. per-channel scales where the weights have one scale
            outputs = predict(fmt.runner(faulty, subject.to_params(), 1), inputs)
            rebuilt, fault_static = _rebuilt_reference(fmt, case, faulty, pipeline, tmp_path)
            fault_reference = predict(rebuilt, inputs) if rebuilt is not None else None
        tried += 1
        verdicts = output_verdicts(case.id, precision, golden, outputs, fault_reference, budgets, "parity",
                                   fault_static)
        size = snr_db(clean, outputs) if outputs.shape == clean.shape and np.isfinite(outputs).all() else -np.inf
        line, ok = _line(case, fault, verdicts, size, own)
        record_result(ResultRow(case=f"{case.id}-{fault.name}", kind="detection", line=line))
        print(line)
        if not ok:
            missed.append(line)
    assert tried >= 6, f"only {tried} faults applied to {case.id}"
    assert not missed, "\n".join(missed)
