"""Detection power: deliberately broken conversions of MobileNetV3-Small (it has hard-swish and SE) must
each fail the same parity verdict the matrix applies, against the same budgets and golden outputs; the
clean conversion must pass. Each result row says which metric caught the bug and by how much."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from compare.budgets import BUDGET_KEYS
from compare.verdict import judge_outputs
from converters import predict
from converters.cache import ArtifactCache
from converters.formats.onnxrt import OrtRunner
from converters.pipeline import Case, Pipeline
from compare.cases import ResultRow
from models import Subject, datasets
from tests.selftest import mutations

pytestmark = pytest.mark.selftest
MODEL = "mobilenet_v3_small"


@pytest.fixture(scope="module")
def clean(pipeline):
    subject = Subject.of(MODEL)
    return subject, onnx.load(str(pipeline.artifact(Case(subject, "onnx", "fp32")))), datasets.parity_inputs(subject)


def _caught_by(verdict) -> str:
    """Every failed check as `metric measured < or > budget`, the most decisive first (largest shortfall
    relative to its budget)."""
    if verdict.problems:
        return "; ".join(verdict.problems)

    def shortfall(c):
        return float("inf") if not np.isfinite(c.measured) else abs(c.measured - c.limit) / max(abs(c.limit), 1e-12)

    parts = []
    for c in sorted(verdict.failures, key=shortfall, reverse=True):
        op = "<" if c.is_floor else ">"
        # 4 digits, or 7 where 4 would round a near miss onto its budget (cosine 0.99995 vs 0.99999)
        digits = 7 if abs(c.measured - c.limit) < 1e-3 * abs(c.limit) else 4
        parts.append(f"{BUDGET_KEYS[c.key]} {c.measured:.{digits}g} {op} {c.limit:g}")
    return "; ".join(parts)


def _line(name, verdict) -> str:
    return f"detection {MODEL} {name}: " + ("NOT CAUGHT" if verdict.passed else f"caught by {_caught_by(verdict)}")


def test_clean_conversion_passes(clean, golden_store, budgets, tmp_path):
    subject, model, inputs = clean
    mutations.save(model, tmp_path / "clean.onnx")
    outputs = predict(OrtRunner(tmp_path / "clean.onnx", threads=1), inputs)
    case_id = f"{MODEL}-onnx-fp32"
    verdict = judge_outputs(case_id, "parity", golden_store(subject).logits, outputs,
                            budgets.for_case("parity", case_id, "fp32"))
    assert verdict.passed, verdict.message()


@pytest.mark.parametrize("name", sorted(mutations.MUTATIONS))
def test_broken_conversion_is_caught(name, clean, golden_store, budgets, record_result, tmp_path):
    subject, model, inputs = clean
    spec = subject.arch().input
    broken = mutations.MUTATIONS[name](model, mean=spec.mean, std=spec.std)
    mutations.save(broken, tmp_path / f"{name}.onnx")
    outputs = predict(OrtRunner(tmp_path / f"{name}.onnx", threads=1), inputs)
    case_id = f"{MODEL}-onnx-fp32"
    verdict = judge_outputs(case_id, "parity", golden_store(subject).logits, outputs,
                            budgets.for_case("parity", case_id, "fp32"))
    record_result(ResultRow(case=f"{MODEL}-{name}", kind="detection", line=_line(name, verdict)))
    assert not verdict.passed, f"{name} was not caught: {verdict.metrics}"


def test_int8_calibrated_on_wrong_data_is_caught(golden_store, budgets, record_result, pytestconfig, tmp_path):
    """ORT static int8 calibrated on uniform noise instead of images, judged with the int8 budget."""
    from harness.options import CACHE

    subject = Subject.of(MODEL)
    pipeline = Pipeline(ArtifactCache(pytestconfig.getoption(CACHE)), calibration="wrong_data")
    case = Case(subject, "onnx", "int8")
    outputs = predict(pipeline.runner(case, threads=1), datasets.parity_inputs(subject))
    verdict = judge_outputs(case.id, "parity", golden_store(subject).logits, outputs,
                            budgets.for_case("parity", case.id, "int8"))
    record_result(ResultRow(case=f"{MODEL}-int8_wrong_calibration", kind="detection",
                            line=_line("int8_wrong_calibration", verdict)))
    assert not verdict.passed, f"wrong-data calibration was not caught: {verdict.metrics}"


def test_clean_conversion_repeats_exactly(clean, tmp_path):
    """The clean chain (weights, ONNX export, static int8) rebuilt from empty caches gives the same outputs
    every time: a clean matrix cannot flake on conversion nondeterminism."""
    subject, _, inputs = clean
    outputs = []
    for i in range(3):
        pipeline = Pipeline(ArtifactCache(tmp_path / f"cache{i}"))
        outputs.append([predict(pipeline.runner(Case(subject, "onnx", p), threads=1), inputs) for p in ("fp32", "int8")])
    for other in outputs[1:]:
        for a, b in zip(outputs[0], other):
            np.testing.assert_array_equal(a, b)
