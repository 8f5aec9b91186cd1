"""The conformance matrix built from result rows: one row per architecture, one column per format-precision,
each cell holding what parity, accuracy and latency measured for it and one verdict. Markdown, HTML and
the plots all read this one structure."""
from __future__ import annotations

from dataclasses import dataclass, field

from converters.latency import latency_bound_ms
from converters.pipeline import FORMATS

REFERENCE_COLUMN = "pytorch-fp32"
COLUMNS = [REFERENCE_COLUMN] + [f"{fmt}-{p}" for fmt, precisions in FORMATS.items() for p in precisions]
SUFFIXES = ("_digits", "_user")  # accuracy subjects are the same architecture on another data set
# The floor comes from an fp32 matmul, so it bounds float math only: integer kernels (VNNI, AMX) beat it.
FLOAT_PRECISIONS = ("fp32", "fp16")


@dataclass
class Cell:
    cosine_mean: float | None = None
    top1_agreement: float | None = None
    accuracy_drop: float | None = None
    latency_ms: float | None = None
    size_bytes: int | None = None
    outcomes: list[str] = field(default_factory=list)  # of the parity and accuracy tests in this cell
    errors: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """FAIL if any check failed, known if any is a declared known failure, pass if all passed, "" if
        nothing was judged (a latency-only cell)."""
        if "failed" in self.outcomes:
            return "FAIL"
        if "xfail" in self.outcomes:
            return "known"
        return "pass" if self.outcomes else ""


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
        return self.bounds.get(model, {}).get("bound_ms") if column.endswith(FLOAT_PRECISIONS) else None


def arch_of(row: dict) -> str:
    name = row.get("arch") or row.get("model", "")
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def column_of(row: dict) -> str | None:
    if "format" not in row or "precision" not in row:
        return None
    return f"{row['format']}-{row['precision']}"


def with_bounds(rows: list[dict]) -> list[dict]:
    """Latency rows with `bound_ms`, the compute-bound floor at the best peak that any latency row of the
    same thread count probed: the machine's speed drifts, and its fastest observed phase sets the floor."""
    best: dict = {}
    for r in rows:
        if r.get("kind") == "latency" and r.get("peak_gflops"):
            best[r.get("threads")] = max(best.get(r.get("threads"), 0.0), r["peak_gflops"])
    return [{**r, "bound_ms": latency_bound_ms(r["macs"], best[r.get("threads")])}
            if r.get("kind") == "latency" and r.get("macs") and r.get("threads") in best else r for r in rows]


def build_matrix(rows) -> Matrix:
    cells: dict[tuple[str, str], Cell] = {}
    bounds: dict[str, dict] = {}
    for r in rows:
        column = column_of(r)
        if r.get("kind") not in ("parity", "accuracy", "latency") or column is None:
            continue
        # the training-floor row (<model>_digits-pytorch-fp32) has no conversion to judge in the matrix
        if r["kind"] == "accuracy" and column == REFERENCE_COLUMN:
            continue
        cell = cells.setdefault((arch_of(r), column), Cell())
        if r.get("error"):
            cell.errors.append(f"{r['kind']}: {r['error']}")
        if r["kind"] == "parity":
            cell.cosine_mean, cell.top1_agreement = r.get("cosine_mean"), r.get("top1_agreement")
            cell.size_bytes = r.get("size_bytes", cell.size_bytes)
        elif r["kind"] == "accuracy":
            cell.accuracy_drop = r.get("accuracy_drop")
        else:
            cell.latency_ms = r.get("latency_ms")
            cell.size_bytes = r.get("size_bytes", cell.size_bytes)
            if r.get("bound_ms") is not None:
                bounds[arch_of(r)] = {"macs": r["macs"], "bound_ms": r["bound_ms"], "threads": r.get("threads")}
        if r["kind"] != "latency" and r.get("outcome"):
            cell.outcomes.append(r["outcome"])
    models = sorted({m for m, _ in cells})
    columns = [c for c in COLUMNS if any((m, c) in cells for m in models)]
    return Matrix(models, columns, cells, bounds)


def cell_lines(cell: Cell, bound_ms: float | None) -> list[str]:
    """A cell as short lines of text: parity, accuracy drop, latency (and its share of the fp32 bound, for
    float columns), size."""
    lines = []
    if cell.cosine_mean is not None:
        lines.append(f"cos {cell.cosine_mean:.4f} / top-1 {cell.top1_agreement:.2f}")
    if cell.accuracy_drop is not None:
        lines.append(f"acc drop {cell.accuracy_drop:+.2f} pt")
    if cell.latency_ms is not None:
        share = f" ({bound_ms / cell.latency_ms:.0%} of fp32 bound)" if bound_ms else ""
        lines.append(f"{cell.latency_ms:.2f} ms{share}")
    if cell.size_bytes is not None:
        lines.append(f"{cell.size_bytes / 1e6:.1f} MB")
    lines += [f"error: {e[:60]}" for e in cell.errors]
    return lines


def known_failures(rows) -> list[tuple[str, str, str]]:
    """(kind, case, reason) of every declared known failure that ran."""
    return sorted({(r["kind"], r["case"], r.get("known_failure", "")) for r in rows if r.get("outcome") == "xfail"})
