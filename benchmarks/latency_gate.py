"""How well the latency gate (report.latency_gate) works on this machine: N clean latency passes and N
passes with every timed call made 15 % slower (--latency-slowdown=1.15), each compared with the per-case
median of B baseline passes (--baselines, default 3: a CI gate compares with main's last runs), normalized by the in-run matmul probe and raw. Prints per threshold the false alarms (clean passes
with any case flagged) and the share of slowed cases caught, so the gate's default is chosen from data;
then the same with confirmation (report.latency_gate --confirm): each case flagged at the lowest threshold
re-measured up to --confirm times under the same setting as its pass, and kept only if slower every time.

    python -m benchmarks.latency_gate [--runs 10] [--baselines 3] [--confirm 2] [-k EXPR] [--out DIR]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = (0.05, 0.075, 0.10, 0.125)


def settings(slowdown: float) -> list[str]:
    return [f"--latency-slowdown={slowdown}", "--benchmark-max-time=0.5"]


def latency_pass(out: Path, select: str, slowdown: float) -> Path:
    cmd = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "-q",
           "-p", "no:cacheprovider", "-n", "0", "-m", "latency and not selftest", "-k", select,
           f"--report-dir={out}", "--diagnose=off", *settings(slowdown)]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out / "report.json"


def main(argv=None) -> int:
    from report.files import load_report
    from report.latency_gate import Ratio, confirmed, ratios

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baselines", type=int, default=3, help="baseline passes (default 3)")
    parser.add_argument("--confirm", type=int, default=2, help="re-measurements of a flagged case (default 2)")
    parser.add_argument("-k", dest="select", default="mobilenet_v3_small or mobilenet_v2_torchvision")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "latency-gate")
    args = parser.parse_args(argv)
    base = [load_report(latency_pass(args.out / f"base{i}", args.select, 1.0))["results"]
            for i in range(args.baselines)]
    clean, slow, confirmed_runs = [], [], {"clean": [], "slow": []}
    for i in range(args.runs):  # interleaved, so both kinds see the same phases of the machine
        clean.append(ratios(base, load_report(latency_pass(args.out / f"clean{i}", args.select, 1.0))["results"]))
        slow.append(ratios(base, load_report(latency_pass(args.out / f"slow{i}", args.select, 1.15))["results"]))
        if args.confirm:  # each pass's flagged cases re-measured right after it, under its own setting
            for runs, factor, kind in ((clean, 1.0, "clean"), (slow, 1.15, "slow")):
                kept = {r.case: r for r in confirmed(base, [r for r in runs[-1] if r.normalized > 1 + THRESHOLDS[0]],
                                                     THRESHOLDS[0], args.confirm, settings(factor),
                                                     args.out / f"{kind}{i}-confirm")}
                confirmed_runs[kind].append([kept.get(r.case, Ratio(r.case, min(r.normalized, 1 + THRESHOLDS[0]),
                                                                     r.raw, r.spread)) for r in runs[-1]])
    cases = len(clean[0])
    print(f"{args.runs} clean and {args.runs} slowed (x1.15) passes of {cases} cases against the median of "
          f"{args.baselines} baseline pass(es)")
    tables = [("normalized", clean, slow), ("raw", clean, slow)]
    if args.confirm:
        tables.append((f"normalized, confirmed ({args.confirm} re-measurements)", confirmed_runs["clean"],
                       confirmed_runs["slow"]))
        tables.append(("normalized, confirmed, cases whose baselines differ by more than the threshold not gated "
                       "(report.latency_gate's rule)", confirmed_runs["clean"], confirmed_runs["slow"]))
    for title, clean_runs, slow_runs in tables:
        field = "raw" if title == "raw" else "normalized"
        print(f"{title}:")
        for t in THRESHOLDS:
            def gated(run):
                return [r for r in run if "not gated" not in title or r.spread <= t]

            alarms = sum(any(getattr(r, field) > 1 + t for r in gated(run)) for run in clean_runs)
            caught = sum(getattr(r, field) > 1 + t for run in slow_runs for r in gated(run))
            total = sum(len(gated(run)) for run in slow_runs)
            print(f"  threshold {t:.3f}: false alarms in {alarms}/{args.runs} clean passes; "
                  f"{caught}/{total} slowed cases caught ({caught / max(total, 1):.0%})"
                  + (f"; {len(gated(slow_runs[0]))}/{cases} cases gated" if "not gated" in title else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
