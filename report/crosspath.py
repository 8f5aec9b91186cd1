"""Cross-path agreement: the conversion paths of one subject and precision, compared input by input.

Every format at one precision converts the same PyTorch model (at int8, calibrated on the same images:
the suite's calibration set), so their top-1 classes can be lined up with each other and with PyTorch's.
Where the paths disagree on an input, at least one of them is wrong; where every path but one agrees with
PyTorch, that one is the odd one out. A path that is the odd one out on several inputs is the broken one
even when its own parity verdict passes (two exporters, onnx and openvino, or two runtimes of one onnx2tf
run, tflite and savedmodel, have no business disagreeing at fp32)."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from compare.cases import ResultRow


@dataclass
class Agreement:
    subject: str
    kind: str  # parity (the parity inputs) or accuracy (the labelled split)
    precision: str
    inputs: int
    vs_pytorch: dict[str, float]  # format -> top-1 agreement with PyTorch
    least_pair: tuple[str, str, float]  # the two paths that agree least, and how often they agree
    disagreements: int  # inputs where the paths do not all give the same class
    odd_one_out: dict[str, int]  # format -> inputs where it alone differs and every other path matches PyTorch


def agreements(rows: list[ResultRow]) -> list[Agreement]:
    """One Agreement per (subject, kind, precision) that at least two paths ran with top-1 classes."""
    groups: dict = defaultdict(dict)
    for r in rows:
        if r.kind in ("parity", "accuracy") and r.top1 and r.reference_top1 and r.format and r.precision:
            groups[(r.subject, r.kind, r.precision)][r.format] = r
    out = []
    for (subject, kind, precision), by_format in sorted(groups.items()):
        reference = np.asarray(next(iter(by_format.values())).reference_top1)
        paths = {f: np.asarray(r.top1) for f, r in sorted(by_format.items()) if len(r.top1) == len(reference)}
        if len(paths) < 2:
            continue
        stacked = np.stack(list(paths.values()))
        pairs = [(a, b, float(np.mean(paths[a] == paths[b]))) for a, b in combinations(paths, 2)]
        split = (stacked != stacked[0]).any(axis=0)  # inputs where the paths do not all agree
        odd: Counter = Counter()
        for i in np.flatnonzero(split):
            wrong = [f for f, p in paths.items() if p[i] != reference[i]]
            if len(wrong) == 1:
                odd[wrong[0]] += 1
        out.append(Agreement(subject, kind, precision, len(reference),
                             {f: float(np.mean(p == reference)) for f, p in paths.items()},
                             min(pairs, key=lambda pair: pair[2]),
                             int(split.sum()), dict(odd)))
    return out


def table(rows: list[ResultRow]):
    """The report's cross-path table, or None when no subject ran on two paths at one precision."""
    from report.model import Table, TableCell

    found = agreements(rows)
    if not found:
        return None
    body = []
    for a in found:
        inputs = f"{a.inputs} {'parity inputs' if a.kind == 'parity' else 'labelled'}"
        body.append([TableCell([a.subject]), TableCell([a.precision]), TableCell([inputs]),
                     TableCell([f"{f} {v:.3f}" for f, v in a.vs_pytorch.items()]),
                     TableCell([f"{a.least_pair[0]} / {a.least_pair[1]} {a.least_pair[2]:.3f}"]),
                     TableCell([str(a.disagreements)]),
                     TableCell([f"{f} {n}" for f, n in sorted(a.odd_one_out.items(), key=lambda x: -x[1])] or ["-"])])
    return Table(["subject", "precision", "inputs", "top-1 vs PyTorch", "least agreeing paths",
                  "inputs where paths disagree", "odd one out (alone wrong, the rest right)"], body)
