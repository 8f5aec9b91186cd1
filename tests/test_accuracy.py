"""Accuracy: every digits-trained model x format x precision on the labelled test split, against an
accuracy-drop budget; and every trained model against its accuracy floor."""
from __future__ import annotations

import pytest

from compare.metrics import accuracy, parity_metrics
from compare.verdict import judge
from converters import predict
from converters.isolate import ConversionError
from converters.pipeline import Case
from converters.pytorch import load, reference_outputs
from models import datasets


def _trained(pipeline, subject, record_result, case_id, **fields):
    try:
        return pipeline.trained(subject)
    except ConversionError as exc:
        record_result(case=case_id, kind="accuracy", model=subject.id, arch=subject.model, error=exc.reason, **fields)
        pytest.fail(f"{case_id}: training failed: {exc}", pytrace=False)


def _reference(pipeline, subject, x):
    return reference_outputs(load(subject.to_params(), pipeline.weights(subject)), x)


@pytest.mark.accuracy
def test_trained_model_reaches_floor(subject, pipeline, budgets, record_result):
    trained = _trained(pipeline, subject, record_result, f"{subject.id}-pytorch-fp32")
    x, y = datasets.labelled(trained, "test")
    acc = accuracy(_reference(pipeline, trained, x), y)
    record_result(case=f"{subject.id}-pytorch-fp32", kind="accuracy", model=subject.id, arch=subject.model, format="pytorch",
                  precision="fp32", accuracy=acc)
    verdict = judge(f"{subject.id} (trained, PyTorch)", "accuracy", {"accuracy": acc}, budgets.table("training"))
    if not verdict.passed:
        pytest.fail(verdict.message(), pytrace=False)


def test_accuracy(accuracy_case, pipeline, budgets, record_result):
    case = accuracy_case
    fields = dict(format=case.format, precision=case.precision)
    subject = _trained(pipeline, case.subject, record_result, case.id, **fields)
    x, y = datasets.labelled(subject, "test")
    reference = _reference(pipeline, subject, x)
    try:
        outputs = predict(pipeline.runner(Case(subject, case.format, case.precision), threads=1), x)
    except ConversionError as exc:
        record_result(case=case.id, kind="accuracy", model=case.subject.id, arch=case.subject.model, error=exc.reason, **fields)
        pytest.fail(f"{case.id}: conversion failed: {exc}", pytrace=False)
    ref_acc, acc = accuracy(reference, y), accuracy(outputs, y)
    drop = ref_acc - acc
    verdict = judge(case.id, "accuracy", {"accuracy_drop": drop}, budgets.for_case(case.id, case.precision))
    record_result(case=case.id, kind="accuracy", model=case.subject.id, arch=case.subject.model, reference_accuracy=ref_acc, accuracy=acc,
                  accuracy_drop=drop, **parity_metrics(reference, outputs), **fields)
    if not verdict.passed:
        pytest.fail(f"{verdict.message()}\n  accuracy: PyTorch {ref_acc:.2f} %, {case.format}-{case.precision} "
                    f"{acc:.2f} % on {len(y)} labelled test images ({subject.data})", pytrace=False)
