"""report.html: the document model rendered as one self-contained page (plots embedded as data URIs; no
external CSS, fonts or scripts)."""
from __future__ import annotations

import base64
from html import escape

from report.model import Bullets, Heading, Image, Paragraph, Table

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


def _table(block: Table) -> str:
    rows = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in block.header) + "</tr>"]
    for row in block.rows:
        cells = []
        for i, cell in enumerate(row):
            lines = [escape(line) for line in cell.lines]
            if cell.strong:
                lines.append(f"<span class='verdict'>{escape(cell.strong)}</span>")
            tag = "th" if block.first_column_header and i == 0 else "td"
            css = f" class='{cell.css}'" if cell.css else ""
            cells.append(f"<{tag}{css}>" + "<br>".join(lines) + f"</{tag}>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(rows) + "</table>"


def render(blocks: list) -> str:
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Conformance report</title>"
             f"<style>{STYLE}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p{' class=meta' if block.meta else ''}>{escape(block.text)}</p>")
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li><b>{escape(b)}</b>: {escape(t)}</li>" if b else f"<li>{escape(t)}</li>"
                                          for b, t in block.items) + "</ul>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode()
            parts.append(f"<p><img class='plot' alt='{escape(block.path.stem)}' src='data:image/png;base64,{data}'>"
                         f"<br><span class='meta'>{escape(block.caption)}</span></p>")
    parts.append(f"<script>{IMAGE_CHECK}</script></body></html>")
    return "\n".join(parts)
