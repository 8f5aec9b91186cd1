"""Budgets and known failures: loading, precedence, validation, and failure messages."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from compare.budgets import BudgetError, Budgets
from compare.known_failures import KnownFailureError, KnownFailures
from compare.verdict import judge

pytestmark = pytest.mark.selftest
ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {"fp32": {"min_cosine_mean": 0.999, "min_top1_agreement": 1.0}, "int8": {"min_cosine_mean": 0.9}}


def test_project_budgets_file_loads_and_covers_every_precision():
    from converters.pipeline import FORMATS

    budgets = Budgets.load(ROOT / "budgets.toml")
    for precisions in FORMATS.values():
        for p in precisions:
            assert budgets.for_case(f"m-x-{p}", p).limits
    assert budgets.table("drift").limits


def test_defaults_then_patterns_then_exact_id():
    b = Budgets.from_dict({"defaults": DEFAULTS, "cases": {
        "mobilenet_v3_*-onnx-int8": {"min_cosine_mean": 0.8, "reason": "r"},
        "mobilenet_v3_large-onnx-int8": {"min_cosine_mean": 0.7, "reason": "r"}}})
    assert b.for_case("mobilenet_v2-onnx-int8", "int8").limits["min_cosine_mean"] == 0.9
    assert b.for_case("mobilenet_v3_small-onnx-int8", "int8").limits["min_cosine_mean"] == 0.8
    budget = b.for_case("mobilenet_v3_large-onnx-int8", "int8")
    assert budget.limits["min_cosine_mean"] == 0.7
    assert budget.sources["min_cosine_mean"] == 'cases."mobilenet_v3_large-onnx-int8"'


@given(st.floats(0, 1), st.floats(0, 1))
def test_an_override_changes_only_its_own_key(default, override):
    b = Budgets.from_dict({"defaults": {"int8": {"min_cosine_mean": default, "min_top1_agreement": 0.5}},
                           "cases": {"a-onnx-int8": {"min_cosine_mean": override, "reason": "r"}}})
    assert b.for_case("a-onnx-int8", "int8").limits == {"min_cosine_mean": override, "min_top1_agreement": 0.5}
    assert b.for_case("b-onnx-int8", "int8").limits["min_cosine_mean"] == default


@pytest.mark.parametrize("data, words", [
    ({"defaults": {"fp32": {"min_cosine_mena": 0.9}}}, "unknown key 'min_cosine_mena'"),
    ({"defaults": {"fp33": {"min_cosine_mean": 0.9}}}, "[defaults.fp33] is not a precision"),
    ({"default": {}}, "unknown table(s) ['default']"),
    ({"defaults": DEFAULTS, "cases": {"a-onnx-fp32": {"min_cosine_mean": 0.5}}}, "without a `reason`"),
    ({"defaults": {"fp32": {"min_cosine_mean": "high"}}}, "must be a number"),
])
def test_malformed_budgets_name_the_problem(data, words):
    with pytest.raises(BudgetError, match=None) as info:
        Budgets.from_dict(data, "budgets.toml")
    assert words in str(info.value)


def test_a_typo_in_a_case_id_is_an_error():
    b = Budgets.from_dict({"defaults": DEFAULTS, "cases": {"mobilenet_v9-onnx-int8": {"min_cosine_mean": 0.5,
                                                                                      "reason": "r"}}})
    with pytest.raises(BudgetError, match="mobilenet_v9-onnx-int8.*matches no case"):
        b.validate_ids(["mobilenet_v2-onnx-int8"])


def test_failure_message_gives_measured_budget_and_passing_budget():
    b = Budgets.from_dict({"defaults": DEFAULTS})
    v = judge("m-onnx-fp32", "parity", {"cosine_mean": 0.98765, "top1_agreement": 1.0},
              b.for_case("m-onnx-fp32", "fp32"))
    assert not v.passed
    text = v.message()
    assert "cosine_mean 0.98765 < budget min_cosine_mean = 0.999 [defaults.fp32]" in text
    assert "it would pass with min_cosine_mean = 0.9876" in text


def test_nan_never_passes():
    b = Budgets.from_dict({"defaults": DEFAULTS})
    v = judge("m", "parity", {"cosine_mean": math.nan, "top1_agreement": 1.0}, b.for_case("m", "fp32"))
    assert not v.passed and "non-finite" in v.message()


def test_known_failures_file_is_strict_about_its_entries(tmp_path):
    f = tmp_path / "kf.toml"
    f.write_text('[[known_failure]]\ncase = "a-tflite-int16x8"\ntest = "parity"\n')
    with pytest.raises(KnownFailureError, match="non-empty reason"):
        KnownFailures.load(f)
    f.write_text('[[known_failure]]\ncase = "a-tflite-int16x8"\ntest = "parity"\nreason = "r"\nstrict = false\n')
    with pytest.raises(KnownFailureError, match="unknown key"):
        KnownFailures.load(f)
    f.write_text('[[known_failure]]\ncase = "zz-tflite-int16x8"\ntest = "parity"\nreason = "r"\n')
    with pytest.raises(KnownFailureError, match="matches no case"):
        KnownFailures.load(f).validate_ids({"parity": ["a-tflite-int16x8"]})
    KnownFailures.load(ROOT / "known_failures.toml")
