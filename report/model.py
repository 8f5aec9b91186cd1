"""The report's one data model: result rows -> the matrix (a row per architecture, a column per
format-precision, one verdict per cell) and the document (headings, paragraphs, tables, lists, plots) that
every renderer (Markdown, HTML) writes out as it is."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compare.cases import LINE_KINDS, PRECISIONS, Outcome, ResultRow

REFERENCE_COLUMN = "pytorch-fp32"
JUDGED = ("parity", "accuracy")  # the kinds whose outcomes make a cell's verdict


def latency_bound_ms(macs: int, gflops: float) -> float:
    """Compute-bound floor: 2 flops per MAC at the peak matmul rate (memory traffic only adds to it)."""
    return 2 * macs / (gflops * 1e9) * 1e3


def with_bounds(rows: list[ResultRow]) -> list[ResultRow]:
    """Latency rows get `bound_ms`, the compute-bound floor at the best peak that any latency row of the same
    thread count probed: the machine's speed drifts, and its fastest observed phase sets the floor."""
    best: dict = {}
    for r in rows:
        if r.kind == "latency" and r.peak_gflops:
            best[r.threads] = max(best.get(r.threads, 0.0), r.peak_gflops)
    for r in rows:
        if r.kind == "latency" and r.macs and r.threads in best:
            r.bound_ms = latency_bound_ms(r.macs, best[r.threads])
    return rows


@dataclass
class Cell:
    parity: ResultRow | None = None
    accuracy: ResultRow | None = None
    latency: ResultRow | None = None
    outcomes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """FAIL if any judged test failed, known if any is a known failure, pass if all passed, "" if nothing
        was judged (a latency-only cell)."""
        for outcome in (Outcome.FAILED, Outcome.KNOWN, Outcome.PASSED):
            if outcome.value in self.outcomes:
                return outcome.label
        return ""

    @property
    def size_bytes(self) -> int | None:
        return next((r.size_bytes for r in (self.parity, self.latency) if r is not None and r.size_bytes), None)

    def lines(self, bound_ms: float | None) -> list[str]:
        """Parity (and the reference check), accuracy drop with its paired counts, latency (with its share of
        the fp32 floor in float columns), size."""
        out = []
        if self.parity is not None and self.parity.outputs:  # a models.model registration: each output
            out += [f"{name}: {output_summary(o)}" for name, o in self.parity.outputs.items()]
        elif self.parity is not None and self.parity.metrics:
            m = self.parity.metrics
            out.append(f"cos {m.get('cosine_mean', float('nan')):.4f} / top-1 {m.get('top1_agreement', float('nan')):.2f}")
            if self.parity.reference_metrics:
                out.append(f"vs simulated: {self.parity.reference_metrics.get('snr_db', float('nan')):.1f} dB")
        if self.accuracy is not None and self.accuracy.accuracy_drop is not None:
            out.append(f"acc drop {self.accuracy.accuracy_drop:+.2f} pt (-{self.accuracy.lost}/+{self.accuracy.gained})")
        if self.latency is not None and self.latency.latency_ms is not None:
            share = f" ({bound_ms / self.latency.latency_ms:.0%} of fp32 bound)" if bound_ms else ""
            out.append(f"{self.latency.latency_ms:.2f} ms{share}")
        if self.size_bytes is not None:
            out.append(f"{self.size_bytes / 1e6:.1f} MB")
        return out + [f"error: {e[:60]}" for e in self.errors]


KIND_METRICS = {"classification": ("top1_agreement", "top-1"), "dense": ("miou", "mIoU"),
                "scores": ("detection_agreement", "det agr"), "boxes": ("box_iou", "box IoU")}


def output_summary(output: dict) -> str:
    """One declared output's SNR and its kind's own metric, for a matrix cell."""
    line = f"{output.get('snr_db', float('nan')):.1f} dB"
    metric = KIND_METRICS.get(output.get("kind", ""))
    return line + (f" / {metric[1]} {output[metric[0]]:.3f}" if metric and metric[0] in output else "")


def outputs_table(rows: list[ResultRow]) -> Table | None:
    """Every declared output of every models.model case: its kind, metrics, and its broken references' SNR."""
    body = []
    for r in sorted((r for r in rows if r.kind == "parity" and r.outputs), key=lambda r: r.case):
        for name, o in r.outputs.items():
            extra = ", ".join(f"{k} {o[k]:.4f}" for k in ("top1_agreement", "pixel_agreement", "miou",
                                                         "detection_agreement", "box_iou") if k in o)
            broken = max((b.get("snr_db", float("-inf")) for b in o.get("broken", {}).values()), default=None)
            body.append([TableCell([r.case]), TableCell([name]), TableCell([o.get("kind", "")]),
                         TableCell([_format(o.get("snr_db"), "{:.1f}")]), TableCell([_format(o.get("cosine_mean"), "{:.5f}")]),
                         TableCell([extra]), TableCell([_format(broken, "{:.1f}")]), TableCell([r.outcome or ""])])
    return Table(["case", "output", "kind", "SNR dB", "cos mean", "kind metrics", "best broken SNR dB", "verdict"],
                 body) if body else None


@dataclass
class Matrix:
    models: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    bounds: dict[str, dict]  # arch -> {"macs", "bound_ms", "threads"} from the latency rows

    def cell(self, model: str, column: str) -> Cell | None:
        return self.cells.get((model, column))

    def float_bound_ms(self, model: str, column: str) -> float | None:
        """The model's fp32 compute-bound floor where the column computes in float, else None."""
        precision = PRECISIONS.get(column.rsplit("-", 1)[-1])
        return self.bounds.get(model, {}).get("bound_ms") if precision and precision.float_compute else None


def build_matrix(rows: list[ResultRow], column_order: list[str]) -> Matrix:
    cells: dict[tuple[str, str], Cell] = {}
    bounds: dict[str, dict] = {}
    for r in rows:
        if r.kind not in ("parity", "accuracy", "latency") or r.column is None:
            continue
        if r.kind == "latency" and r.population == "digits":
            continue  # the digits model the variants come from shares its architecture's row: report.variants
        cell = cells.setdefault((r.arch, r.column), Cell())
        setattr(cell, r.kind, r)
        if r.error:
            cell.errors.append(f"{r.kind}: {r.error}")
        if r.kind in JUDGED and r.outcome:
            cell.outcomes.append(r.outcome)
        if r.kind == "latency" and r.bound_ms is not None:
            bounds[r.arch] = {"macs": r.macs, "bound_ms": r.bound_ms, "threads": r.threads}
    models = sorted({m for m, _ in cells})
    seen = {c for _, c in cells}
    order = [REFERENCE_COLUMN] + [c for c in column_order if c != REFERENCE_COLUMN]
    columns = [c for c in order if c in seen] + sorted(seen - set(order))
    return Matrix(models, columns, cells, bounds)


# --- the document ---------------------------------------------------------------------------------------

@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str
    meta: bool = False


@dataclass
class TableCell:
    lines: list[str]
    css: str = ""  # the verdict label colours a matrix cell
    strong: str = ""  # a last line in bold (the verdict)


@dataclass
class Table:
    header: list[str]
    rows: list[list[TableCell]]
    first_column_header: bool = False


@dataclass
class Bullets:
    items: list[tuple[str, str]]  # (bold prefix, text)


@dataclass
class Image:
    path: Path
    caption: str


def matrix_table(matrix: Matrix) -> Table:
    rows = []
    for model in matrix.models:
        bound = matrix.bounds.get(model, {})
        head = [model] + ([f"{bound['macs'] / 1e6:.1f} M MACs", f"fp32 bound {bound['bound_ms']:.2f} ms "
                                                                f"@ {bound['threads']} thr"] if bound else [])
        cells = [TableCell(head)]
        for column in matrix.columns:
            cell = matrix.cell(model, column)
            cells.append(TableCell(cell.lines(matrix.float_bound_ms(model, column)), cell.verdict, cell.verdict)
                         if cell else TableCell([]))
        rows.append(cells)
    return Table(["model"] + matrix.columns, rows, first_column_header=True)


CASE_COLUMNS = [("case", "case", "{}"), ("kind", "test", "{}"), ("cosine_mean", "cos mean", "{:.5f}"),
                ("cosine_worst", "cos worst", "{:.5f}"), ("top1_agreement", "top1 agr", "{:.3f}"),
                ("snr_db", "SNR dB", "{:.1f}"), ("reference_snr_db", "vs sim dB", "{:.1f}"),
                ("max_abs_error", "max abs err", "{:.3g}"), ("accuracy", "acc %", "{:.2f}"),
                ("accuracy_drop", "drop pts", "{:+.2f}"), ("lost", "lost", "{}"), ("gained", "gained", "{}"),
                ("latency_ms", "latency ms", "{:.2f}"), ("bound_ms", "bound ms", "{:.2f}"),
                ("size_bytes", "size MB", lambda v: f"{v / 1e6:.2f}"), ("outcome", "verdict", "{}")]


def case_value(row: ResultRow, key: str):
    if key == "reference_snr_db":
        return row.reference_metrics.get("snr_db")
    return row.value(key)


def _format(value, fmt) -> str:
    if value is None:
        return ""
    try:
        return fmt(value) if callable(fmt) else fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def case_table(rows: list[ResultRow]) -> tuple[list[str], list[list[str]]]:
    """Every case, one line each, with the columns any row measured."""
    used = [c for c in CASE_COLUMNS if c[0] == "case" or any(case_value(r, c[0]) is not None for r in rows)]
    body = []
    for r in sorted(rows, key=lambda r: (r.kind, r.case)):
        line = [_format(case_value(r, key), fmt) for key, _, fmt in used]
        if r.error and len(used) > 2:
            line[2] = r.error[:40]
        body.append(line)
    return [title for _, title, _ in used], body


def known_failures(rows: list[ResultRow]) -> list[tuple[str, str, str]]:
    """(kind, case, reason) of every declared known failure that ran."""
    return sorted({(r.kind, r.case, r.known_failure or "") for r in rows if r.outcome == Outcome.KNOWN.value})


DIAGNOSIS_LAYERS = 8  # the layers that add the most error, shown per diagnosed case


def diagnosis_blocks(rows: list[ResultRow], plots: dict[str, Path]) -> list:
    """Per diagnosed case: where the error comes from (diagnose/), the layers that add the most error by
    themselves in graph order, and the per-layer plot."""
    blocks: list = []
    for row in sorted((r for r in rows if r.diagnosis), key=lambda r: r.case):
        d = row.diagnosis
        if "layers" not in d:
            blocks.append(Paragraph(f"{row.case}: {d.get('unsupported') or d.get('error')}", meta=True))
            continue
        layers = [layer for layer in d["layers"] if layer.get("local_snr_db") is not None]
        worst = sorted(layers, key=lambda layer: layer["local_snr_db"])[:DIAGNOSIS_LAYERS]
        shown = [layer for layer in d["layers"] if layer in worst]
        perturbation = d.get("perturbation_snr_db")
        blocks.append(Bullets([(row.case, (
            f"{row.outcome or ''}; first divergent layer {d['first_divergent_layer'] or 'none (every layer at float round-off)'}"
            f", worst local layer {d['worst_local_layer']}; final output {_format(d['final_snr_db'], '{:.1f}') or '(several outputs: not one tensor)'} dB SNR vs PyTorch over "
            f"{d['samples']} inputs; {d['matched']} modules matched, {len(d['unmatched'])} not (folded, identity or "
            f"renamed: report.json lists each with its reason); reading tensors out moved the final output to "
            f"{_format(perturbation, '{:.1f}')} dB SNR of the artifact's own"))]))
        blocks.append(Table(["module", "op", "local SNR dB", "cumulative SNR dB"], [
            [TableCell([layer["module"]]), TableCell([layer["op"]]),
             TableCell([_format(layer["local_snr_db"], "{:.1f}")]), TableCell([_format(layer["cumulative_snr_db"], "{:.1f}")])]
            for layer in shown]))
        if row.case in plots:
            blocks.append(Image(plots[row.case], f"{row.case}: local and cumulative SNR per matched layer"))
        if d.get("mitigations"):
            blocks.append(Table(["lever", "SNR dB", "cosine", "top-1", "verdict", "size MB", "latency vs artifact"], [
                [TableCell([m["lever"]]), TableCell([_format(m["metrics"].get("snr_db"), "{:.2f}")]),
                 TableCell([_format(m["metrics"].get("cosine_mean"), "{:.4f}")]),
                 TableCell([_format(m["metrics"].get("top1_agreement"), "{:.3f}")]),
                 TableCell(["pass" if m["passed"] else "FAIL"]), TableCell([f"{m['size_bytes'] / 1e6:.2f}"]),
                 TableCell([f"{m['latency_ratio']:.2f}x"])] for m in d["mitigations"]]))
    return [Heading(2, "Diagnosis: where the error comes from")] + blocks if blocks else []


def document(env: dict, rows: list[ResultRow], matrix: Matrix, card, pictures: list[Path], carried: str,
             captions: dict[str, str], diagnosis_plots: dict[str, Path] | None = None) -> list:
    """The report as blocks, in reading order."""
    tools = ", ".join(f"{k} {v}" for k, v in env.get("tools", {}).items())
    blocks: list = [Heading(1, "Conformance report"),
                    Paragraph(f"{env.get('time', '')} · {env.get('cpu', '')} · {tools}", meta=True)]
    if carried:
        blocks.append(Paragraph(carried, meta=True))
    if card is not None:
        from report.diff import blocks as scorecard_blocks

        blocks += scorecard_blocks(card)
    if matrix.models:
        blocks += [Heading(2, "Matrix"), matrix_table(matrix)]
    from report import crosspath

    paths = crosspath.table(rows)
    if paths is not None:
        blocks += [Heading(2, "Cross-path agreement"), Paragraph(crosspath.__doc__.split("\n\n")[1].replace("\n", " ")),
                   paths]
    from report import variants

    blocks += variants.blocks(rows, matrix.columns)
    known = known_failures(rows)
    if known:
        blocks += [Heading(2, "Known failures"), Bullets([(f"{kind} {case}", reason) for kind, case, reason in known])]
    if pictures:
        blocks += [Heading(2, "Plots")] + [Image(p, captions.get(p.stem, "")) for p in pictures]
    declared = outputs_table(rows)
    if declared is not None:
        blocks += [Heading(2, "Declared outputs (models.model registrations)"), declared]
    blocks += diagnosis_blocks(rows, diagnosis_plots or {})
    header, body = case_table([r for r in rows if r.kind not in LINE_KINDS])
    blocks += [Heading(2, "All cases"), Table(header, [[TableCell([c]) for c in line] for line in body])]
    for kind, title in (("architecture", "Architectures vs published figures"),
                        ("detection", "Detection power: deliberately broken conversions")):
        lines = sorted(r.line for r in rows if r.kind == kind and r.line)
        if lines:
            blocks += [Heading(2, title), Bullets([("", line) for line in lines])]
    return blocks
