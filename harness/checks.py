"""How a matrix case is judged, shared by the matrix tests and the self-tests that must reach the same
verdict: a row to record, the verdicts of each suite, and the pytest outcome of a Decision."""
from __future__ import annotations

import numpy as np
import pytest

from compare.cases import Outcome, ResultRow


def row_for(case_or_subject, kind: str, **fields) -> ResultRow:
    subject = getattr(case_or_subject, "subject", case_or_subject)
    case_id = getattr(case_or_subject, "id", subject.id)
    return ResultRow(case=case_id, kind=kind, subject=subject.id, arch=subject.model,
                     population=subject.population, format=getattr(case_or_subject, "format", None),
                     precision=getattr(case_or_subject, "precision", None), **fields)


def settle(decision) -> None:
    """Turn a compare.verdict.Decision into the test's outcome."""
    if decision.outcome is Outcome.FAILED:
        pytest.fail(decision.message, pytrace=False)
    if decision.outcome is Outcome.KNOWN:
        pytest.xfail(decision.message)


def output_verdicts(case_id: str, precision: str, expected: np.ndarray, outputs: np.ndarray,
                    reference: np.ndarray | None, budgets, suite: str) -> list:
    """The case's outputs against the expected ones (golden or PyTorch) with `suite`'s budget, and against
    the simulated-quantization reference with the tight `reference` budget, where the format has one."""
    from compare.verdict import judge_outputs

    verdicts = [judge_outputs(case_id, suite, expected, outputs, budgets.for_case(suite, case_id, precision))]
    if reference is not None and budgets.has("reference", precision):
        verdicts.append(judge_outputs(case_id, "reference", reference, outputs,
                                      budgets.for_case("reference", case_id, precision)))
    return verdicts


def accuracy_metrics(expected_logits: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of both on the labelled split, the drop, and the paired counts behind it: images PyTorch got
    right and the conversion got wrong (lost) and the reverse (gained)."""
    right_before = expected_logits.argmax(1) == labels
    right_after = logits.argmax(1) == labels
    before, after = 100.0 * right_before.mean(), 100.0 * right_after.mean()
    return {"reference_accuracy": float(before), "accuracy": float(after), "accuracy_drop": float(before - after),
            "lost": int(np.sum(right_before & ~right_after)), "gained": int(np.sum(~right_before & right_after)),
            "images": int(len(labels))}
