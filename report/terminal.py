"""The summary printed at the end of a run: the one-line results (architecture, detection), then every
case of a short run or one line per model, failures last."""
from __future__ import annotations

from compare.cases import LINE_KINDS, Outcome
from report.model import case_table, with_bounds


def model_table(rows):
    """One line per model: parity and accuracy verdict counts, the worst accuracy drop and the fastest
    format next to PyTorch eager."""
    header = ["model", "parity pass/known/FAIL", "accuracy pass/known/FAIL", "worst acc drop", "fastest",
              "vs pytorch"]
    body = []
    for model in sorted({r.arch for r in rows if r.kind in ("parity", "accuracy", "latency")}):
        mine = [r for r in rows if r.arch == model]
        counts = {kind: _counts([r for r in mine if r.kind == kind]) for kind in ("parity", "accuracy")}
        drops = [r for r in mine if r.kind == "accuracy" and r.accuracy_drop is not None]
        worst = max(drops, key=lambda r: r.accuracy_drop, default=None)
        timed = [r for r in mine if r.kind == "latency" and r.latency_ms]
        fastest = min(timed, key=lambda r: r.latency_ms, default=None)
        eager = next((r.latency_ms for r in timed if r.format == "pytorch"), None)
        body.append([
            model, counts["parity"], counts["accuracy"],
            f"{worst.accuracy_drop:+.2f} ({worst.column})" if worst else "",
            f"{fastest.column} {fastest.latency_ms:.2f} ms" if fastest else "",
            f"{eager / fastest.latency_ms:.1f}x" if fastest and eager else "",
        ])
    return header, body


def _counts(rows) -> str:
    if not rows:
        return ""
    outcomes = [r.outcome for r in rows]
    return "/".join(str(outcomes.count(o.value)) for o in (Outcome.PASSED, Outcome.KNOWN, Outcome.FAILED))


def text_table(header, body) -> list[str]:
    """Left-aligned plain-text columns: the header, a rule, then the body."""
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
            for line in (header, ["-" * w for w in widths], *body)]


def summary(rows, every_row_up_to: int) -> str:
    lines = [r.line for r in sorted(rows, key=lambda r: (r.kind, r.case)) if r.kind in LINE_KINDS and r.line]
    matrix_rows = with_bounds([r for r in rows if r.kind not in LINE_KINDS])
    if matrix_rows:
        header, body = case_table(matrix_rows) if len(matrix_rows) <= every_row_up_to else model_table(matrix_rows)
        keep = [i for i in range(len(header)) if i == 0 or any(b[i] for b in body)]  # what this run measured
        header, body = [header[i] for i in keep], [[b[i] for i in keep] for b in body]
        lines += text_table(header, body) if body else []
    lines += sorted(f"FAILED {r.kind} {r.case}" for r in rows if r.outcome == Outcome.FAILED.value)
    return "\n".join(lines)
