"""The conformance report: terminal table, Markdown, HTML and JSON, built from result rows."""
from __future__ import annotations


def write_report(rows, out_dir):
    from report.files import write_all

    return write_all(rows, out_dir)
