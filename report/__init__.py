"""The conformance report: terminal summary, Markdown, HTML, JSON and plots, built from result rows."""
from __future__ import annotations


def write_report(rows, out_dir, baseline=None):
    from report.files import write_all

    return write_all(rows, out_dir, baseline)
