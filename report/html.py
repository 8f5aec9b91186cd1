"""The self-contained HTML page of the report: the matrix, known failures, the scorecard, the plots (PNG
embedded as data URIs) and every case. No external CSS, fonts or scripts."""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from report.diff import Scorecard
from report.matrix import Matrix, cell_lines
from report.plots import CAPTIONS

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #212121; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #cfd8dc; padding: 4px 6px; vertical-align: top; font-size: 12px; }
th { background: #eceff1; position: sticky; top: 0; }
td.pass { background: #e8f5e9; } td.known { background: #fff3e0; } td.FAIL { background: #ffebee; }
td .verdict { font-weight: bold; } img { max-width: 100%; border: 1px solid #eceff1; }
.meta { color: #546e7a; } .missing { color: #c62828; font-weight: bold; }
"""
# Marks each plot as loaded or broken once the page has loaded, so a reader (and the headless-browser
# check in report.browser_check) sees a plot that failed to decode instead of an empty frame.
IMAGE_CHECK = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot'), ok = 0;
  imgs.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { ok += 1; }
    else { var p = document.createElement('p'); p.className = 'missing';
           p.textContent = 'plot failed to load: ' + img.alt; img.after(p); }
  });
  document.body.setAttribute('data-plots-loaded', ok + '/' + imgs.length);
});
"""


def page(env: dict, matrix: Matrix, known: list, card: Scorecard | None, plots: list[Path],
         cases: tuple[list[str], list[list[str]]], carried: str) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Conformance report</title>"
             f"<style>{STYLE}</style></head><body>",
             "<h1>Conformance report</h1>",
             f"<p class='meta'>{escape(_environment_line(env))}</p>"]
    if carried:
        parts.append(f"<p class='meta'>{escape(carried)}</p>")
    if matrix.models:
        parts += ["<h2>Matrix</h2>", _matrix_table(matrix)]
    if known:
        parts += ["<h2>Known failures</h2><ul>"]
        parts += [f"<li><b>{escape(kind)} {escape(case)}</b>: {escape(reason)}</li>" for kind, case, reason in known]
        parts.append("</ul>")
    if card:
        parts.append(_scorecard(card))
    if plots:
        parts.append("<h2>Plots</h2>")
        for path in plots:
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f"<p><img class='plot' alt='{escape(path.stem)}' src='data:image/png;base64,{data}'><br>"
                         f"<span class='meta'>{escape(CAPTIONS.get(path.stem, ''))}</span></p>")
    header, body = cases
    parts += ["<h2>All cases</h2><table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in body]
    parts += ["</table>", f"<script>{IMAGE_CHECK}</script></body></html>"]
    return "\n".join(parts)


def _environment_line(env: dict) -> str:
    tools = ", ".join(f"{k} {v}" for k, v in env.get("tools", {}).items())
    return f"{env.get('time', '')} · {env.get('cpu', '')} · {tools}"


def _matrix_table(matrix: Matrix) -> str:
    rows = ["<table><tr><th>model</th>" + "".join(f"<th>{escape(c)}</th>" for c in matrix.columns) + "</tr>"]
    for model in matrix.models:
        bound = matrix.bounds.get(model, {})
        head = escape(model)
        if bound:
            head += (f"<br><span class='meta'>{bound['macs'] / 1e6:.1f} M MACs<br>fp32 bound {bound['bound_ms']:.2f} ms"
                     f" @ {bound['threads']} thr</span>")
        cells = []
        for column in matrix.columns:
            cell = matrix.cell(model, column)
            if cell is None:
                cells.append("<td></td>")
                continue
            lines = [escape(line) for line in cell_lines(cell, matrix.float_bound_ms(model, column))]
            if cell.verdict:
                lines.append(f"<span class='verdict'>{cell.verdict}</span>")
            cells.append(f"<td class='{cell.verdict}'>" + "<br>".join(lines) + "</td>")
        rows.append(f"<tr><th>{head}</th>" + "".join(cells) + "</tr>")
    return "\n".join(rows) + "</table>"


def _scorecard(card: Scorecard) -> str:
    parts = [f"<h2>Since {escape(card.baseline)}: {len(card.regressed)} regressed, {len(card.improved)} improved</h2>"]
    if card.caveats:
        parts.append(f"<p class='meta'>Not like for like: {escape('; '.join(card.caveats))}</p>")
    for title, changes in (("Regressed", card.regressed), ("Improved", card.improved)):
        if changes:
            parts.append(f"<h3>{title}</h3><ul>" + "".join(f"<li>{escape(c.line())}</li>" for c in changes) + "</ul>")
    return "\n".join(parts)
