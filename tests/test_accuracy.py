"""Accuracy: every trained model x format x precision on its labelled test split: the accuracy drop with the
paired counts behind it, parity against PyTorch on the same images, and the quantized artifact against its
simulated-quantization reference. A QAT variant's artifact that carries its learned quantization is judged
against the learned fake-quantized network instead (Pipeline.expected_outputs): what QAT trained. And every
trained model against its accuracy floor in PyTorch."""
from __future__ import annotations

import pytest

from compare.metrics import broken_snr_db
from compare.verdict import decide, judge
from harness.checks import accuracy_metrics, output_verdicts, row_for, settle, simulated, top1
from models import datasets


@pytest.mark.accuracy
def test_trained_model_reaches_floor(trained_subject, pipeline, budgets, record_result, conversion):
    row = row_for(trained_subject, "training", format="pytorch", precision="fp32")
    x, y = datasets.labelled(trained_subject, "test")
    with conversion(row):
        logits = pipeline.reference_outputs(trained_subject, x)
    row.accuracy = accuracy_metrics(logits, logits, y)["accuracy"]
    row.weights_sha256 = pipeline.weights_sha256(trained_subject)
    record_result(row)
    settle(decide(row.case, [judge(f"{row.case} (trained, PyTorch)", "training", {"accuracy": row.accuracy},
                                   budgets.table("training"))]))


def test_accuracy(accuracy_case, pipeline, budgets, known_failures, record_result, conversion):
    case = accuracy_case
    row = row_for(case, "accuracy")
    x, y = datasets.labelled(case.subject, "test")
    with conversion(row):
        expected = pipeline.expected_outputs(case, x)
        outputs = pipeline.outputs(case, x)
        reference, static = simulated(pipeline, case, x)
    counts = accuracy_metrics(expected, outputs, y)
    for name, value in counts.items():
        setattr(row, name, value)
    verdicts = output_verdicts(case.id, case.precision, expected, outputs, reference, budgets, "trained",
                               static)
    verdicts.insert(0, judge(case.id, "accuracy", counts, budgets.for_case("accuracy", case.id, case.precision)))
    pytorch = "PyTorch (learned fake quantization)" if pipeline.learned_quantization(case) else "PyTorch"
    verdicts[0].note = (f"accuracy: {pytorch} {row.reference_accuracy:.2f} %, {case.format}-{case.precision} "
                        f"{row.accuracy:.2f} % on {row.images} labelled test images ({case.subject.data}): "
                        f"{row.lost} right in PyTorch and wrong after conversion, {row.gained} the reverse")
    row.metrics = verdicts[1].metrics
    row.top1, row.reference_top1 = top1(outputs), top1(expected)
    row.broken = broken_snr_db(expected)
    row.reference_metrics = verdicts[2].metrics if len(verdicts) > 2 else {}
    record_result(row)
    settle(decide(case.id, verdicts, known_failures.lookup(case.id, "accuracy")))
