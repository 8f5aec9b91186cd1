"""Parity: every model x format x precision against the stored PyTorch golden outputs (what the conversion
and its quantization cost), and each quantized artifact against its simulated-quantization reference (the
conversion's own error)."""
from __future__ import annotations

import diagnose
from compare.metrics import broken_snr_db
from compare.verdict import decide
from harness.checks import declared_verdicts, output_verdicts, row_for, settle, simulated, top1
from harness.options import DIAGNOSE
from models import datasets


def test_parity(parity_case, pipeline, golden_store, budgets, known_failures, record_result, conversion,
                pytestconfig):
    case = parity_case
    row = row_for(case, "parity")
    with conversion(row):
        golden = golden_store(case.subject)
        inputs = datasets.parity_inputs(case.subject)
        outputs = pipeline.outputs(case, inputs)
        reference, static = simulated(pipeline, case, inputs)
        row.size_bytes = pipeline.artifact_size(case)
    if golden.layout is None:  # a classifier of the zoo: logits
        verdicts = output_verdicts(case.id, case.precision, golden.logits, outputs, reference, budgets, "parity",
                                   static)
        row.metrics = verdicts[0].metrics
        row.broken = broken_snr_db(golden.logits)
        row.top1, row.reference_top1 = top1(outputs), top1(golden.logits)
    else:  # a models.model registration: each declared output by its kind
        verdicts, row.outputs = declared_verdicts(case.id, case.precision, golden.layout, golden.logits, outputs,
                                                  reference, budgets, static)
        row.metrics = verdicts[0].metrics  # the first output's, for the report's matrix
    reference_verdicts = [v for v in verdicts if v.suite == "reference"]
    row.reference_metrics = reference_verdicts[0].metrics if reference_verdicts else {}
    decision = decide(case.id, verdicts, known_failures.lookup(case.id, "parity"))
    diagnose.attach(row, pipeline, case, inputs, pytestconfig.getoption(DIAGNOSE), decision.outcome,
                    golden.logits, budgets.for_case("parity", case.id, case.precision))
    record_result(row)
    settle(decision)
