"""Run-to-run scorecard: this run's result rows against a previous report.json. A change counts only
beyond the noise of the measurement; verdict changes and different weights always count.

    python -m report.diff OLD/report.json NEW/report.json   # e.g. two CI runners, two CPUs; exit 1 on any
                                                            # verdict change or weights difference
"""
from __future__ import annotations

from dataclasses import dataclass

# What "beyond noise" means per metric, and which direction is better. Parity and accuracy are
# deterministic on one toolchain, so their tolerances only absorb float reordering across library builds:
# 1e-4 cosine, 0.05 top-1 agreement (under 2 of 32 inputs), 1 dB SNR, and 0.25 accuracy points (one digit
# of 400 in the test split, so two digits must change). Latency must move by more than 10 % in the median
# AND the two runs' interquartile ranges must not overlap (measured here: unchanged re-runs move medians
# by up to a few percent with overlapping IQRs).
NOISE = {
    "cosine_mean": (1e-4, "higher"),
    "top1_agreement": (0.05, "higher"),
    "snr_db": (1.0, "higher"),
    "accuracy_drop": (0.25, "lower"),
}
LATENCY_RATIO = 1.10
VERDICT_RANK = {"failed": 0, "known": 1, "passed": 2}


@dataclass(frozen=True)
class Change:
    kind: str
    case: str
    metric: str
    old: object
    new: object
    direction: str  # "regressed" | "improved"

    def line(self) -> str:
        return f"{self.kind} {self.case}: {self.metric} {_num(self.old)} -> {_num(self.new)}"


@dataclass
class Scorecard:
    baseline: str
    regressed: list[Change]
    improved: list[Change]
    new_cases: list[str]
    gone_cases: list[str]
    caveats: list[str]  # why a comparison may be apples to oranges (other tools, threads)
    weights: list[str] = None  # subjects whose weights differ (another CPU trained them differently)


def compare(old: dict, new_rows: list, new_env: dict, baseline: str) -> Scorecard:
    """`old` is a loaded report ({"environment", "results": [ResultRow]})."""
    old_rows = {(r.kind, r.case): r for r in old.get("results", [])}
    new = {(r.kind, r.case): r for r in new_rows}
    changes = [c for key in sorted(old_rows.keys() & new.keys()) for c in _changes(old_rows[key], new[key])]
    return Scorecard(
        baseline=baseline,
        regressed=[c for c in changes if c.direction == "regressed"],
        improved=[c for c in changes if c.direction == "improved"],
        new_cases=[f"{k} {c}" for k, c in sorted(new.keys() - old_rows.keys())],
        gone_cases=[f"{k} {c}" for k, c in sorted(old_rows.keys() - new.keys())],
        caveats=_caveats(old.get("environment", {}), new_env, old_rows, new),
        weights=sorted({f"{n.subject}: {o.weights_sha256[:12]} -> {n.weights_sha256[:12]}"
                        for key, n in new.items() if (o := old_rows.get(key)) is not None
                        and o.weights_sha256 and n.weights_sha256 and o.weights_sha256 != n.weights_sha256}),
    )


def _changes(old, new) -> list[Change]:
    out = []
    kind, case = new.kind, new.case
    before, after = VERDICT_RANK.get(old.outcome), VERDICT_RANK.get(new.outcome)
    if before is not None and after is not None and before != after:
        out.append(Change(kind, case, "verdict", old.outcome, new.outcome,
                          "improved" if after > before else "regressed"))
    for metric, (tolerance, better) in NOISE.items():
        a, b = old.value(metric), new.value(metric)
        if a is None or b is None or a == b or abs(b - a) <= tolerance:  # a == b: inf stays inf
            continue
        up = b > a
        out.append(Change(kind, case, metric, a, b, "improved" if up == (better == "higher") else "regressed"))
    if kind == "latency" and all((new.latency_ms, new.latency_q1_ms, new.latency_q3_ms, old.latency_ms,
                                  old.latency_q1_ms, old.latency_q3_ms)):
        ratio = new.latency_ms / old.latency_ms
        if ratio > LATENCY_RATIO and new.latency_q1_ms > old.latency_q3_ms:
            out.append(Change(kind, case, "latency_ms", old.latency_ms, new.latency_ms, "regressed"))
        elif ratio < 1 / LATENCY_RATIO and new.latency_q3_ms < old.latency_q1_ms:
            out.append(Change(kind, case, "latency_ms", old.latency_ms, new.latency_ms, "improved"))
    return out


def _caveats(old_env: dict, new_env: dict, old_rows: dict, new_rows: dict) -> list[str]:
    caveats = []
    old_tools, new_tools = old_env.get("tools", {}), new_env.get("tools", {})
    for name in sorted(old_tools.keys() | new_tools.keys()):
        if old_tools.get(name) != new_tools.get(name):
            caveats.append(f"{name} {old_tools.get(name, 'absent')} -> {new_tools.get(name, 'absent')}")
    old_t = {r.threads for r in old_rows.values() if r.kind == "latency"}
    new_t = {r.threads for r in new_rows.values() if r.kind == "latency"}
    if old_t and new_t and old_t != new_t:
        caveats.append(f"latency threads {sorted(old_t)} -> {sorted(new_t)}")
    if old_env.get("cpu") and new_env.get("cpu") and old_env["cpu"] != new_env["cpu"]:
        caveats.append(f"CPU {old_env['cpu']} -> {new_env['cpu']}")
    return caveats


def blocks(card: Scorecard) -> list:
    """The scorecard as report blocks (report.model)."""
    from report.model import Heading, Paragraph, Table, TableCell

    out: list = [Heading(2, f"Since {card.baseline}: {len(card.regressed)} regressed, {len(card.improved)} improved")]
    if card.caveats:
        out.append(Paragraph("Not like for like: " + "; ".join(card.caveats) + ".", meta=True))
    for title, changes in (("Regressed", card.regressed), ("Improved", card.improved)):
        if changes:
            out += [Heading(3, title), Table(["test", "case", "metric", "before", "now"],
                                             [[TableCell([str(v)]) for v in (c.kind, c.case, c.metric, _num(c.old),
                                                                             _num(c.new))] for c in changes])]
    if card.weights:
        out.append(Paragraph("Different weights: " + "; ".join(card.weights) + "."))
    if card.new_cases:
        out.append(Paragraph(f"New cases: {len(card.new_cases)}."))
    if card.gone_cases:
        out.append(Paragraph(f"Cases no longer run: {len(card.gone_cases)} ({', '.join(card.gone_cases[:10])}"
                             + (", ..." if len(card.gone_cases) > 10 else "") + ")."))
    return out


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv=None) -> int:
    import argparse
    import sys

    from report.files import load_report

    parser = argparse.ArgumentParser(description="compare two report.json files: verdicts, metrics beyond "
                                                 "noise, weights (exit 1 on a verdict change or other weights)")
    parser.add_argument("old")
    parser.add_argument("new")
    args = parser.parse_args(argv)
    old, new = load_report(args.old), load_report(args.new)
    card = compare(old, new["results"], new["environment"], args.old)
    verdicts = [c for c in card.regressed + card.improved if c.metric == "verdict"]
    both = {(r.kind, r.case) for r in old["results"]} & {(r.kind, r.case) for r in new["results"]}
    print(f"{len(both)} results in both; {len(verdicts)} verdict changes; {len(card.regressed)} regressed and "
          f"{len(card.improved)} improved beyond noise; {len(card.weights)} subjects with different weights")
    for line in [c.line() for c in card.regressed + card.improved] + card.weights + card.caveats:
        print("  " + line)
    return 1 if verdicts or card.weights else 0


if __name__ == "__main__":
    raise SystemExit(main())
