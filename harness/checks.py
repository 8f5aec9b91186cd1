"""How a matrix case is judged, shared by the matrix tests and the self-tests that must reach the same
verdict: a row to record, the verdicts of each suite, and the pytest outcome of a Decision."""
from __future__ import annotations

import numpy as np
import pytest

from compare.cases import Outcome, ResultRow


def row_for(case_or_subject, kind: str, **fields) -> ResultRow:
    """A result row for a case (or a subject), with `fields` set on top."""
    subject = getattr(case_or_subject, "subject", case_or_subject)
    base = {"case": getattr(case_or_subject, "id", subject.id), "kind": kind, "subject": subject.id,
            "arch": subject.report_row, "population": subject.population,
            "format": getattr(case_or_subject, "format", None), "precision": getattr(case_or_subject, "precision", None)}
    return ResultRow(**{**base, **fields})


def top1(logits: np.ndarray) -> list[int]:
    """The top-1 class of every input (a classifier's logits, N x classes)."""
    return [int(i) for i in np.asarray(logits).reshape(len(logits), -1).argmax(1)]


def settle(decision) -> None:
    """Turn a compare.verdict.Decision into the test's outcome."""
    if decision.outcome is Outcome.FAILED:
        pytest.fail(decision.message, pytrace=False)
    if decision.outcome is Outcome.KNOWN:
        pytest.xfail(decision.message)


def output_verdicts(case_id: str, precision: str, expected: np.ndarray, outputs: np.ndarray,
                    reference: np.ndarray | None, budgets, suite: str, static: dict | None = None) -> list:
    """The case's outputs against the expected ones (golden or PyTorch) with `suite`'s budget, and against
    the simulated-quantization reference with the `reference` budget, where the format has one; `static`
    adds the reference's checks of the artifact's stored constants (compare.budgets: constant_error_steps)."""
    from compare.metrics import excess_error_db, parity_metrics
    from compare.verdict import Verdict, judge, judge_outputs

    verdicts = [judge_outputs(case_id, suite, expected, outputs, budgets.for_case(suite, case_id, precision))]
    if reference is not None and budgets.has("reference", precision):
        budget = budgets.for_case("reference", case_id, precision)
        if outputs.shape != reference.shape:
            verdicts.append(Verdict(case_id, "reference", {}, problems=[
                f"output shape {outputs.shape} != simulated reference {reference.shape}"]))
            return verdicts
        # against the reference directly (recorded; rounding differences grow through sensitive networks),
        # and judged by the excess error over the reference and by the stored constants (static)
        float_floor = budgets.for_case(suite, case_id, "fp32").limits.get("min_snr_db") \
            if budgets.has(suite, "fp32") else None
        metrics = {**parity_metrics(reference, outputs), **(static or {}),
                   "excess_error_db": excess_error_db(expected, reference, outputs, float_floor)}
        verdicts.append(judge(case_id, "reference", metrics, budget))
    return verdicts


def declared_verdicts(case_id: str, precision: str, layout: list, expected: np.ndarray, outputs: np.ndarray,
                      reference: np.ndarray | None, budgets, static: dict | None = None) -> tuple[list, dict]:
    """A models.model registration's case: each declared output against its golden output with its kind's
    budget (compare.outputs), and the packed outputs against the simulated reference as for any case.
    Returns the verdicts and the row's `outputs` record (each output's metrics and its broken references)."""
    from compare.budgets import BudgetError
    from compare.outputs import OutputShapeError, broken_metrics, output_metrics, unpack
    from compare.verdict import Verdict, judge

    golden = unpack(expected, layout, f"{case_id} golden")
    try:
        actual = unpack(outputs, layout, f"{case_id} outputs")
    except OutputShapeError as exc:
        return [Verdict(case_id, "parity", {}, problems=[str(exc)])], {}
    measured, broken = output_metrics(layout, golden, actual), broken_metrics(layout, golden)
    verdicts = []
    for slot in layout:
        metrics = {k: v for k, v in measured[slot.name].items() if k != "kind"}
        try:
            budget = budgets.for_output(slot.kind, case_id, precision)
        except BudgetError as exc:  # a kind no budget was derived for yet: measured, recorded, failed
            verdicts.append(Verdict(f"{case_id} [{slot.name}: {slot.kind}]", "parity", metrics, unbudgeted=str(exc)))
            continue
        verdicts.append(judge(f"{case_id} [{slot.name}: {slot.kind}]", "parity", metrics, budget))
    verdicts += output_verdicts(case_id, precision, expected, outputs, reference, budgets, "parity", static)[1:]
    record = {s.name: {**measured[s.name], "broken": broken[s.name]} for s in layout}
    return verdicts, record


def simulated(pipeline, case, inputs: np.ndarray):
    """The case's simulated-reference outputs on `inputs` and its static checks, or (None, {})."""
    return pipeline.simulated_outputs(case, inputs)


def accuracy_metrics(expected_logits: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of both on the labelled split, the drop, and the paired counts behind it: images PyTorch got
    right and the conversion got wrong (lost) and the reverse (gained)."""
    right_before = expected_logits.argmax(1) == labels
    right_after = logits.argmax(1) == labels
    before, after = 100.0 * right_before.mean(), 100.0 * right_after.mean()
    return {"reference_accuracy": float(before), "accuracy": float(after), "accuracy_drop": float(before - after),
            "lost": int(np.sum(right_before & ~right_after)), "gained": int(np.sum(~right_before & right_after)),
            "images": int(len(labels))}
