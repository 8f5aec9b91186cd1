"""The latency gate's arithmetic (report.latency_gate), without timing anything: the reference is the
per-case median of the baselines, and confirmation keeps a flagged case only when every re-measurement is
slower too. How well it works on a real machine is benchmarks/latency_gate.py's job, not a test's."""
from __future__ import annotations

import pytest

from compare.cases import ResultRow
from report import latency_gate

pytestmark = pytest.mark.selftest


def rows(**ms) -> list:
    return [ResultRow(case=case, kind="latency", latency_min_ms=v, peak_gflops=100.0) for case, v in ms.items()]


def test_the_reference_is_the_median_of_the_baselines():
    baselines = [rows(a=1.0, b=2.0), rows(a=0.8, b=2.0), rows(a=1.0, b=2.0)]  # one lucky-fast pass for a
    found = {r.case: r for r in latency_gate.ratios(baselines, rows(a=1.0, b=2.3))}
    assert found["a"].normalized == pytest.approx(1.0) and found["b"].normalized == pytest.approx(1.15)
    assert latency_gate.ratios(baselines[1], rows(a=1.0))[0].normalized == pytest.approx(1.25)  # one baseline


def test_confirmation_keeps_a_regression_that_repeats_and_drops_a_spike(monkeypatch):
    again = iter([rows(spike=1.0, regression=1.16), rows(regression=1.17)])
    monkeypatch.setattr(latency_gate, "remeasure", lambda cases, args, out: next(again))
    baseline = rows(spike=1.0, regression=1.0)
    flagged = latency_gate.ratios(baseline, rows(spike=1.4, regression=1.15))
    kept = latency_gate.confirmed(baseline, flagged, 0.10, 2, [], "/nonexistent")
    assert [(r.case, round(r.normalized, 2)) for r in kept] == [("regression", 1.15)]


def test_a_case_whose_baselines_disagree_is_not_gated(tmp_path, capsys):
    import json
    from dataclasses import asdict

    def report(name, **ms):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"results": [asdict(r) for r in rows(**ms)]}))
        return str(path)

    baselines = [report("b0", steady=1.0, eager=1.0), report("b1", steady=1.01, eager=1.2),
                 report("b2", steady=1.0, eager=1.1)]
    assert latency_gate.main(["--confirm=0", *baselines, report("ok", steady=1.02, eager=1.4)]) == 0
    assert "NOT GATED eager" in capsys.readouterr().out
    assert latency_gate.main(["--confirm=0", *baselines, report("slow", steady=1.2, eager=1.0)]) == 1
    assert "SLOWER steady" in capsys.readouterr().out
