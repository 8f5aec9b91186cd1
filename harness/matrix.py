"""The run's matrix, built once per session and kept in `config.stash`: its subjects, its cases per test,
the budgets and the known failures. Built only when a collected test asks for a matrix parameter, so a
typo in budgets.toml stops matrix runs with a usage error and leaves the pure self-tests alone."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import options as opt

MATRIX_KEY = pytest.StashKey["RunMatrix"]()


@dataclass
class RunMatrix:
    natural: list  # models.Subject at their published configuration
    trained: list  # digits-trained subjects (empty when a user folder replaces them)
    accuracy: list  # subjects of the accuracy cases: the trained ones, or the user's folder subject
    budgets: object  # compare.budgets.Budgets
    known: object  # compare.known_failures.KnownFailures
    qat_natural: list = field(default_factory=list)  # real-weight QAT subjects (models.qat): int8 parity cases

    @property
    def pruned(self) -> list:
        """The pruned variants among the trained subjects (models.variants): the sparsity cases'."""
        from models.variants import VARIANTS

        return [s for s in self.trained if s.variant and VARIANTS[s.variant]["kind"] == "prune"]

    def qat_cases(self, subjects=None) -> list:
        """Every QAT subject (the trained ones' QAT variant, and the real-weight ones) x format with an
        activation-scale reader x the static int8 precision (the one whose activation scales QAT learns)."""
        from converters import formats
        from models.qat import learned

        subjects = self.trained + self.qat_natural if subjects is None else subjects
        return [c for c in self.cases([s for s in subjects if learned(s)])
                if c.precision == "int8" and formats.get(c.format).scales is not None]

    @property
    def parity_subjects(self) -> list:
        """The parity cases' subjects: every natural one, and the real-weight QAT subjects (models.qat),
        which are judged against their float model's golden outputs."""
        return self.natural + self.qat_natural

    @property
    def variants(self) -> list:
        """The pruned, distilled and QAT variants among the trained subjects with the model they are made from:
        the latency pass times them beside the natural subjects (the seed-shaped table's latency)."""
        from models.variants import base_id

        made = [s for s in self.trained if s.variant]
        return [s for s in self.trained if s.variant or (made and s.id == base_id())]

    def cases(self, subjects, latency: bool = False, inspected: bool = False) -> list:
        """subject x format x precision in sorted id order (every xdist worker must agree). Latency rows
        include formats outside the parity matrix (PyTorch eager, the reference); `inspected` keeps the formats
        whose artifacts' stored weights can be read (Format.weights)."""
        from converters import formats
        from converters.pipeline import Case

        out = [Case(s, f.name, p) for s in subjects for f in formats.formats()
               if (f.in_matrix or latency) and (f.weights or not inspected) for p in f.precisions
               if not s.precisions or p in s.precisions]
        return sorted(out, key=lambda c: c.id)


def weight_overrides(config) -> dict[str, str]:
    """MODEL -> checkpoint path, from the ini option and then the command line (which wins)."""
    out = {}
    for line in list(config.getini(opt.INI_WEIGHTS)) + list(config.getoption(opt.WEIGHTS)):
        name, sep, path = line.partition("=")
        if not sep or not path:
            raise pytest.UsageError(f"{opt.WEIGHTS} expects MODEL=CHECKPOINT, got {line!r}")
        out[name.strip()] = path.strip()
    return out


def load(config) -> RunMatrix:
    if MATRIX_KEY in config.stash:
        return config.stash[MATRIX_KEY]
    from compare.budgets import BudgetError, Budgets
    from compare.known_failures import KnownFailureError, KnownFailures
    from models import subjects

    try:
        natural = subjects.natural(weight_overrides(config))
        trained = [] if config.getoption(opt.USER_DATA) else subjects.digits()
        accuracy = (trained or [subjects.user_folder(config.getoption(opt.USER_MODEL),
                                                     config.getoption(opt.USER_DATA),
                                                     config.getoption(opt.USER_CHECKPOINT))]) \
            + subjects.labelled_user_models()
        budgets = Budgets.load(config.getoption(opt.BUDGETS))
        known = KnownFailures.load(config.getoption(opt.KNOWN_FAILURES))
    except (BudgetError, KnownFailureError, subjects.SubjectError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    from models import qat

    matrix = RunMatrix(natural, trained, accuracy, budgets, known, qat.natural_subjects())
    ids = {"parity": [c.id for c in matrix.cases(matrix.parity_subjects)],
           "accuracy": [c.id for c in matrix.cases(subjects.digits() + subjects.labelled_user_models() + accuracy)],
           "qat": [c.id for c in matrix.qat_cases(subjects.digits() + matrix.qat_natural)]}
    try:
        budgets.validate_ids(ids)
        known.validate_ids(ids)
    except (BudgetError, KnownFailureError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[MATRIX_KEY] = matrix
    return matrix


def model_files(config) -> list[str]:
    """--models-from files (resolved; ini entries relative to the rootdir) and module names, ini first."""
    out = []
    for base, specs in ((config.rootpath, config.getini(opt.INI_MODELS)),
                        (Path.cwd(), config.getoption(opt.MODELS_FROM))):
        for spec in specs:
            path = Path(spec).expanduser()
            if spec.endswith(".py") or (base / path).exists():
                spec = str((base / path).resolve())
            if spec not in out:
                out.append(spec)
    return out


def plugin_files(config) -> list[str]:
    return [str(Path(p).expanduser().resolve())
            for p in list(config.getini(opt.INI_FORMATS)) + list(config.getoption(opt.FORMATS_FROM))]
