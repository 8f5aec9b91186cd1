"""Drift: live PyTorch must still reproduce the stored golden outputs."""
from __future__ import annotations

import pytest

from compare.golden import UPDATE_HINT
from compare.metrics import parity_metrics
from compare.verdict import judge
from converters.pytorch import reference_outputs
from models import datasets


@pytest.mark.drift
def test_golden_drift(subject, golden_store, budgets):
    golden = golden_store(subject)
    live = reference_outputs(subject.build(), datasets.parity_inputs(subject))
    verdict = judge(f"{subject.id} golden", "drift", parity_metrics(golden.logits, live), budgets.table("drift"))
    if not verdict.passed:
        pytest.fail(verdict.message() + "\nLive PyTorch no longer reproduces the stored golden outputs. If the "
                    f"model change is intended, regenerate them: `{UPDATE_HINT.format(name=subject.id)}`", pytrace=False)
