"""Parity: every model x format x precision against the stored PyTorch golden outputs."""
from __future__ import annotations

import pytest

from compare.verdict import judge_parity
from converters import predict
from converters.isolate import ConversionError
from models import datasets


def test_parity(parity_case, pipeline, golden_store, budgets, record_result):
    case = parity_case
    golden = golden_store(case.subject)
    try:
        runner = pipeline.runner(case, threads=1)
    except ConversionError as exc:
        record_result(case=case.id, kind="parity", model=case.subject.id, arch=case.subject.model, format=case.format,
                      precision=case.precision, error=exc.reason)
        pytest.fail(f"{case.id}: conversion failed: {exc}", pytrace=False)
    outputs = predict(runner, datasets.parity_inputs(case.subject))
    verdict = judge_parity(case.id, golden.logits, outputs, budgets.for_case(case.id, case.precision))
    artifact = pipeline.artifact(case)
    record_result(case=case.id, kind="parity", model=case.subject.id, arch=case.subject.model, format=case.format, precision=case.precision,
                  size_bytes=artifact.stat().st_size, **verdict.metrics)
    if not verdict.passed:
        pytest.fail(verdict.message(), pytrace=False)
