"""Report files written by the controller at the end of a run: report.json for machines, report.md for a
PR comment, report.html (self-contained) and the plots. Results of cases this run did not run are carried
over from the report already in the directory, so the sharded and the serial pass make one report."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from compare.cases import ResultRow
from report import diff, html, markdown, plots
from report.model import build_matrix, document, with_bounds

JSON_NAME, MD_NAME, HTML_NAME = "report.json", "report.md", "report.html"


def load_report(path: Path) -> dict:
    """A report.json as {"environment": dict, "results": [ResultRow]}, or a ValueError saying what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable report.json ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{path}: not a convsuite report.json (no 'results' list)")
    try:
        return {"environment": data.get("environment", {}), "results": [ResultRow.from_dict(r) for r in data["results"]]}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: written by another version of the suite ({exc}); delete it or the directory")


def carry_over(rows: list[ResultRow], out_dir: Path) -> tuple[list[ResultRow], str]:
    """This run's rows plus the previous report's rows for cases this run did not produce."""
    previous = out_dir / JSON_NAME
    if not previous.is_file():
        return rows, ""
    try:
        old = load_report(previous)
    except ValueError as exc:
        return rows, f"previous report not merged: {exc}"
    ran = {(r.kind, r.case) for r in rows}
    when = old["environment"].get("time", "an earlier run")
    kept = [r for r in old["results"] if (r.kind, r.case) not in ran]
    for r in kept:
        r.carried_from = r.carried_from or when
    note = (f"{len(kept)} results carried over from earlier runs into this directory (delete it to start fresh)"
            if kept else "")
    return rows + kept, note


def write_all(rows: list[ResultRow], out_dir: Path, env: dict, baseline: Path | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    card = diff.compare(load_report(baseline), rows, env, str(baseline)) if baseline else None
    rows, carried = carry_over(list(rows), out_dir)
    rows = with_bounds(rows)
    matrix = build_matrix(rows, env.get("columns", []))
    pictures = [p for p in (plots.accuracy_vs_latency(matrix, out_dir), plots.size_per_format(matrix, out_dir)) if p]
    diagnosed = plots.diagnosis(rows, out_dir)
    blocks = document(env, rows, matrix, card, pictures, carried, plots.CAPTIONS, diagnosed)
    paths = [out_dir / MD_NAME, out_dir / HTML_NAME, out_dir / JSON_NAME]
    paths[0].write_text(markdown.render(blocks))
    paths[1].write_text(html.render(blocks))
    results = [{k: v for k, v in asdict(r).items() if v not in (None, {}, "")} for r in rows]
    paths[2].write_text(json.dumps({"environment": env, "results": results}, indent=1, sort_keys=True, default=str))
    return paths + pictures + list(diagnosed.values())
