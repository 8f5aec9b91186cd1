"""A latency gate that works on a shared VM: a case's fastest call, in units of the machine's own speed
measured right next to it (the peak fp32 matmul rate probed before and after the case), compared between a
baseline run and a candidate run. A shared VM's speed drifts in phases (measured: the same matmul 63 to 144
GFLOP/s within one pass); normalising by the in-run probe takes most of that drift out.

    python -m report.latency_gate BASELINE/report.json [MORE_BASELINES ...] CANDIDATE/report.json
                                  [--max-slowdown=0.10] [--confirm=2 [--pytest-arg=...]]

Several baselines (main's last runs) are better than one: the reference is their per-case median, and a
case whose baselines differ among themselves by more than the threshold is not gated (it says so): measured
(3 unchanged passes, 33 cases), the eager-framework rows (PyTorch 6-14 %, TensorFlow's SavedModel 17-25 %) and
the 1-2 ms calls of MobileNetV3-Small (5-10 %), where a verdict at that threshold would be noise.

Exit 1 when a case both reports have got slower than the threshold. What the probe cannot see is a single
case's call spiking in one pass (measured: 1.2-1.5x, in 3 of 10 clean passes); --confirm=N re-measures each
flagged case N more times in this checkout (the candidate's code: run the gate where the candidate ran) and
flags it only if every measurement is slower: a regression is in the code and repeats, a spike does not.
benchmarks/latency_gate.py measures the gate's false alarms over clean runs and what share of an injected
15 % slowdown it catches, with and without confirmation.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

# the measured best on a shared 2-core VM (README, benchmarks/latency_gate.py): 0 of 10 clean passes flagged,
# every slowed case that was gated caught
DEFAULT_MAX_SLOWDOWN = 0.05
DEFAULT_CONFIRM = 2


@dataclass(frozen=True)
class Ratio:
    case: str
    normalized: float  # candidate / baseline, each fastest call x the peak matmul rate next to it
    raw: float  # candidate / baseline fastest call
    spread: float = 0.0  # how far the baselines' normalized values differ: max / min - 1 (0 with one)

    def line(self) -> str:
        return f"{self.case}: {self.normalized:.3f}x normalized ({self.raw:.3f}x raw)"


def _measured(rows: list) -> dict[str, tuple[float, float]]:
    """case -> (fastest call x peak matmul rate next to it, fastest call) of a report's latency rows."""
    return {r.case: (r.latency_min_ms * r.peak_gflops, r.latency_min_ms) for r in rows
            if r.kind == "latency" and r.latency_min_ms and r.peak_gflops}


def ratios(baseline: list, candidate: list) -> list[Ratio]:
    """Candidate over baseline per case. `baseline`: one report's rows, or a list of several reports' rows,
    whose per-case median is the reference (one baseline pass that happened to be fast for a case made that
    case look 15 % slower in every later pass: measured, 9 of 10 clean passes flagged at 0.05)."""
    runs = baseline if baseline and isinstance(baseline[0], list) else [baseline]
    measured = [_measured(rows) for rows in runs]
    reference = {}
    for case in set().union(*measured):
        values = [m[case] for m in measured if case in m]
        norms = [v[0] for v in values]
        reference[case] = (float(np.median(norms)), float(np.median([v[1] for v in values])),
                           max(norms) / min(norms) - 1)
    out = [Ratio(case, norm / reference[case][0], raw / reference[case][1], reference[case][2])
           for case, (norm, raw) in _measured(candidate).items() if case in reference]
    return sorted(out, key=lambda x: -x.normalized)


def remeasure(cases: list[str], pytest_args: list[str], out) -> list:
    """The latency rows of `cases` measured again by a child pytest in this checkout (report in `out`)."""
    import subprocess
    from pathlib import Path

    from report.files import load_report

    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "pytest", "-c", str(root / "pyproject.toml"), "--rootdir", str(root), "-q",
           "-p", "no:cacheprovider", "-n", "0", "--diagnose=off", f"--report-dir={out}", *pytest_args,
           *(f"tests/test_latency.py::test_latency[{case}]" for case in cases)]
    subprocess.run(cmd, cwd=root, check=True, stdout=subprocess.DEVNULL)
    return load_report(Path(out) / "report.json")["results"]


def confirmed(baseline: list, flagged: list[Ratio], threshold: float, tries: int, pytest_args: list[str],
              out) -> list[Ratio]:
    """The flagged ratios that stay above 1 + threshold in `tries` re-measurements, each as its fastest
    (least slowed) measurement."""
    from pathlib import Path

    best = {r.case: r for r in flagged}
    for i in range(tries):
        pending = [c for c, r in best.items() if r.normalized > 1 + threshold]
        if not pending:
            break
        for r in ratios(baseline, remeasure(pending, pytest_args, Path(out) / f"confirm{i}")):
            if r.case in best and r.normalized < best[r.case].normalized:
                best[r.case] = r
    return sorted((r for r in best.values() if r.normalized > 1 + threshold), key=lambda x: -x.normalized)


def main(argv=None) -> int:
    from report.files import load_report

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", metavar="REPORT",
                        help="baseline report.json file(s) (the reference is their per-case median), then the "
                             "candidate's report.json")
    parser.add_argument("--max-slowdown", type=float, default=DEFAULT_MAX_SLOWDOWN,
                        help=f"flag a case whose normalized fastest call grew by more than this (default "
                             f"{DEFAULT_MAX_SLOWDOWN})")
    parser.add_argument("--confirm", type=int, default=DEFAULT_CONFIRM, metavar="N",
                        help="re-measure each flagged case up to N more times in this checkout and flag it only "
                             f"if it stays slower every time (default {DEFAULT_CONFIRM}; 0: no re-measurement)")
    parser.add_argument("--pytest-arg", action="append", default=[], metavar="ARG",
                        help="an argument for the re-measuring pytest runs (repeatable), e.g. the candidate "
                             "run's --benchmark-max-time")
    args = parser.parse_args(argv)
    if len(args.reports) < 2:
        parser.error("give at least one baseline report and the candidate report")
    baseline = [load_report(path)["results"] for path in args.reports[:-1]]
    found = ratios(baseline, load_report(args.reports[-1])["results"])
    noisy = [r for r in found if r.spread > args.max_slowdown]
    for r in noisy:  # its own baselines differ by more than the threshold: a verdict would be noise
        print(f"  NOT GATED {r.case}: its {len(baseline)} baselines differ by {r.spread:.0%}, more than "
              f"{args.max_slowdown:.0%}")
    found = [r for r in found if r.spread <= args.max_slowdown]
    slower = [r for r in found if r.normalized > 1 + args.max_slowdown]
    if slower and args.confirm:
        import tempfile

        with tempfile.TemporaryDirectory() as out:
            again = confirmed(baseline, slower, args.max_slowdown, args.confirm, args.pytest_arg, out)
        print(f"{len(slower)} flagged, {len(again)} of them still slower in {args.confirm} re-measurement(s)")
        slower = again
    print(f"{len(found)} latency cases in both runs; {len(slower)} slower than {1 + args.max_slowdown:.2f}x")
    for r in slower:
        print("  SLOWER " + r.line())
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
