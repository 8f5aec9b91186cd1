"""Report files written by the controller at the end of a run: report.json for machines, report.md for a
PR comment, report.html (self-contained) and the plots. Results of cases this run did not run are carried
over from the report already in the directory, so the sharded and the serial pass make one report."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from report import diff, html, plots
from report.matrix import build_matrix, cell_lines, known_failures, with_bounds
from report.plots import CAPTIONS
from report.tables import LINE_KINDS, table_rows

JSON_NAME, MD_NAME, HTML_NAME = "report.json", "report.md", "report.html"


def environment() -> dict:
    from converters.latency import cpu_flags, cpu_name
    from converters.pipeline import tool_versions

    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_name(),
            "cpu_flags": cpu_flags(), "tools": tool_versions(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def load_report(path: Path) -> dict:
    """A report.json, or a ValueError that says what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable report.json ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{path}: not a convsuite report.json (no 'results' list)")
    return data


def carry_over(rows: list[dict], out_dir: Path) -> tuple[list[dict], str]:
    """This run's rows plus the previous report's rows for cases this run did not produce."""
    previous = out_dir / JSON_NAME
    if not previous.is_file():
        return rows, ""
    try:
        old = load_report(previous)
    except ValueError as exc:
        return rows, f"previous report not merged: {exc}"
    ran = {(r.get("kind"), r.get("case")) for r in rows}
    when = old.get("environment", {}).get("time", "an earlier run")
    kept = [{**r, "carried_from": r.get("carried_from", when)} for r in old["results"]
            if (r.get("kind"), r.get("case")) not in ran]
    note = (f"{len(kept)} results carried over from earlier runs into this directory (delete it to start fresh)"
            if kept else "")
    return rows + kept, note


def write_all(rows: list[dict], out_dir: Path, baseline: Path | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    card = diff.compare(load_report(baseline), rows, env, str(baseline)) if baseline else None
    rows, carried = carry_over(rows, out_dir)
    rows = with_bounds(rows)
    matrix = build_matrix(rows)
    known = known_failures(rows)
    pictures = [p for p in (plots.accuracy_vs_latency(matrix, out_dir), plots.size_per_format(matrix, out_dir)) if p]
    cases = table_rows([r for r in rows if r.get("kind") not in LINE_KINDS])

    json_path = out_dir / JSON_NAME
    json_path.write_text(json.dumps({"environment": env, "results": rows}, indent=1, sort_keys=True, default=str))
    md_path = out_dir / MD_NAME
    md_path.write_text(markdown(env, rows, matrix, known, card, pictures, cases, carried))
    html_path = out_dir / HTML_NAME
    html_path.write_text(html.page(env, matrix, known, card, pictures, cases, carried))
    return [md_path, html_path, json_path, *pictures]


def markdown(env, rows, matrix, known, card, pictures, cases, carried) -> str:
    md = ["# Conformance report", "",
          f"{env['time']} · {env['cpu']} · " + ", ".join(f"{k} {v}" for k, v in env["tools"].items()), ""]
    if carried:
        md += [carried, ""]
    if card:
        md += diff.markdown(card)
    if matrix.models:
        md += ["## Matrix", "", matrix_markdown(matrix), ""]
    if known:
        md += ["## Known failures", ""] + [f"- **{kind} {case}**: {reason}" for kind, case, reason in known] + [""]
    if pictures:
        md += ["## Plots", ""] + [f"![{p.stem}]({p.name})\n\n{CAPTIONS.get(p.stem, '')}\n" for p in pictures]
    header, body = cases
    md += ["## All cases", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    md += ["| " + " | ".join(b) + " |" for b in body]
    for kind, title in (("architecture", "Architectures vs published figures"),
                        ("detection", "Detection power: deliberately broken conversions")):
        lines = sorted(r["line"] for r in rows if r.get("kind") == kind)
        if lines:
            md += ["", f"## {title}", ""] + [f"- {line}" for line in lines]
    return "\n".join(md) + "\n"


def matrix_markdown(matrix) -> str:
    """Rows models, columns format-precision; each cell: parity, accuracy drop, latency (share of the
    fp32 compute-bound floor in float columns), size, verdict."""
    lines = ["| model | " + " | ".join(matrix.columns) + " |", "|---" * (len(matrix.columns) + 1) + "|"]
    for model in matrix.models:
        bound = matrix.bounds.get(model, {})
        head = model + (f"<br>{bound['macs'] / 1e6:.1f} M MACs, fp32 bound {bound['bound_ms']:.2f} ms" if bound else "")
        cells = []
        for column in matrix.columns:
            cell = matrix.cell(model, column)
            parts = cell_lines(cell, matrix.float_bound_ms(model, column)) + ([f"**{cell.verdict}**"] if cell.verdict else []) \
                if cell else []
            cells.append("<br>".join(p.replace("|", "/") for p in parts))
        lines.append(f"| {head} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
