"""Result rows -> tables (terminal and Markdown share one layout)."""
from __future__ import annotations

COLUMNS = [("case", "case", "{}"), ("cosine_mean", "cos mean", "{:.5f}"), ("cosine_worst", "cos worst", "{:.5f}"),
           ("top1_agreement", "top1 agr", "{:.3f}"), ("max_abs_error", "max abs err", "{:.3g}"),
           ("accuracy", "acc %", "{:.2f}"), ("accuracy_drop", "drop pts", "{:+.2f}"),
           ("latency_ms", "latency ms", "{:.2f}"), ("outcome", "verdict", "{}")]


def _cell(row, key, fmt):
    value = row.get(key)
    if value is None:
        return row.get("error", "")[:40] if key == "cosine_mean" else ""
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def table_rows(rows):
    used = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows) or c[0] == "case"]
    body = [[_cell(r, key, fmt) for key, _, fmt in used] for r in sorted(rows, key=lambda r: (r["kind"], r["case"]))]
    return [title for _, title, _ in used], body


def terminal_table(rows) -> str:
    header, body = table_rows(rows)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*b) for b in body)])
