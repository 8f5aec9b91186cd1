"""Drift: live PyTorch must still reproduce the stored golden outputs."""
from __future__ import annotations

import pytest

from compare.golden import UPDATE_HINT
from compare.metrics import parity_metrics
from compare.verdict import judge
from harness.checks import row_for
from models import datasets


@pytest.mark.drift
def test_golden_drift(natural_subject, pipeline, golden_store, budgets, record_result, conversion):
    with conversion(row_for(natural_subject, "drift")):
        golden = golden_store(natural_subject)
        live = pipeline.reference_outputs(natural_subject, datasets.parity_inputs(natural_subject))
    if golden.layout is not None:  # a declared output that changed its shape: say which, and how to fix it
        from compare.outputs import OutputShapeError, unpack

        try:
            unpack(live, golden.layout, f"{natural_subject.id}: live PyTorch")
        except OutputShapeError as exc:
            pytest.fail(f"{exc}\nIf the model change is intended, regenerate the golden outputs: "
                        f"`{UPDATE_HINT.format(name=natural_subject.id)}`", pytrace=False)
    verdict = judge(f"{natural_subject.id} golden", "drift", parity_metrics(golden.logits, live), budgets.table("drift"))
    record_result(row_for(natural_subject, "drift", metrics=verdict.metrics,
                          weights_sha256=pipeline.weights_sha256(natural_subject)))
    if not verdict.passed:
        pytest.fail(verdict.message() + "\nLive PyTorch no longer reproduces the stored golden outputs. If the "
                    f"model change is intended, regenerate them: `{UPDATE_HINT.format(name=natural_subject.id)}`",
                    pytrace=False)
