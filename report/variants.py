"""Optimized variants, the optimize-and-deploy seed's table: the digits model they come from (its int8
columns are post-training quantization), its pruned and distilled variants (models.variants), each through
every format and precision.

Each cell: accuracy on the labelled test split, and in brackets its share of the baseline's PyTorch fp32
accuracy (MLPerf's rule for a quantized ResNet-50 is 99 % of the fp32 reference); then the latency (batch 1,
median, from the latency pass where it ran) and the verdict. The sparsity table reads each pruned variant's
artifacts (compare.sparsity): kept or LOST, and the artifact's size against the unpruned model's in the same
format and precision. The distillation table compares the distilled student with its control, the same
student trained by the same recipe and budget without a teacher (the baseline)."""
from __future__ import annotations

from compare.cases import Outcome, ResultRow


def _variant_rows(rows: list[ResultRow]) -> tuple[str, list[str]]:
    from models import variants

    base = variants.base_id()
    ids = [base] + [variants.subject_id(v) for v in variants.VARIANTS]
    present = {r.subject for r in rows if r.kind in ("accuracy", "sparsity")}
    return base, [i for i in ids if i in present] if any(i != base and i in present for i in ids) else []


def _label(outcome: str | None) -> str:
    return Outcome(outcome).label if outcome else ""


def blocks(rows: list[ResultRow], column_order: list[str]) -> list:
    """The report blocks (heading, notes, tables), or [] when the run had no variants."""
    from report.model import Heading, Paragraph, Table, TableCell

    base, subjects = _variant_rows(rows)
    if not subjects:
        return []
    accuracy = {(r.subject, r.column): r for r in rows if r.kind == "accuracy" and r.column}
    latency = {(r.subject, r.column): r for r in rows if r.kind == "latency" and r.column}
    reference = {r.subject: r.reference_accuracy for r in rows
                 if r.kind == "accuracy" and r.reference_accuracy is not None}
    columns = [c for c in column_order if any((s, c) in accuracy for s in subjects)]
    base_ref = reference.get(base)
    out = [Heading(2, "Optimized variants"), Paragraph(__doc__.split("\n\n")[1].replace("\n", " "))]

    def share(acc):
        return f" ({100 * acc / base_ref:.1f} %)" if base_ref else ""

    body = []
    for s in subjects:
        first = f"{s} (baseline)" if s == base else s
        cells = [TableCell([first]), TableCell([f"{reference[s]:.2f} %{share(reference[s])}"]
                                                if s in reference else ["-"])]
        for c in columns:
            a, t = accuracy.get((s, c)), latency.get((s, c))
            if a is None or a.accuracy is None:
                cells.append(TableCell(["-"]))
                continue
            lines = [f"{a.accuracy:.2f} %{share(a.accuracy)}"]
            lines += [f"{t.latency_ms:.2f} ms"] if t and t.latency_ms else []
            cells.append(TableCell(lines, css=_label(a.outcome).lower(), strong=_label(a.outcome)))
        body.append(cells)
    out.append(Table(["subject", "PyTorch fp32"] + columns, body, first_column_header=True))

    sparse = {(r.subject, r.column): r for r in rows if r.kind == "sparsity" and r.column}
    pruned = [s for s in subjects if any(k[0] == s for k in sparse)]
    if pruned:
        s_columns = [c for c in column_order if any((s, c) in sparse for s in pruned)]
        body = []
        for s in pruned:
            cells = [TableCell([s])]
            for c in s_columns:
                r = sparse.get((s, c))
                if r is None or not r.metrics:
                    cells.append(TableCell(["-"] if r is None else [r.error or "error"]))
                    continue
                m = r.metrics
                what = (f"zeros {m['sparsity']:.3f} (PyTorch {m['torch_sparsity']:.3f})" if not m.get("structured")
                        else f"weights {m['weight_elements'] / m['base_weight_elements']:.3f}x "
                             f"(PyTorch {m['torch_params_ratio']:.3f}x)")
                label = "kept" if m.get("kept") else "LOST"
                cells.append(TableCell([what, f"size {m['size_ratio']:.2f}x"], css="pass" if m.get("kept") else "fail",
                                       strong=label))
            body.append(cells)
        out += [Heading(3, "Sparsity in the converted artifacts"), Table(["variant"] + s_columns, body,
                                                                          first_column_header=True)]

    from models import variants

    kd = variants.subject_id("kd")
    if kd in subjects and base in subjects:
        body = []
        for c in ["PyTorch fp32"] + columns:
            if c == "PyTorch fp32":
                pair = (reference.get(base), reference.get(kd))
                cells = [f"{v:.2f} %" if v is not None else "-" for v in pair] + ["", ""]
            else:
                a, b = accuracy.get((base, c)), accuracy.get((kd, c))
                cells = [f"{r.accuracy:.2f} %" if r and r.accuracy is not None else "-" for r in (a, b)]
                cells += [f"{r.accuracy_drop:+.2f} pt" if r and r.accuracy_drop is not None else "-" for r in (a, b)]
            body.append([TableCell([c])] + [TableCell([x]) for x in cells])
        out += [Heading(3, "Distilled student vs the same student without a teacher"),
                Table(["column", f"{base} (no teacher)", f"{kd}", "drop, no teacher", "drop, distilled"], body,
                      first_column_header=True)]
    return out
