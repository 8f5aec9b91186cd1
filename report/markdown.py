"""report.md: the document model rendered as Markdown for a PR comment (cell lines joined by <br>)."""
from __future__ import annotations

from report.model import Bullets, Heading, Image, Paragraph, Table


def _cell(cell) -> str:
    lines = cell.lines + ([f"**{cell.strong}**"] if cell.strong else [])
    return "<br>".join(line.replace("|", "/") for line in lines)


def render(blocks: list) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Table):
            out += ["| " + " | ".join(block.header) + " |", "|---" * len(block.header) + "|"]
            out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Bullets):
            out += [f"- **{bold}**: {text}" if bold else f"- {text}" for bold, text in block.items] + [""]
        elif isinstance(block, Image):
            out += [f"![{block.path.stem}]({block.path.name})", "", block.caption, ""]
    return "\n".join(out).rstrip() + "\n"
