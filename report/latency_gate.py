"""A latency gate that works on a shared VM: a case's fastest call, in units of the machine's own speed
measured right next to it (the peak fp32 matmul rate probed before and after the case), compared between a
baseline run and a candidate run. A shared VM's speed drifts in phases (measured: the same matmul 63 to 144
GFLOP/s within one pass); normalising by the in-run probe takes most of that drift out.

    python -m report.latency_gate BASELINE/report.json CANDIDATE/report.json [--max-slowdown=0.10]

Exit 1 when a case both reports got slower than the threshold. benchmarks/latency_gate.py measures the
gate's false alarms over clean runs and what share of an injected 15 % slowdown it catches.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

DEFAULT_MAX_SLOWDOWN = 0.10


@dataclass(frozen=True)
class Ratio:
    case: str
    normalized: float  # candidate / baseline, each fastest call x the peak matmul rate next to it
    raw: float  # candidate / baseline fastest call

    def line(self) -> str:
        return f"{self.case}: {self.normalized:.3f}x normalized ({self.raw:.3f}x raw)"


def ratios(baseline: list, candidate: list) -> list[Ratio]:
    old = {r.case: r for r in baseline if r.kind == "latency" and r.latency_min_ms and r.peak_gflops}
    out = []
    for r in candidate:
        o = old.get(r.case)
        if r.kind == "latency" and o is not None and r.latency_min_ms and r.peak_gflops:
            out.append(Ratio(r.case, (r.latency_min_ms * r.peak_gflops) / (o.latency_min_ms * o.peak_gflops),
                             r.latency_min_ms / o.latency_min_ms))
    return sorted(out, key=lambda x: -x.normalized)


def main(argv=None) -> int:
    from report.files import load_report

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline")
    parser.add_argument("candidate")
    parser.add_argument("--max-slowdown", type=float, default=DEFAULT_MAX_SLOWDOWN,
                        help=f"flag a case whose normalized fastest call grew by more than this (default "
                             f"{DEFAULT_MAX_SLOWDOWN})")
    args = parser.parse_args(argv)
    found = ratios(load_report(args.baseline)["results"], load_report(args.candidate)["results"])
    slower = [r for r in found if r.normalized > 1 + args.max_slowdown]
    print(f"{len(found)} latency cases in both runs; {len(slower)} slower than {1 + args.max_slowdown:.2f}x")
    for r in slower:
        print("  SLOWER " + r.line())
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
