"""Budgets as data: one TOML file, written by scripts/derive_budgets.py from measured distributions.

Tables: `[<suite>.<precision>]` per suite and precision, `[drift]` and `[training]`, and
`[overrides.<suite>."<case id or fnmatch pattern>"]`, each with a `reason` that names a mechanism. Keys are
`min_<metric>` (a floor) or `max_<metric>` (a ceiling). Exact ids beat patterns; among patterns the later one
in the file wins. Anything unknown (a key, a suite, a precision, an override that matches no case) is an
error that names it, never a silent default.

Suites: `parity` (a natural-image conversion vs its golden outputs: what conversion plus quantization cost),
`reference` (a quantized artifact vs a reference that simulates the same quantization: the conversion's own
error, tight), `trained` (a trained model's conversion vs PyTorch on its labelled test split) and `accuracy`
(the accuracy drop on that split). A model's outputs of another kind than classification (models.api.Output)
are judged against `[kinds.<kind>.<precision>]`, with the parity overrides on top.
"""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

BUDGET_KEYS = {
    "min_cosine_mean": "cosine_mean",
    "min_cosine_worst": "cosine_worst",
    "min_top1_agreement": "top1_agreement",
    "max_abs_error": "max_abs_error",
    # the worst stored constant (weight, bias) against the float value it stands for, in its own grid steps
    "max_constant_error_steps": "constant_error_steps",
    # how much further from the expected outputs the artifact is than its simulated reference, in dB of SNR
    "max_excess_error_db": "excess_error_db",
    "min_snr_db": "snr_db",
    "max_accuracy_drop": "accuracy_drop",
    # a QAT model's learned activation scales found in the artifact (compare.qat)
    "min_scales_kept": "scales_kept",
    "min_accuracy": "accuracy",
    # outputs of other kinds (compare.outputs): [kinds.<kind>.<precision>]
    "min_variation_snr_db": "variation_snr_db",
    "min_pixel_agreement": "pixel_agreement",
    "min_miou": "miou",
    "min_detection_agreement": "detection_agreement",
    "min_box_iou": "box_iou",
}
KINDS = ("boxes", "scores", "dense", "generic")  # classification outputs use [parity.<precision>]
SUITES = ("parity", "reference", "trained", "accuracy")
SUITE_TESTS = {"parity": ("parity",), "reference": ("parity", "accuracy"), "trained": ("accuracy",),
               "accuracy": ("accuracy",)}
SINGLE_TABLES = ("drift", "training")  # [drift]: live PyTorch vs golden; [training]: trained-model floors


class BudgetError(ValueError):
    """The budgets file is malformed; the message names the file, table and key."""


@dataclass(frozen=True)
class Budget:
    limits: dict[str, float]  # budget key -> limit
    sources: dict[str, str]  # budget key -> the table it came from (for messages)


def check_limits(path, table_name: str, table, allow: tuple[str, ...] = ()) -> None:
    """Every key of `table` is a budget key with a number (or one of `allow`)."""
    if not isinstance(table, dict):
        raise BudgetError(f"{path}: [{table_name}] must be a table")
    for key, value in table.items():
        if key in allow:
            continue
        if key not in BUDGET_KEYS:
            raise BudgetError(f"{path}: [{table_name}] has unknown key {key!r}; known keys: "
                              f"{', '.join(sorted(BUDGET_KEYS))}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise BudgetError(f"{path}: [{table_name}] {key} must be a number, got {value!r}")


class Budgets:
    def __init__(self, suites: dict[str, dict], overrides: dict[str, dict], tables: dict[str, dict],
                 path: str = "<budgets>", kinds: dict | None = None):
        self.suites, self.overrides, self.tables, self.path = suites, overrides, tables, path
        self.kinds = kinds or {}

    @classmethod
    def load(cls, path: str | Path) -> "Budgets":
        return cls.from_dict(load_toml(path, BudgetError, "budgets file"), str(path))

    @classmethod
    def from_dict(cls, data: dict, path: str = "<budgets>") -> "Budgets":
        from compare.cases import PRECISIONS

        unknown = set(data) - {*SUITES, *SINGLE_TABLES, "overrides", "kinds"}
        if unknown:
            raise BudgetError(f"{path}: unknown table(s) {sorted(unknown)}; expected "
                              + ", ".join(f"[{t}.<precision>]" for t in SUITES) + ", [overrides.<suite>.\"<case>\"], "
                              + ", ".join(f"[{t}]" for t in SINGLE_TABLES))
        for table in SINGLE_TABLES:
            check_limits(path, table, data.get(table, {}))
        def check_precisions(prefix: str, by_precision: dict) -> None:
            for precision, table in by_precision.items():
                if precision not in PRECISIONS:
                    raise BudgetError(f"{path}: [{prefix}.{precision}] is not a precision; known: {', '.join(PRECISIONS)}")
                check_limits(path, f"{prefix}.{precision}", table)

        suites = {suite: data.get(suite, {}) for suite in SUITES}
        for suite, by_precision in suites.items():
            check_precisions(suite, by_precision)
        kinds = data.get("kinds", {})
        for kind, by_precision in kinds.items():
            if kind not in KINDS:
                raise BudgetError(f"{path}: [kinds.{kind}] is not an output kind; known: {', '.join(KINDS)}")
            check_precisions(f"kinds.{kind}", by_precision)
        overrides = data.get("overrides", {})
        for suite, patterns in overrides.items():
            if suite not in SUITES:
                raise BudgetError(f"{path}: [overrides.{suite}] is not a suite; known: {', '.join(SUITES)}")
            for pattern, table in patterns.items():
                check_limits(path, f'overrides.{suite}."{pattern}"', table, allow=("reason",))
                if not str(table.get("reason", "")).strip():
                    raise BudgetError(f'{path}: [overrides.{suite}."{pattern}"] overrides a budget without a `reason`')
        return cls(suites, overrides, {t: data.get(t, {}) for t in SINGLE_TABLES}, path, kinds)

    def validate_ids(self, ids_by_test: dict[str, list[str]]) -> None:
        """Every override must match at least one case of the tests its suite applies to (catches typos)."""
        for suite, patterns in self.overrides.items():
            ids = [cid for test in SUITE_TESTS[suite] for cid in ids_by_test.get(test, [])]
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(cid, pattern) for cid in ids):
                    raise BudgetError(f'{self.path}: [overrides.{suite}."{pattern}"] matches no case; is the id '
                                      f"misspelt? Case ids look like {ids[0] if ids else 'model-format-precision'}")

    def table(self, name: str) -> Budget:
        """One of the SINGLE_TABLES as a Budget ([drift], [training])."""
        limits = self.tables.get(name)
        if not limits:
            raise BudgetError(f"{self.path}: no [{name}] table")
        return Budget(dict(limits), {k: name for k in limits})

    def has(self, suite: str, precision: str) -> bool:
        return precision in self.suites.get(suite, {})

    def for_output(self, kind: str, case_id: str, precision: str) -> Budget:
        """The budget of one output of a case by its kind: [parity.<precision>] for classification,
        [kinds.<kind>.<precision>] otherwise; the case's parity overrides on top."""
        if kind == "classification":
            return self.for_case("parity", case_id, precision)
        table = self.kinds.get(kind, {}).get(precision)
        budget = self._with_overrides("parity", case_id, dict(table or {}), f"kinds.{kind}.{precision}")
        if not budget.limits:
            raise BudgetError(f"{self.path}: no [kinds.{kind}.{precision}] table for case {case_id}: add your "
                              f"models' measurements and derive it (python -m scripts.derive_budgets collect, "
                              f"derive), or give this case its limits in [overrides.parity.\"{case_id}\"] with a "
                              "reason")
        return budget

    def for_case(self, suite: str, case_id: str, precision: str) -> Budget:
        if not self.has(suite, precision):
            raise BudgetError(f"{self.path}: no [{suite}.{precision}] table for case {case_id}")
        return self._with_overrides(suite, case_id, dict(self.suites[suite][precision]), f"{suite}.{precision}")

    def _with_overrides(self, suite: str, case_id: str, limits: dict, source: str) -> Budget:
        sources = {k: source for k in limits}
        patterns = self.overrides.get(suite, {})
        matching = [p for p in patterns if p != case_id and fnmatch.fnmatchcase(case_id, p)]
        if case_id in patterns:
            matching.append(case_id)
        for pattern in matching:
            for key, value in patterns[pattern].items():
                if key != "reason":
                    limits[key], sources[key] = value, f'overrides.{suite}."{pattern}"'
        return Budget(limits, sources)


def load_toml(path: str | Path, error: type[Exception], what: str) -> dict:
    """Parse a matrix data file, turning a missing file or bad TOML into `error` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} not found")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
