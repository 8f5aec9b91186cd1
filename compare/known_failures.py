"""Known failures as data: one TOML file, each entry a case id (or fnmatch pattern), the test kind it
applies to and a reason. They become strict xfails, so a fixed converter shows up as an unexpected pass."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from compare.budgets import load_toml

KINDS = ("parity", "accuracy")
KEYS = {"case", "test", "reason"}


class KnownFailureError(ValueError):
    pass


@dataclass(frozen=True)
class KnownFailure:
    case: str
    test: str
    reason: str


class KnownFailures:
    def __init__(self, entries: list[KnownFailure], path: str = "<known failures>"):
        self.entries, self.path = entries, path

    @classmethod
    def load(cls, path: str | Path) -> "KnownFailures":
        data = load_toml(path, KnownFailureError, "known-failures file")
        unknown = set(data) - {"known_failure"}
        if unknown:
            raise KnownFailureError(f"{path}: unknown table(s) {sorted(unknown)}; entries are [[known_failure]]")
        entries = []
        for i, raw in enumerate(data.get("known_failure", [])):
            where = f"{path}: [[known_failure]] #{i + 1}"
            bad = set(raw) - KEYS
            if bad:
                raise KnownFailureError(f"{where} has unknown key(s) {sorted(bad)}; keys are {sorted(KEYS)}")
            missing = KEYS - set(raw)
            if missing or not str(raw.get("reason", "")).strip():
                raise KnownFailureError(f"{where} needs case, test and a non-empty reason (missing {sorted(missing)})")
            if raw["test"] not in KINDS:
                raise KnownFailureError(f"{where}: test = {raw['test']!r}; expected one of {KINDS}")
            entries.append(KnownFailure(raw["case"], raw["test"], raw["reason"].strip()))
        return cls(entries, str(path))

    def validate_ids(self, ids_by_kind: dict[str, list[str]]) -> None:
        for e in self.entries:
            if not any(fnmatch.fnmatchcase(cid, e.case) for cid in ids_by_kind.get(e.test, [])):
                raise KnownFailureError(f"{self.path}: known failure {e.case!r} ({e.test}) matches no case; "
                                        f"is the id misspelt?")

    def lookup(self, case_id: str, kind: str) -> KnownFailure | None:
        for e in self.entries:
            if e.test == kind and fnmatch.fnmatchcase(case_id, e.case):
                return e
        return None
