"""Parity: every model x format x precision against the stored PyTorch golden outputs (what the conversion
and its quantization cost), and each quantized artifact against its simulated-quantization reference (the
conversion's own error)."""
from __future__ import annotations

from compare.verdict import decide
from converters import predict
from harness.checks import output_verdicts, row_for, settle
from models import datasets


def test_parity(parity_case, pipeline, golden_store, budgets, known_failures, record_result, conversion):
    case = parity_case
    row = row_for(case, "parity")
    golden = golden_store(case.subject)
    inputs = datasets.parity_inputs(case.subject)
    with conversion(row):
        outputs = predict(pipeline.runner(case, threads=1), inputs)
        simulated = pipeline.simulated_runner(case)
        reference = predict(simulated, inputs) if simulated is not None else None
        row.size_bytes = pipeline.artifact(case).stat().st_size
    verdicts = output_verdicts(case.id, case.precision, golden.logits, outputs, reference, budgets, "parity")
    row.metrics = verdicts[0].metrics
    row.reference_metrics = verdicts[1].metrics if len(verdicts) > 1 else {}
    record_result(row)
    settle(decide(case.id, verdicts, known_failures.lookup(case.id, "parity")))
