"""Result rows travel from xdist workers to the controller on the test report (user_properties); only the
controller prints the summary and writes the report."""
from __future__ import annotations

from pathlib import Path

import pytest

from compare.cases import Outcome, ResultRow
from harness import options as opt

RESULT_PROPERTY = "convsuite_result"
SHORT_RUN = 20  # runs with at most this many result rows print every row in the terminal summary


class ResultCollector:
    def __init__(self, config):
        self.config = config
        self.rows: list[ResultRow] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        if report.when != "call" and not (report.when == "setup" and report.failed):
            return
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                row = ResultRow.from_json(value)
                row.outcome = Outcome.of_report(report).value
                if row.outcome == Outcome.KNOWN.value:
                    row.known_failure = report.wasxfail
                self.rows.append(row)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter):
        if hasattr(self.config, "workerinput") or not self.rows:
            return
        from converters import formats
        from converters.latency import environment
        from report import terminal_summary, write_report

        env = {**environment(), "columns": formats.columns()}
        terminalreporter.write_sep("=", "convsuite summary")
        terminalreporter.write_line(terminal_summary(self.rows, every_row_up_to=SHORT_RUN))
        report_dir = self.config.getoption(opt.REPORT_DIR)
        if report_dir:
            baseline = self.config.getoption(opt.REPORT_BASELINE)
            paths = write_report(self.rows, Path(report_dir), env, Path(baseline) if baseline else None)
            terminalreporter.write_line(f"conformance report: {', '.join(str(p) for p in paths)}")
