"""The conformance report: terminal summary, Markdown, HTML, JSON and plots, built from result rows
(compare.cases.ResultRow) through one data model (report.model). Imports nothing from converters: the
environment and the column order come in with the rows."""
from __future__ import annotations


def write_report(rows, out_dir, env: dict, baseline=None):
    from report.files import write_all

    return write_all(rows, out_dir, env, baseline)


def terminal_summary(rows, every_row_up_to: int) -> str:
    from report.terminal import summary

    return summary(rows, every_row_up_to)
