"""Budgets and known failures: loading, precedence, validation, failure messages, and how a known failure's
pinned range decides its outcome."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from compare.budgets import BudgetError, Budgets
from compare.cases import Outcome
from compare.known_failures import KnownFailure, KnownFailureError, KnownFailures
from compare.verdict import decide, judge

pytestmark = pytest.mark.selftest
ROOT = Path(__file__).resolve().parents[2]
PARITY = {"fp32": {"min_cosine_mean": 0.999, "min_top1_agreement": 1.0}, "int8": {"min_cosine_mean": 0.9}}


def test_project_budgets_file_loads_and_covers_every_precision_of_every_suite():
    from converters import formats

    budgets = Budgets.load(ROOT / "budgets.toml")
    for fmt in formats.formats():
        for p in fmt.precisions if fmt.in_matrix else ():
            for suite in ("parity", "trained", "accuracy"):
                assert budgets.for_case(suite, f"m-{fmt.name}-{p}", p).limits
            if p in fmt.references:
                assert budgets.has("reference", p), f"no [reference.{p}] budget for {fmt.name}'s simulated reference"
    assert budgets.table("drift").limits and budgets.table("training").limits


def test_defaults_then_patterns_then_exact_id():
    b = Budgets.from_dict({"parity": PARITY, "overrides": {"parity": {
        "mobilenet_v3_*-onnx-int8": {"min_cosine_mean": 0.8, "reason": "r"},
        "mobilenet_v3_large-onnx-int8": {"min_cosine_mean": 0.7, "reason": "r"}}}})
    assert b.for_case("parity", "mobilenet_v2-onnx-int8", "int8").limits["min_cosine_mean"] == 0.9
    assert b.for_case("parity", "mobilenet_v3_small-onnx-int8", "int8").limits["min_cosine_mean"] == 0.8
    budget = b.for_case("parity", "mobilenet_v3_large-onnx-int8", "int8")
    assert budget.limits["min_cosine_mean"] == 0.7
    assert budget.sources["min_cosine_mean"] == 'overrides.parity."mobilenet_v3_large-onnx-int8"'


@given(st.floats(0, 1), st.floats(0, 1))
def test_an_override_changes_only_its_own_key(default, override):
    b = Budgets.from_dict({"parity": {"int8": {"min_cosine_mean": default, "min_top1_agreement": 0.5}},
                           "overrides": {"parity": {"a-onnx-int8": {"min_cosine_mean": override, "reason": "r"}}}})
    assert b.for_case("parity", "a-onnx-int8", "int8").limits == {"min_cosine_mean": override, "min_top1_agreement": 0.5}
    assert b.for_case("parity", "b-onnx-int8", "int8").limits["min_cosine_mean"] == default


@pytest.mark.parametrize("data, words", [
    ({"parity": {"fp32": {"min_cosine_mena": 0.9}}}, "unknown key 'min_cosine_mena'"),
    ({"parity": {"fp33": {"min_cosine_mean": 0.9}}}, "[parity.fp33] is not a precision"),
    ({"default": {}}, "unknown table(s) ['default']"),
    ({"parity": PARITY, "overrides": {"parity": {"a-onnx-fp32": {"min_cosine_mean": 0.5}}}}, "without a `reason`"),
    ({"overrides": {"parityy": {}}}, "[overrides.parityy] is not a suite"),
    ({"parity": {"fp32": {"min_cosine_mean": "high"}}}, "must be a number"),
    ({"kinds": {"mask": {"fp32": {}}}}, "[kinds.mask] is not an output kind"),
    ({"kinds": {"dense": {"int9": {}}}}, "[kinds.dense.int9] is not a precision"),
    ({"kinds": {"dense": {"int8": {"min_mIoU": 0.5}}}}, "unknown key 'min_mIoU'"),
])
def test_malformed_budgets_name_the_problem(data, words):
    with pytest.raises(BudgetError) as info:
        Budgets.from_dict(data, "budgets.toml")
    assert words in str(info.value)


def test_a_typo_in_a_case_id_is_an_error():
    b = Budgets.from_dict({"parity": PARITY, "overrides": {"parity": {
        "mobilenet_v9-onnx-int8": {"min_cosine_mean": 0.5, "reason": "r"}}}})
    with pytest.raises(BudgetError, match="mobilenet_v9-onnx-int8.*matches no case"):
        b.validate_ids({"parity": ["mobilenet_v2-onnx-int8"]})


def test_failure_message_gives_measured_budget_and_passing_budget():
    b = Budgets.from_dict({"parity": PARITY})
    v = judge("m-onnx-fp32", "parity", {"cosine_mean": 0.98765, "top1_agreement": 1.0},
              b.for_case("parity", "m-onnx-fp32", "fp32"))
    assert not v.passed
    text = v.message()
    assert "cosine_mean 0.9877 < budget min_cosine_mean = 0.999 [parity.fp32]" in text
    assert "it would pass with min_cosine_mean = 0.9876" in text


def test_nan_never_passes_and_a_bit_exact_snr_does():
    b = Budgets.from_dict({"parity": {"fp32": {"min_snr_db": 80, "max_abs_error": 1e-3}}})
    budget = b.for_case("parity", "m", "fp32")
    v = judge("m", "parity", {"snr_db": math.nan, "max_abs_error": 0.0}, budget)
    assert not v.passed and "non-finite" in v.message()
    assert judge("m", "parity", {"snr_db": math.inf, "max_abs_error": 0.0}, budget).passed
    assert not judge("m", "parity", {"snr_db": 90.0, "max_abs_error": math.inf}, budget).passed


def test_known_failures_file_is_strict_about_its_entries(tmp_path):
    f = tmp_path / "kf.toml"
    f.write_text('[[known_failure]]\ncase = "a-tflite-int16x8"\ntest = "parity"\n')
    with pytest.raises(KnownFailureError, match="non-empty reason and the range it is pinned to"):
        KnownFailures.load(f)
    f.write_text('[[known_failure]]\ncase = "a-tflite-int16x8"\ntest = "parity"\nreason = "r"\nstrict = false\n')
    with pytest.raises(KnownFailureError, match="unknown key"):
        KnownFailures.load(f)
    f.write_text('[[known_failure]]\ncase = "a-tflite-int16x8"\ntest = "parity"\nreason = "r"\n'
                 '[known_failure.pinned.parity]\nmin_snr_db = "low"\n')
    with pytest.raises(KnownFailureError, match="must be a number"):
        KnownFailures.load(f)
    f.write_text('[[known_failure]]\ncase = "zz-tflite-int16x8"\ntest = "parity"\nreason = "r"\n'
                 '[known_failure.pinned.parity]\nmin_snr_db = 5\n')
    with pytest.raises(KnownFailureError, match="matches no case"):
        KnownFailures.load(f).validate_ids({"parity": ["a-tflite-int16x8"]})
    f.write_text('[[known_failure]]\ncase = "a-litert-int8"\ntest = "parity"\nreason = "r"\ncrash = "("\n')
    with pytest.raises(KnownFailureError, match="not a regular expression"):
        KnownFailures.load(f)
    f.write_text('[[known_failure]]\ncase = "a-litert-int8"\ntest = "parity"\nreason = "r"\ncrash = "x"\n'
                 '[known_failure.pinned.parity]\nmin_snr_db = 5\n')
    with pytest.raises(KnownFailureError, match="unknown key"):  # a crash is pinned by its error, not a range
        KnownFailures.load(f)
    f.write_text('[[known_failure]]\ncase = "a-litert-*"\ntest = "parity"\nreason = "r"\n'
                 'crash = "histogram_cpu. not implemented"\n')
    crash = KnownFailures.load(f).crash_for("a-litert-int8")
    assert crash.crashed("NotImplementedError: \"histogram_cpu\" not implemented for 'Long'")
    assert not crash.crashed("RuntimeError: out of memory")
    KnownFailures.load(ROOT / "known_failures.toml")


KNOWN = KnownFailure("m-tflite-int16x8", "parity", "SE hard-sigmoid loses int16 range",
                     {"parity": {"min_snr_db": 10.0}})
BUDGET = Budgets.from_dict({"parity": {"int16x8": {"min_snr_db": 20.0}}}).for_case("parity", "m", "int16x8")


@pytest.mark.parametrize("snr, outcome, words", [
    (14.0, Outcome.KNOWN, "known failure: SE hard-sigmoid"),  # inside its pinned range
    (6.0, Outcome.FAILED, "known failure got worse than its pinned range"),  # collapsed further
    (25.0, Outcome.FAILED, "now passes every budget"),  # fixed: strict, the entry must go
    (math.nan, Outcome.FAILED, "non-finite"),  # a known case that starts to output NaN
])
def test_a_known_failure_is_pinned_to_its_range(snr, outcome, words):
    decision = decide("m-tflite-int16x8", [judge("m-tflite-int16x8", "parity", {"snr_db": snr}, BUDGET)], KNOWN)
    assert decision.outcome is outcome and words in decision.message


def test_without_an_entry_a_failure_fails_and_a_pass_passes():
    assert decide("m", [judge("m", "parity", {"snr_db": 14.0}, BUDGET)]).outcome is Outcome.FAILED
    assert decide("m", [judge("m", "parity", {"snr_db": 24.0}, BUDGET)]).outcome is Outcome.PASSED


def test_an_output_is_judged_by_its_kinds_table_or_the_cases_own_override():
    b = Budgets.from_dict({"parity": PARITY, "kinds": {"dense": {"int8": {"min_miou": 0.6}}},
                           "overrides": {"parity": {"seg-onnx-fp16": {"min_miou": 0.9, "reason": "r"}}}})
    assert b.for_output("classification", "seg-onnx-int8", "int8").limits == PARITY["int8"]
    assert b.for_output("dense", "seg-onnx-int8", "int8").limits == {"min_miou": 0.6}
    assert b.for_output("dense", "seg-onnx-fp16", "fp16").limits == {"min_miou": 0.9}  # no table: the override
    with pytest.raises(BudgetError, match=r"no \[kinds.boxes.int8\] table for case det-onnx-int8"):
        b.for_output("boxes", "det-onnx-int8", "int8")
