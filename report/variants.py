"""Optimized variants, the optimize-and-deploy seed's table: the digits model they come from (its int8
columns are post-training quantization), its pruned, distilled and quantization-aware trained variants
(models.variants), each through every format and precision.

Each cell: accuracy on the labelled test split, and in brackets its share of the baseline's PyTorch fp32
accuracy (MLPerf's rule for a quantized ResNet-50 is 99 % of the fp32 reference); then the latency (batch 1,
median, from the latency pass where it ran) and the verdict. The sparsity table reads each pruned variant's
artifacts (compare.sparsity): kept or LOST, and the artifact's size against the unpruned model's in the same
format and precision. The distillation table compares the distilled student with its control, the same
student trained by the same recipe and budget without a teacher (the baseline). The QAT table is the QAT
seed's: baseline, PTQ and QAT per int8 column, and whether each path kept QAT's learned scales."""
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

    from models import variants

    base, subjects = _variant_rows(rows)
    natural = _qat_natural_table(rows, column_order)
    if not subjects:
        return [Heading(2, "Optimized variants")] + natural if natural else []
    accuracy = {(r.subject, r.column): r for r in rows if r.kind == "accuracy" and r.column}
    latency = {(r.subject, r.column): r for r in rows if r.kind == "latency" and r.column}
    # PyTorch's float accuracy (a QAT variant's int8 cases are judged against its fake-quantized network)
    qat = variants.subject_id("qat")
    reference = {r.subject: r.reference_accuracy for r in rows if r.kind == "accuracy"
                 and r.reference_accuracy is not None and (r.subject != qat or r.precision == "fp32")}
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

    out += _qat_table(rows, base, subjects, column_order, accuracy, latency, reference, share) + natural
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


def _qat_table(rows, base, subjects, column_order, accuracy, latency, reference, share) -> list:
    """The QAT seed's table: baseline (fp32), PTQ (the baseline's post-training int8) and QAT (the QAT
    variant's int8: its learned scales where the path keeps them) per int8 column, and whether the path
    kept QAT's scales (tests/test_qat.py)."""
    from models import variants
    from report.model import Heading, Paragraph, Table, TableCell

    qat = variants.subject_id("qat")
    scales = {r.column: r for r in rows if r.kind == "qat" and r.subject == qat and r.column}
    columns = [c for c in column_order if c in scales or ((qat, c) in accuracy and c.endswith("-int8")
                                                           and not c.endswith("dynamic_int8"))]
    if qat not in subjects or base not in subjects or not columns:
        return []

    def cell(subject, column):
        a, t = accuracy.get((subject, column)), latency.get((subject, column))
        if a is None or a.accuracy is None:
            return TableCell(["-"])
        lines = [f"{a.accuracy:.2f} %{share(a.accuracy)}"] + ([f"{t.latency_ms:.2f} ms"] if t and t.latency_ms else [])
        return TableCell(lines, css=_label(a.outcome).lower(), strong=_label(a.outcome))

    fake_quant = next((r.reference_accuracy for r in rows if r.kind == "accuracy" and r.subject == qat
                       and r.precision != "fp32" and r.column in scales
                       and (scales[r.column].metrics or {}).get("carried")), None)
    body = [[TableCell(["baseline (fp32)"]), TableCell([f"{reference[base]:.2f} %" if base in reference else "-"])]
            + [cell(base, c.rsplit("-", 1)[0] + "-fp32") for c in columns],
            [TableCell(["PTQ (baseline, int8)"]), TableCell(["-"])] + [cell(base, c) for c in columns],
            [TableCell([f"QAT ({qat})"]), TableCell([f"{fake_quant:.2f} % fake-quantized" if fake_quant else "-"])]
            + [cell(qat, c) for c in columns]]
    body.append([TableCell(["QAT scales in the artifact"]), TableCell([""])]
                + [_scales_cell(scales.get(c)) for c in columns])
    note = ("Rows as in the QAT seed: baseline fp32 (in each column, that format's fp32), post-training int8 of "
            "the baseline, and the QAT variant's int8. A cell: accuracy (its share of the baseline's PyTorch fp32 "
            "accuracy), latency, verdict. The last row says whether the path kept the scales QAT learned or "
            "quantized the float weights again (a known failure where it re-quantizes).")
    return [Heading(3, "Baseline, PTQ and QAT"), Paragraph(note),
            Table(["row", "PyTorch"] + columns, body, first_column_header=True)]


def _scales_cell(r):
    from report.model import TableCell

    if r is None or not r.metrics:
        return TableCell(["-"] if r is None else [r.error or "error"])
    m = r.metrics
    label = "kept" if r.outcome == Outcome.PASSED.value else "RE-QUANTIZED"
    return TableCell([f"{round(m['scales_kept'] * m['learned_scales'])} of {m['learned_scales']:.0f}",
                      _label(r.outcome)], css="pass" if label == "kept" else "fail", strong=label)


def _qat_natural_table(rows: list[ResultRow], column_order: list[str]) -> list:
    """The real-weight QAT subject (models.qat.IMAGENET) against post-training int8 of the same float model,
    both judged by agreement with that float model's golden outputs (no labels)."""
    from models import qat
    from report.model import Heading, Paragraph, Table, TableCell

    qat_id, base = qat.IMAGENET["id"], qat.IMAGENET["base"]
    parity = {(r.subject, r.column): r for r in rows if r.kind == "parity" and r.column}
    latency = {(r.subject, r.column): r for r in rows if r.kind == "latency" and r.column}
    scales = {r.column: r for r in rows if r.kind == "qat" and r.subject == qat_id and r.column}
    columns = [c for c in column_order if (qat_id, c) in parity]
    if not columns:
        return []

    def cell(subject, column):
        p, t = parity.get((subject, column)), latency.get((subject, column))
        if p is None or not p.metrics:
            return TableCell(["-"] if p is None else [p.error or "error"])
        m = p.metrics
        lines = [f"top-1 {m['top1_agreement']:.3f}", f"{m['snr_db']:.1f} dB"]
        lines += [f"{t.latency_ms:.2f} ms"] if t and t.latency_ms else []
        return TableCell(lines, css=_label(p.outcome).lower(), strong=_label(p.outcome))

    body = [[TableCell([f"PTQ ({base})"])] + [cell(base, c) for c in columns],
            [TableCell([f"QAT ({qat_id})"])] + [cell(qat_id, c) for c in columns],
            [TableCell(["QAT scales in the artifact"])] + [_scales_cell(scales.get(c)) for c in columns]]
    note = ("Real ImageNet weights (torchvision's MobileNetV2), no labels: QAT fine-tuned the model as a "
            "fake-quantized student of its own float self on natural-image crops (models.qat). Each cell: top-1 "
            "agreement and SNR against the float model's golden outputs, latency, verdict.")
    return [Heading(3, "QAT on real weights, judged by agreement with the float model"), Paragraph(note),
            Table(["row"] + columns, body, first_column_header=True)]
