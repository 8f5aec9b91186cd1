"""Known failures as data: one TOML file, each entry a case id (or fnmatch pattern), the test it applies to,
a reason that names the mechanism, and the range it is pinned to:

    [[known_failure]]
    case = "mobilenext-onnx-dynamic_int8"
    test = "parity"
    reason = "..."
    [known_failure.pinned.parity]        # per suite, budget-style keys: the worst the case may measure
    min_snr_db = 4.1

A conversion that crashes is pinned instead by `crash`, a regular expression its error must match (the
converter's own exception, from its log); every test of that case is then a known failure while it crashes
that way, and fails once it converts (remove the entry) or crashes another way:

    [[known_failure]]
    case = "lraspp_mobilenet_v3_large-litert-int8"
    test = "parity"
    reason = "..."
    crash = "histogram_cpu. not implemented for 'Long'"

A known case that fails inside its pinned range is a known failure; one that gets worse than the range,
crashes or outputs non-finite values fails; one that passes every budget fails too (strict: remove the
entry). scripts/derive_budgets.py pins the ranges from measurements."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from compare.budgets import SUITES, Budget, BudgetError, check_limits, load_toml

TESTS = ("parity", "accuracy", "qat")
# pinned tables per suite: the budgets' suites, and `qat` (compare.qat's kept fraction, not in budgets.toml)
PINNED_SUITES = (*SUITES, "qat")
KEYS = {"case", "test", "reason", "pinned"}
CRASH_KEYS = {"case", "test", "reason", "crash"}


class KnownFailureError(ValueError):
    pass


@dataclass(frozen=True)
class KnownFailure:
    case: str
    test: str
    reason: str
    pinned: dict = field(default_factory=dict)  # suite -> {budget key: limit}
    crash: str = ""  # a conversion crash: the pattern its error matches (then no pinned ranges)

    def crashed(self, message: str) -> bool:
        return bool(self.crash) and re.search(self.crash, message) is not None

    def pinned_budget(self, suite: str) -> Budget | None:
        limits = self.pinned.get(suite)
        return Budget(dict(limits), {k: f"pinned known failure {self.case}" for k in limits}) if limits else None


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
            keys = CRASH_KEYS if "crash" in raw else KEYS
            bad = set(raw) - keys
            if bad:
                raise KnownFailureError(f"{where} has unknown key(s) {sorted(bad)}; keys are {sorted(keys)} "
                                        "(pinned ranges for a measured failure, crash for a conversion that crashes)")
            missing = keys - set(raw)
            if missing or not str(raw.get("reason", "")).strip():
                raise KnownFailureError(f"{where} needs case, test, a non-empty reason and the range it is "
                                        f"pinned to (missing {sorted(missing)})")
            if raw["test"] not in TESTS:
                raise KnownFailureError(f"{where}: test = {raw['test']!r}; expected one of {TESTS}")
            if "crash" in raw:
                try:
                    re.compile(raw["crash"])
                except (re.error, TypeError) as exc:
                    raise KnownFailureError(f"{where}: crash = {raw['crash']!r} is not a regular expression ({exc})")
                if not str(raw["crash"]).strip():
                    raise KnownFailureError(f"{where}: crash must name the error the conversion fails with")
                entries.append(KnownFailure(raw["case"], raw["test"], raw["reason"].strip(), crash=raw["crash"]))
                continue
            pinned = raw["pinned"]
            if not isinstance(pinned, dict) or not pinned or set(pinned) - set(PINNED_SUITES):
                raise KnownFailureError(f"{where}: pinned must hold tables per suite ({', '.join(PINNED_SUITES)})")
            try:
                for suite, table in pinned.items():
                    check_limits(path, f"known_failure #{i + 1} pinned.{suite}", table)
            except BudgetError as exc:
                raise KnownFailureError(str(exc)) from None
            entries.append(KnownFailure(raw["case"], raw["test"], raw["reason"].strip(), pinned))
        return cls(entries, str(path))

    def validate_ids(self, ids_by_test: dict[str, list[str]]) -> None:
        for e in self.entries:
            if not any(fnmatch.fnmatchcase(cid, e.case) for cid in ids_by_test.get(e.test, [])):
                raise KnownFailureError(f"{self.path}: known failure {e.case!r} ({e.test}) matches no case; "
                                        f"is the id misspelt?")

    def crash_for(self, case_id: str) -> KnownFailure | None:
        """The crash entry of a case, whatever the test: every test of it converts the same way."""
        return next((e for e in self.entries if e.crash and fnmatch.fnmatchcase(case_id, e.case)), None)

    def lookup(self, case_id: str, test: str) -> KnownFailure | None:
        """The measured known failure of a case's test (a crash entry is crash_for's: no measurement to judge)."""
        for e in self.entries:
            if e.test == test and not e.crash and fnmatch.fnmatchcase(case_id, e.case):
                return e
        return None
