"""The report's plots (matplotlib, Agg, PNG): accuracy drop vs latency per model, and size on disk per
format. Each function returns the PNG path it wrote, or None when the run measured nothing to plot."""
from __future__ import annotations

from pathlib import Path

from report.model import Matrix

CAPTIONS = {
    "accuracy_vs_latency": "Per model: accuracy drop of the digits-trained model on its 400-image test split vs "
                           "batch-1 latency of the 224x224 model, per format-precision. Green pass, orange known "
                           "failure, red fail; dotted line: the fp32 compute-bound latency floor (MACs at peak fp32 "
                           "matmul), which integer kernels can beat.",
    "size_per_format": "Artifact size on disk per model and format-precision (PyTorch: safetensors weights).",
}
VERDICT_COLOURS = {"pass": "#2e7d32", "known": "#ef6c00", "FAIL": "#c62828", "": "#546e7a"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_latency(matrix: Matrix, out: Path) -> Path | None:
    """One panel per model: each format-precision at (latency, accuracy drop), coloured by verdict; the
    dotted line is the model's fp32 compute-bound latency floor."""
    def point(cell):
        if cell is None or cell.latency is None or cell.accuracy is None:
            return None
        if cell.latency.latency_ms is None or cell.accuracy.accuracy_drop is None:
            return None
        return cell.latency.latency_ms, cell.accuracy.accuracy_drop

    models = [m for m in matrix.models if any(point(matrix.cell(m, col)) for col in matrix.columns)]
    if not models:
        return None
    plt = _pyplot()
    cols = min(4, len(models))
    rows = -(-len(models) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, model in zip(axes.flat, models):
        for column in matrix.columns:
            cell = matrix.cell(model, column)
            xy = point(cell)
            if xy is None:
                continue
            ax.scatter(*xy, color=VERDICT_COLOURS[cell.verdict], s=28, zorder=3)
            ax.annotate(column, xy, fontsize=6.5, xytext=(3, 3), textcoords="offset points")
        bound = matrix.bounds.get(model, {}).get("bound_ms")
        if bound:
            ax.axvline(bound, color="#546e7a", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.axhline(0, color="#9e9e9e", linewidth=0.6)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("latency, ms (batch 1, log)", fontsize=7)
        ax.set_ylabel("accuracy drop, points", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.25)
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    fig.suptitle("Accuracy drop vs latency", fontsize=10)
    fig.tight_layout()
    return _save(plt, fig, out / "accuracy_vs_latency.png")


def size_per_format(matrix: Matrix, out: Path) -> Path | None:
    """Grouped bars: each model's artifact size on disk per format-precision (log scale)."""
    columns = [c for c in matrix.columns if any((cell := matrix.cell(m, c)) and cell.size_bytes
                                                 for m in matrix.models)]
    if not columns:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(matrix.models)), 4.2))
    width = 0.85 / len(columns)
    cmap = plt.get_cmap("tab10")
    for j, column in enumerate(columns):
        xs, ys = [], []
        for i, model in enumerate(matrix.models):
            cell = matrix.cell(model, column)
            if cell and cell.size_bytes:
                xs.append(i + (j - (len(columns) - 1) / 2) * width)
                ys.append(cell.size_bytes / 1e6)
        ax.bar(xs, ys, width=width, label=column, color=cmap(j % 10))
    from matplotlib.ticker import ScalarFormatter

    sizes = [c.size_bytes / 1e6 for c in matrix.cells.values() if c.size_bytes]
    ax.set_yscale("log")
    ax.set_ylim(bottom=min(sizes) / 2)
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_ylabel("size on disk, MB (log)")
    ax.set_xticks(range(len(matrix.models)), matrix.models, rotation=30, ha="right", fontsize=8)
    ax.legend(fontsize=7, ncol=min(5, len(columns)), loc="upper left")
    ax.grid(True, axis="y", which="both", alpha=0.25)
    ax.set_title("Model size per format", fontsize=10)
    fig.tight_layout()
    return _save(plt, fig, out / "size_per_format.png")


def diagnosis(rows, out: Path) -> dict:
    """Per diagnosed case, local and cumulative SNR of every matched layer in graph order, the first
    divergent layer marked: {case: png path}."""
    found = {}
    for row in rows:
        layers = (row.diagnosis or {}).get("layers")
        if not layers:
            continue
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(9, 3.2))
        index = range(len(layers))
        for key, label, style in (("cumulative_snr_db", "cumulative", "-"), ("local_snr_db", "local", ":")):
            values = [layer[key] if layer[key] is not None and layer[key] != float("inf") else float("nan")
                      for layer in layers]
            ax.plot(index, values, style, marker=".", markersize=3, label=label)
        first = row.diagnosis.get("first_divergent_layer")
        for i, layer in enumerate(layers):
            if layer["module"] == first:
                ax.axvline(i, color=VERDICT_COLOURS["FAIL"], alpha=0.5)
                ax.annotate(first, (i, ax.get_ylim()[1]), fontsize=7, ha="left", va="top")
        ticks = list(index)[::max(1, len(layers) // 20)]
        ax.set_xticks(ticks, [layers[i]["module"] for i in ticks], rotation=60, ha="right", fontsize=6)
        ax.set_ylabel("SNR vs PyTorch (dB)", fontsize=8)
        ax.set_title(row.case, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.25)
        fig.tight_layout()
        found[row.case] = _save(plt, fig, out / f"diagnosis-{row.case}.png")
    return found


def _save(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
