"""The conformance report from result rows: the files, the matrix, carrying results over between the two
passes, the run-to-run scorecard (noise is not a change, a real one is), and the page in a browser."""
from __future__ import annotations

import json

import pytest

from compare.cases import ResultRow
from report import write_report
from report.browser_check import check, find_browser
from report.diff import compare

pytestmark = pytest.mark.selftest
ENV = {"time": "2026-11-26T00:00:00Z", "cpu": "test CPU", "tools": {"onnxruntime": "1.31.1"},
       "columns": ["pytorch-fp32", "onnx-fp32", "onnx-int8", "tflite-int8", "tflite-int16x8"]}


def _row(case, kind, **fields):
    model, fmt, precision = case.split("-")
    arch = model.removesuffix("_digits")
    return ResultRow(case=case, kind=kind, subject=model, arch=arch, format=fmt, precision=precision, **fields)


def _parity(case, cosine, outcome="passed", **extra):
    return _row(case, "parity", metrics={"cosine_mean": cosine, "top1_agreement": 0.9}, size_bytes=4_000_000,
                outcome=outcome, **extra)


def _latency(case, median, q1, q3, peak_gflops=200.0):
    return _row(case, "latency", threads=1, latency_ms=median, latency_q1_ms=q1, latency_q3_ms=q3,
                macs=300_000_000, peak_gflops=peak_gflops, size_bytes=4_000_000, outcome="passed")


def _rows():
    return [_parity("mobilenet_v2-onnx-fp32", 1.0), _parity("mobilenet_v2-tflite-int8", 0.99,
                                                            reference_metrics={"snr_db": 31.5}),
            _parity("mobilenet_v3_large-tflite-int16x8", 0.98, outcome="known", known_failure="SE hard-sigmoid"),
            _row("mobilenet_v2_digits-tflite-int8", "accuracy", accuracy_drop=0.5, lost=3, gained=1, outcome="passed")]


# the second case's peak probe ran in a slow phase: the floor comes from the pass's best probe (200 GFLOP/s)
def _latency_rows():
    return [_latency("mobilenet_v2-onnx-fp32", 7.0, 6.9, 7.2),
            _latency("mobilenet_v2-tflite-int8", 4.3, 4.2, 4.4, peak_gflops=120.0)]


def test_two_passes_make_one_report(tmp_path):
    write_report(_rows(), tmp_path, ENV)  # pass 1 (sharded)
    paths = write_report(_latency_rows(), tmp_path, ENV)  # pass 2 (serial)
    assert {p.name for p in paths} >= {"report.md", "report.html", "report.json", "accuracy_vs_latency.png",
                                       "size_per_format.png"}
    results = json.loads((tmp_path / "report.json").read_text())["results"]
    assert len(results) == len(_rows()) + len(_latency_rows())
    md = (tmp_path / "report.md").read_text()
    assert "4 results carried over" in md
    row = next(line for line in md.splitlines() if line.startswith("| mobilenet_v2<br>"))
    assert row.startswith("| mobilenet_v2<br>300.0 M MACs<br>fp32 bound 3.00 ms @ 1 thr |")
    # the fp32 floor is shown for float cells only: integer kernels are not bound by it
    assert "cos 1.0000 / top-1 0.90<br>7.00 ms (43% of fp32 bound)<br>4.0 MB<br>**pass**" in row
    assert ("cos 0.9900 / top-1 0.90<br>vs simulated: 31.5 dB<br>acc drop +0.50 pt (-3/+1)<br>4.30 ms<br>4.0 MB"
            "<br>**pass**") in row
    assert "**parity mobilenet_v3_large-tflite-int16x8**: SE hard-sigmoid" in md


def test_scorecard_counts_real_changes_not_noise():
    old = {"environment": {"tools": {"onnxruntime": "1.31.1"}},
           "results": _rows() + _latency_rows() + [_latency("mobilenet_v2-tflite-fp32", 6.0, 5.9, 6.1)]}
    old["results"][0].metrics["snr_db"] = float("inf")  # bit-identical before and after: no change
    new = [_row("mobilenet_v2-onnx-fp32", "parity", outcome="passed",
                metrics={"cosine_mean": 1.0, "top1_agreement": 0.9, "snr_db": float("inf")}),
           _parity("mobilenet_v2-tflite-int8", 0.95, outcome="failed"),
           _latency("mobilenet_v2-onnx-fp32", 7.5, 7.0, 8.0),  # +7 %, overlapping IQRs: noise
           _latency("mobilenet_v2-tflite-int8", 9.0, 8.8, 9.3),  # 2.1x, disjoint IQRs: a regression
           _latency("mobilenet_v2-tflite-fp32", 4.0, 3.9, 4.1)]  # 1.5x faster: an improvement
    card = compare(old, new, {"tools": {"onnxruntime": "1.32.0"}}, "old/report.json")
    assert {(c.case, c.metric) for c in card.regressed} == {
        ("mobilenet_v2-tflite-int8", "verdict"), ("mobilenet_v2-tflite-int8", "cosine_mean"),
        ("mobilenet_v2-tflite-int8", "latency_ms")}
    assert [(c.case, c.metric) for c in card.improved] == [("mobilenet_v2-tflite-fp32", "latency_ms")]
    assert card.caveats == ["onnxruntime 1.31.1 -> 1.32.0"]
    assert "accuracy mobilenet_v2_digits-tflite-int8" in card.gone_cases


def test_a_report_from_another_version_is_refused_with_what_to_do(tmp_path):
    from report.files import load_report

    (tmp_path / "report.json").write_text(json.dumps({"results": [{"case": "a", "kind": "parity", "bogus": 1}]}))
    with pytest.raises(ValueError, match="written by another version of the suite.*delete it"):
        load_report(tmp_path / "report.json")


def test_report_opens_in_a_headless_browser(tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium); .ci/run installs it")
    write_report(_rows() + _latency_rows(), tmp_path, ENV)
    assert check(tmp_path / "report.html", browser) == []
    broken = (tmp_path / "report.html").read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
    (tmp_path / "broken.html").write_text(broken)
    assert check(tmp_path / "broken.html", browser) == ["plots loaded: 1 of 2"]


def test_cross_path_agreement_names_the_path_that_alone_is_wrong(tmp_path):
    reference = list(range(10)) * 2  # PyTorch's top-1 on 20 inputs
    onnx, openvino = list(reference), list(reference)
    tflite = list(reference)
    for i in (3, 7, 11):  # tflite alone wrong on three inputs
        tflite[i] = 99
    onnx[5] = openvino[5] = 42  # two paths wrong together on one: nobody is the odd one out there
    rows = [_parity(f"mobilenet_v2-{fmt}-int8", 0.99, top1=top1, reference_top1=reference)
            for fmt, top1 in (("onnx", onnx), ("tflite", tflite), ("openvino", openvino))]
    rows.append(_parity("mobilenet_v2-onnx-fp32", 1.0, top1=reference, reference_top1=reference))  # alone at fp32

    from report.crosspath import agreements

    [found] = agreements(rows)
    assert (found.subject, found.precision, found.inputs) == ("mobilenet_v2", "int8", 20)
    assert found.vs_pytorch == {"onnx": 0.95, "openvino": 0.95, "tflite": 0.85}
    assert found.disagreements == 4 and found.odd_one_out == {"tflite": 3}
    assert found.least_pair[:2] in (("onnx", "tflite"), ("openvino", "tflite")) and found.least_pair[2] == 0.8
    write_report(rows, tmp_path, ENV)
    md = (tmp_path / "report.md").read_text()
    assert "## Cross-path agreement" in md and "| mobilenet_v2 | int8 | 20 parity inputs |" in md
    assert "tflite 3" in md


def test_optimized_variants_table_shows_accuracy_share_latency_and_sparsity(tmp_path):
    """The seed-shaped table: the baseline and each variant per column (accuracy, its share of the
    baseline's PyTorch accuracy, latency), the sparsity kept or lost per artifact, and the distilled student
    beside its control. A variant's rows are its own matrix row, not its architecture's."""
    def accuracy(subject, column, acc, ref, outcome="passed"):
        fmt, precision = column.split("-")
        return ResultRow(case=f"{subject}-{column}", kind="accuracy", subject=subject,
                         arch=subject if subject != "mobilenet_v2_digits" else "mobilenet_v2", format=fmt,
                         precision=precision, accuracy=acc, reference_accuracy=ref, accuracy_drop=ref - acc,
                         outcome=outcome, population="digits")

    pruned = "mobilenet_v2_digits_prune75u"

    def other(subject, kind, arch, **fields):
        return ResultRow(case=f"{subject}-onnx-int8", kind=kind, subject=subject, arch=arch, format="onnx",
                         precision="int8", population="digits", **fields)

    rows = [accuracy("mobilenet_v2_digits", "onnx-int8", 98.0, 98.5),
            accuracy(pruned, "onnx-int8", 96.0, 97.75, outcome="failed"),
            accuracy("mobilenet_v2_digits_kd", "onnx-int8", 97.5, 97.75),
            other(pruned, "latency", pruned, latency_ms=1.25, outcome="passed"),
            other("mobilenet_v2_digits", "latency", "mobilenet_v2", latency_ms=1.5),
            other(pruned, "sparsity", pruned, outcome="failed", line=f"{pruned}-onnx-int8: LOST",
                  metrics={"sparsity": 0.1, "torch_sparsity": 0.728, "weight_elements": 100,
                           "base_weight_elements": 100, "torch_params_ratio": 1.0, "size_ratio": 1.0,
                           "structured": 0.0, "kept": 0.0})]
    write_report(rows, tmp_path, {**ENV, "columns": ["onnx-int8"]})
    md = (tmp_path / "report.md").read_text()
    assert "## Optimized variants" in md
    assert "| mobilenet_v2_digits (baseline) | 98.50 % (100.0 %) | 98.00 % (99.5 %)" in md
    assert "96.00 % (97.5 %)<br>1.25 ms" in md.replace("\n", "")
    assert "zeros 0.100 (PyTorch 0.728)" in md and "**LOST**" in md
    assert "| onnx-int8 | 98.00 % | 97.50 % | +0.50 pt | +0.25 pt |" in md
    # the baseline's digits latency does not replace its architecture's natural-image latency in the matrix
    assert "1.50 ms" not in md.split("## Optimized variants")[0]


def test_qat_tables_show_baseline_ptq_qat_and_whether_scales_were_kept(tmp_path):
    """The QAT seed's table (baseline, PTQ of the baseline, QAT per int8 column, and the scales kept or
    re-quantized), and the real-weight QAT against PTQ of the same float model by agreement with it."""
    base, qat_id = "mobilenet_v2_digits", "mobilenet_v2_digits_qat"

    def row(subject, column, kind="accuracy", **fields):
        fmt, precision = column.split("-")
        return ResultRow(case=f"{subject}-{column}", kind=kind, subject=subject,
                         arch="mobilenet_v2" if subject == base else subject, format=fmt, precision=precision,
                         population="digits" if "digits" in subject else "natural", **fields)

    def scales(subject, column, kept, outcome):
        return row(subject, column, "qat", outcome=outcome, line=f"{subject}-{column}: QAT scales",
                   metrics={"scales_kept": kept, "learned_scales": 136.0, "artifact_scales": 70.0,
                            "carried": float(kept == 1.0)})

    rows = [row(base, "onnx-fp32", accuracy=98.5, reference_accuracy=98.5, outcome="passed"),
            row(base, "onnx-int8", accuracy=98.25, reference_accuracy=98.5, outcome="passed"),
            row(base, "tflite-int8", accuracy=98.0, reference_accuracy=98.5, outcome="passed"),
            # a carried artifact's reference accuracy is the fake-quantized network's: not the fp32 column's
            row(qat_id, "onnx-fp32", accuracy=98.0, reference_accuracy=98.0, outcome="passed"),
            row(qat_id, "onnx-int8", accuracy=98.75, reference_accuracy=97.0, outcome="passed"),
            row(qat_id, "tflite-int8", accuracy=97.5, reference_accuracy=98.0, outcome="passed"),
            scales(qat_id, "onnx-int8", 1.0, "passed"), scales(qat_id, "tflite-int8", 1 / 136, "known"),
            row("mobilenet_v2_torchvision", "onnx-int8", "parity", outcome="passed",
                metrics={"top1_agreement": 0.6875, "snr_db": 10.6}),
            row("mobilenet_v2_torchvision_qat", "onnx-int8", "parity", outcome="passed",
                metrics={"top1_agreement": 0.71875, "snr_db": 11.7}),
            scales("mobilenet_v2_torchvision_qat", "onnx-int8", 1.0, "passed")]
    write_report(rows, tmp_path, {**ENV, "columns": ["onnx-fp32", "onnx-int8", "tflite-int8"]})
    md = (tmp_path / "report.md").read_text()
    table = md.split("### Baseline, PTQ and QAT")[1].split("###")[0]
    assert "| baseline (fp32) | 98.50 % | 98.50 % (100.0 %)" in table
    assert "| PTQ (baseline, int8) | - | 98.25 % (99.7 %)" in table
    assert "| QAT (mobilenet_v2_digits_qat) | 97.00 % fake-quantized | 98.75 % (100.3 %)" in table
    assert "136 of 136<br>pass<br>**kept**" in table and "1 of 136<br>known<br>**RE-QUANTIZED**" in table
    assert "| mobilenet_v2_digits_qat | 98.00 % (99.5 %)" in md  # the variant row's PyTorch column: float
    natural = md.split("### QAT on real weights")[1]
    assert "| PTQ (mobilenet_v2_torchvision) | top-1 0.688<br>10.6 dB" in natural
    assert "| QAT (mobilenet_v2_torchvision_qat) | top-1 0.719<br>11.7 dB" in natural
