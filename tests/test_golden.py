"""Drift: live PyTorch must still reproduce the stored golden outputs."""
from __future__ import annotations

import pytest

from compare.golden import UPDATE_HINT
from compare.metrics import parity_metrics
from compare.verdict import judge
from models import datasets


@pytest.mark.drift
def test_golden_drift(natural_subject, pipeline, golden_store, budgets):
    golden = golden_store(natural_subject)
    live = pipeline.reference_outputs(natural_subject, datasets.parity_inputs(natural_subject))
    verdict = judge(f"{natural_subject.id} golden", "drift", parity_metrics(golden.logits, live), budgets.table("drift"))
    if not verdict.passed:
        pytest.fail(verdict.message() + "\nLive PyTorch no longer reproduces the stored golden outputs. If the "
                    f"model change is intended, regenerate them: `{UPDATE_HINT.format(name=natural_subject.id)}`",
                    pytrace=False)
