"""Budgets as data: one TOML file with a default table per precision and per-case overrides.

Keys are `min_<metric>` (a floor) or `max_<metric>` (a ceiling). An override table is named by a case id
or an fnmatch pattern over case ids and must carry a `reason`. Exact ids beat patterns; among patterns
the later one in the file wins. Anything unknown (a key, a precision, a case id that matches no case) is
an error that names it, never a silent default.
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
    "min_snr_db": "snr_db",
    "max_accuracy_drop": "accuracy_drop",
    "min_accuracy": "accuracy",
}
SINGLE_TABLES = ("drift", "training")  # [drift]: live PyTorch vs golden; [training]: trained-model floors
PRECISIONS = ("fp32", "fp16", "dynamic_int8", "int8", "full_int8", "int16x8")


class BudgetError(ValueError):
    """The budgets file is malformed; the message names the file, table and key."""


@dataclass(frozen=True)
class Budget:
    limits: dict[str, float]  # budget key -> limit
    sources: dict[str, str]  # budget key -> the table it came from (for messages)


class Budgets:
    def __init__(self, defaults: dict[str, dict], cases: dict[str, dict], path: str = "<budgets>",
                 tables: dict[str, dict] | None = None):
        self.path = path
        self.defaults = defaults
        self.cases = cases
        self.tables = tables or {}

    @classmethod
    def load(cls, path: str | Path) -> "Budgets":
        return cls.from_dict(load_toml(path, BudgetError, "budgets file"), str(path))

    @classmethod
    def from_dict(cls, data: dict, path: str = "<budgets>") -> "Budgets":
        unknown = set(data) - {"defaults", "cases", *SINGLE_TABLES}
        if unknown:
            raise BudgetError(f"{path}: unknown table(s) {sorted(unknown)}; expected [defaults.*], [cases.*], "
                              + ", ".join(f"[{t}]" for t in SINGLE_TABLES))
        defaults, cases = data.get("defaults", {}), data.get("cases", {})
        for table in SINGLE_TABLES:
            _check_keys(path, table, data.get(table, {}), allow_reason=False)
        for precision, table in defaults.items():
            if precision not in PRECISIONS:
                raise BudgetError(f"{path}: [defaults.{precision}] is not a precision; known: {', '.join(PRECISIONS)}")
            _check_keys(path, f"defaults.{precision}", table, allow_reason=False)
        for pattern, table in cases.items():
            _check_keys(path, f'cases."{pattern}"', table, allow_reason=True)
            if not str(table.get("reason", "")).strip():
                raise BudgetError(f'{path}: [cases."{pattern}"] overrides a budget without a `reason`')
        return cls(defaults, cases, path, {t: data.get(t, {}) for t in SINGLE_TABLES})

    def validate_ids(self, case_ids) -> None:
        """Every override must match at least one real case (catches typos in case ids)."""
        case_ids = list(case_ids)
        for pattern in self.cases:
            if not any(fnmatch.fnmatchcase(cid, pattern) for cid in case_ids):
                raise BudgetError(f'{self.path}: [cases."{pattern}"] matches no case; is the id misspelt? '
                                  f"Case ids look like {case_ids[0] if case_ids else 'model-format-precision'}")

    def table(self, name: str) -> Budget:
        """One of the SINGLE_TABLES as a Budget ([drift], [training])."""
        limits = self.tables.get(name)
        if not limits:
            raise BudgetError(f"{self.path}: no [{name}] table")
        return Budget(dict(limits), {k: name for k in limits})

    def for_case(self, case_id: str, precision: str) -> Budget:
        if precision not in self.defaults:
            raise BudgetError(f"{self.path}: no [defaults.{precision}] table for case {case_id}")
        limits = dict(self.defaults[precision])
        sources = {k: f"defaults.{precision}" for k in limits}
        matching = [p for p in self.cases if p != case_id and fnmatch.fnmatchcase(case_id, p)]
        if case_id in self.cases:
            matching.append(case_id)
        for pattern in matching:
            for key, value in self.cases[pattern].items():
                if key != "reason":
                    limits[key], sources[key] = value, f'cases."{pattern}"'
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


def _check_keys(path, table_name, table, allow_reason):
    if not isinstance(table, dict):
        raise BudgetError(f"{path}: [{table_name}] must be a table")
    for key, value in table.items():
        if key == "reason" and allow_reason:
            continue
        if key not in BUDGET_KEYS:
            raise BudgetError(f"{path}: [{table_name}] has unknown key {key!r}; known keys: "
                              f"{', '.join(sorted(BUDGET_KEYS))}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise BudgetError(f"{path}: [{table_name}] {key} must be a number, got {value!r}")
