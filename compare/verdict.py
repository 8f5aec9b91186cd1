"""Verdicts: measured metrics against a Budget. A failure message gives the measured value, the budget,
where the budget came from, and the loosest setting that would have passed."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from compare.budgets import BUDGET_KEYS, Budget


@dataclass(frozen=True)
class Check:
    key: str  # budget key, e.g. min_cosine_mean
    measured: float
    limit: float
    source: str

    @property
    def is_floor(self) -> bool:
        return self.key.startswith("min_")

    @property
    def passed(self) -> bool:
        if not math.isfinite(self.measured):
            return False  # NaN/Inf is never within budget
        return self.measured >= self.limit if self.is_floor else self.measured <= self.limit

    def describe(self) -> str:
        metric = BUDGET_KEYS[self.key]
        if not math.isfinite(self.measured):
            return f"{metric} is {self.measured} (non-finite outputs); budget {self.key} = {self.limit} [{self.source}]"
        op = "<" if self.is_floor else ">"
        would = _round_toward(self.measured, down=self.is_floor)
        return (f"{metric} {self.measured:.6g} {op} budget {self.key} = {self.limit:g} [{self.source}]; "
                f"it would pass with {self.key} = {would:g}")


def _round_toward(value: float, down: bool, digits: int = 4) -> float:
    """`value` rounded to `digits` significant digits, in the direction that still passes."""
    if value == 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(value))))
    return (math.floor if down else math.ceil)(value * scale) / scale


@dataclass
class Verdict:
    case_id: str
    kind: str  # "parity" or "accuracy"
    metrics: dict[str, float]
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures no budget can excuse (a wrong shape)

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def message(self) -> str:
        lines = [f"{self.case_id}: {self.kind} outside budget"]
        lines += [f"  - {p}" for p in self.problems]
        lines += [f"  - {c.describe()}" for c in self.failures]
        lines.append("  measured: " + ", ".join(f"{k}={v:.6g}" for k, v in self.metrics.items()))
        return "\n".join(lines)


def judge(case_id: str, kind: str, metrics: dict[str, float], budget: Budget) -> Verdict:
    """Compare every budgeted metric; a metric the budget names but that was not measured is an error."""
    checks = []
    for key, limit in sorted(budget.limits.items()):
        metric = BUDGET_KEYS[key]
        if metric not in metrics:
            continue  # e.g. accuracy budgets on a parity verdict
        checks.append(Check(key, float(metrics[metric]), float(limit), budget.sources[key]))
    if not checks:
        raise ValueError(f"{case_id}: the budget has no limit on any of {sorted(metrics)}")
    return Verdict(case_id, kind, metrics, checks)


def judge_parity(case_id: str, golden, outputs, budget: Budget) -> Verdict:
    """Outputs against golden outputs: a shape mismatch fails outright, anything else is judged on the
    parity metrics."""
    from compare.metrics import parity_metrics

    if outputs.shape != golden.shape:
        return Verdict(case_id, "parity", {}, problems=[f"output shape {outputs.shape} != golden {golden.shape}"])
    return judge(case_id, "parity", parity_metrics(golden, outputs), budget)
