"""Verdicts: measured metrics against a Budget, and a case's outcome from its verdicts and its known-failure
entry. A failure message gives the measured value, the budget, where the budget came from, and the loosest
setting that would have passed."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from compare.budgets import BUDGET_KEYS, Budget
from compare.cases import Outcome


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
        # NaN never passes; +inf meets any floor (a bit-exact SNR) and no ceiling
        if math.isnan(self.measured):
            return False
        return self.measured >= self.limit if self.is_floor else self.measured <= self.limit

    def describe(self) -> str:
        metric = BUDGET_KEYS[self.key]
        if not math.isfinite(self.measured):
            return f"{metric} is {self.measured} (non-finite outputs); budget {self.key} = {self.limit} [{self.source}]"
        op = "<" if self.is_floor else ">"
        would = _round_toward(self.measured, down=self.is_floor)
        return (f"{metric} {_num(self.measured, self.limit)} {op} budget {self.key} = {self.limit:g} "
                f"[{self.source}]; it would pass with {self.key} = {would:g}")

    def margin(self) -> str:
        """measured vs limit, the way a detection line prints it."""
        op = (">=" if self.passed else "<") if self.is_floor else ("<=" if self.passed else ">")
        return f"{BUDGET_KEYS[self.key]} {_num(self.measured, self.limit)} {op} {self.limit:g}"


def _num(value: float, limit: float) -> str:
    """4 significant digits, or 7 where 4 would round a near miss onto its limit (0.99995 vs 0.99999)."""
    if not math.isfinite(value):
        return str(value)
    digits = 7 if abs(value - limit) < 1e-3 * max(abs(limit), 1e-12) else 4
    return f"{value:.{digits}g}"


def _round_toward(value: float, down: bool, digits: int = 4) -> float:
    """`value` rounded to `digits` significant digits, in the direction that still passes."""
    if value == 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(value))))
    return (math.floor if down else math.ceil)(value * scale) / scale


@dataclass
class Verdict:
    case_id: str
    suite: str  # parity, reference, trained, accuracy, drift, training
    metrics: dict[str, float]
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures no budget can excuse (a wrong shape)
    note: str = ""  # context printed with a failure (e.g. the paired counts behind an accuracy drop)
    # why no budget applies (an output kind with no table at this precision): fails, but a known failure's
    # pinned range still judges it
    unbudgeted: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems and not self.unbudgeted and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def finite(self) -> bool:
        return not any(isinstance(v, float) and math.isnan(v) for v in self.metrics.values())

    def message(self) -> str:
        lines = [f"{self.case_id}: {self.suite} outside budget"] + ([f"  {self.note}"] if self.note else [])
        lines += [f"  - {p}" for p in self.problems] + ([f"  - {self.unbudgeted}"] if self.unbudgeted else [])
        lines += [f"  - {c.describe()}" for c in self.failures]
        lines.append("  measured: " + ", ".join(f"{k}={v:.6g}" for k, v in self.metrics.items()))
        return "\n".join(lines)


def judge(case_id: str, suite: str, metrics: dict[str, float], budget: Budget) -> Verdict:
    """Compare every budgeted metric that was measured."""
    checks = [Check(key, float(metrics[BUDGET_KEYS[key]]), float(limit), budget.sources[key])
              for key, limit in sorted(budget.limits.items()) if BUDGET_KEYS[key] in metrics]
    if not checks:
        raise ValueError(f"{case_id}: the {suite} budget has no limit on any of {sorted(metrics)}")
    return Verdict(case_id, suite, dict(metrics), checks)


def judge_outputs(case_id: str, suite: str, expected, actual, budget: Budget) -> Verdict:
    """Outputs against expected outputs: a shape mismatch fails outright, anything else is judged on the
    parity metrics."""
    from compare.metrics import parity_metrics

    if actual.shape != expected.shape:
        return Verdict(case_id, suite, {}, problems=[f"output shape {actual.shape} != expected {expected.shape}"])
    return judge(case_id, suite, parity_metrics(expected, actual), budget)


@dataclass
class Decision:
    outcome: Outcome
    message: str


def decide(case_id: str, verdicts: list[Verdict], known=None) -> Decision:
    """The case's outcome. Without a known-failure entry: pass when every verdict passes. With one: a known
    failure when some verdict fails and every metric stays inside the entry's pinned range; a failure when it
    gets worse than that range or goes non-finite; a failure too when it passes everything (strict: the
    entry must go)."""
    failed = [v for v in verdicts if not v.passed]
    if known is None:
        return Decision(Outcome.FAILED if failed else Outcome.PASSED, "\n".join(v.message() for v in failed))
    if not failed:
        return Decision(Outcome.FAILED, f"{case_id} is declared a known failure ({known.case}) but now passes every "
                                        f"budget: the converter was fixed; remove its entry from known_failures.toml")
    if not all(v.finite and not v.problems for v in verdicts):
        return Decision(Outcome.FAILED, "a known failure that now outputs non-finite values or the wrong shape:\n"
                        + "\n".join(v.message() for v in failed))
    worse = []
    for v in verdicts:
        pinned = known.pinned_budget(v.suite)
        if pinned is not None:
            worse += [c for c in judge(case_id, v.suite, v.metrics, pinned).failures]
    if worse:
        return Decision(Outcome.FAILED, f"{case_id}: known failure got worse than its pinned range "
                                        f"({known.reason[:120]}...):\n" + "\n".join(f"  - {c.describe()}" for c in worse))
    measured = "; ".join(", ".join([c.margin() for c in v.failures] + (["no budget"] if v.unbudgeted else []))
                         for v in failed)
    return Decision(Outcome.KNOWN, f"known failure: {known.reason} [measured: {measured}]")
