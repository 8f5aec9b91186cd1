"""Result rows -> tables: every case (the report's "All cases", one layout for Markdown and HTML) and the
short per-model summary printed in the terminal at the end of a run."""
from __future__ import annotations

from report.matrix import arch_of

LINE_KINDS = ("architecture", "detection")  # results that are one line of text, not a matrix row

COLUMNS = [("case", "case", "{}"), ("kind", "test", "{}"), ("cosine_mean", "cos mean", "{:.5f}"),
           ("cosine_worst", "cos worst", "{:.5f}"), ("top1_agreement", "top1 agr", "{:.3f}"),
           ("snr_db", "SNR dB", "{:.1f}"), ("max_abs_error", "max abs err", "{:.3g}"),
           ("accuracy", "acc %", "{:.2f}"), ("accuracy_drop", "drop pts", "{:+.2f}"),
           ("latency_ms", "latency ms", "{:.2f}"), ("bound_ms", "bound ms", "{:.2f}"),
           ("size_bytes", "size MB", lambda v: f"{v / 1e6:.2f}"), ("outcome", "verdict", "{}")]


def _cell(row, key, fmt):
    value = row.get(key)
    if value is None:
        return row.get("error", "")[:40] if key == "cosine_mean" else ""
    try:
        return fmt(value) if callable(fmt) else fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def table_rows(rows):
    used = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows) or c[0] == "case"]
    body = [[_cell(r, key, fmt) for key, _, fmt in used] for r in sorted(rows, key=lambda r: (r["kind"], r["case"]))]
    return [title for _, title, _ in used], body


def summary_rows(rows):
    """One line per model: parity and accuracy verdict counts, the worst accuracy drop and the fastest
    format next to PyTorch eager."""
    header = ["model", "parity pass/known/FAIL", "accuracy pass/known/FAIL", "worst acc drop", "fastest",
              "vs pytorch"]
    body = []
    for model in sorted({arch_of(r) for r in rows if r.get("kind") in ("parity", "accuracy", "latency")}):
        mine = [r for r in rows if arch_of(r) == model]
        counts = {kind: _counts([r for r in mine if r["kind"] == kind]) for kind in ("parity", "accuracy")}
        drops = [r for r in mine if r["kind"] == "accuracy" and r.get("accuracy_drop") is not None]
        worst = max(drops, key=lambda r: r["accuracy_drop"], default=None)
        timed = [r for r in mine if r["kind"] == "latency" and r.get("latency_ms")]
        fastest = min(timed, key=lambda r: r["latency_ms"], default=None)
        eager = next((r["latency_ms"] for r in timed if r["format"] == "pytorch"), None)
        body.append([
            model, counts["parity"], counts["accuracy"],
            f"{worst['accuracy_drop']:+.2f} ({worst['format']}-{worst['precision']})" if worst else "",
            f"{fastest['format']}-{fastest['precision']} {fastest['latency_ms']:.2f} ms" if fastest else "",
            f"{eager / fastest['latency_ms']:.1f}x" if fastest and eager else "",
        ])
    return header, body


def _counts(rows) -> str:
    if not rows:
        return ""
    outcomes = [r.get("outcome") for r in rows]
    return f"{outcomes.count('passed')}/{outcomes.count('xfail')}/{outcomes.count('failed')}"


def text_table(header, body) -> list[str]:
    """Left-aligned plain-text columns: the header, a rule, then the body."""
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
            for line in (header, ["-" * w for w in widths], *body)]


def terminal_table(rows, every_row_up_to: int) -> str:
    """Every number for a short run (at most `every_row_up_to` rows), else one line per model; failures last."""
    header, body = table_rows(rows) if len(rows) <= every_row_up_to else summary_rows(rows)
    keep = [i for i in range(len(header)) if i == 0 or any(b[i] for b in body)]  # what this run measured
    header, body = [header[i] for i in keep], [[b[i] for i in keep] for b in body]
    failed = sorted(f"{r['kind']} {r['case']}" for r in rows if r.get("outcome") == "failed")
    return "\n".join((text_table(header, body) if body else []) + [f"FAILED {name}" for name in failed])
