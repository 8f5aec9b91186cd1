"""Report files written by the controller at the end of a run: JSON for machines, Markdown for a PR
comment (the matrix: rows are models, columns are format-precision)."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from report.tables import table_rows


def environment() -> dict:
    from converters.pipeline import tool_versions

    return {"python": platform.python_version(), "machine": platform.machine(), "tools": tool_versions(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def matrix_markdown(rows) -> str:
    """Models x format-precision grid of parity results: 'cos mean / top-1 agreement' and the verdict."""
    parity = [r for r in rows if r.get("kind") == "parity"]
    if not parity:
        return ""
    columns = sorted({f"{r['format']}-{r['precision']}" for r in parity})
    grid = {}
    for r in parity:
        mark = {"passed": "", "xfail": " (known)", "failed": " **FAIL**"}.get(r.get("outcome"), "")
        cell = (f"{r['cosine_mean']:.4f} / {r['top1_agreement']:.2f}{mark}" if "cosine_mean" in r
                else f"error{mark}")
        grid[(r["model"], f"{r['format']}-{r['precision']}")] = cell
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model in sorted({r["model"] for r in parity}):
        lines.append(f"| {model} | " + " | ".join(grid.get((model, c), "") for c in columns) + " |")
    return "\n".join(lines)


def write_all(rows, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps({"environment": env, "results": rows}, indent=1, sort_keys=True, default=str))
    header, body = table_rows([r for r in rows if r.get("kind") != "architecture"])
    md = ["# Conformance report", "", f"{env['time']}, " + ", ".join(f"{k} {v}" for k, v in env["tools"].items()),
          "", "## Parity matrix (cosine mean / top-1 agreement)", "", matrix_markdown(rows), "",
          "## All cases", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    md += ["| " + " | ".join(b) + " |" for b in body]
    arch = sorted(r["line"] for r in rows if r.get("kind") == "architecture")
    if arch:
        md += ["", "## Architectures vs published figures", ""] + [f"- {line}" for line in arch]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")
    return [md_path, json_path]
