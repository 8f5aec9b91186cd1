"""A format is one module: a plug-in file outside the project registers onnxruntime with its graph
optimizations applied offline (a build step of its own, run in the isolated conversion child) and then run
with them off, and goes through parity, latency and the report with no other file edited."""
from __future__ import annotations

import json
import textwrap

import pytest

pytestmark = [pytest.mark.selftest, pytest.mark.latency]  # times cases: the serial pass
CASE = "mobilenet_v3_small_minimal-ort_offline-fp32"
PLUGIN = textwrap.dedent('''
    """onnxruntime with graph optimizations applied once, offline, and none at run time."""
    from pathlib import Path

    from converters.formats import Format, Step, register
    from converters.formats.onnxrt import ONNX_FILE, OrtRunner

    OPTIMIZED = "optimized.onnx"


    def optimize(params, out_dir):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(out_dir / OPTIMIZED)
        ort.InferenceSession(str(Path(params["deps"]["onnx"]) / ONNX_FILE), options,
                             providers=["CPUExecutionProvider"])


    def runner(path, subject_params, threads, optimized=True):
        import onnxruntime as ort

        return OrtRunner(path, subject_params, threads, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL)


    STEP = Step("ort_offline", optimize, needs=("onnx",), tools=("onnxruntime",))
    register(Format("ort_offline", {"fp32": ("ort_offline", OPTIMIZED)}, runner, steps=(STEP,)))
''')


def test_a_format_plugin_runs_through_parity_latency_and_the_report(pytester_run, pytestconfig, tmp_path):
    from pathlib import Path

    from harness.options import CACHE

    plugin = tmp_path / "ort_offline.py"
    plugin.write_text(PLUGIN)
    report = tmp_path / "report"
    out = pytester_run("-n", "0", "-p", "no:randomly", f"--formats-from={plugin}", f"--report-dir={report}",
                       "--benchmark-max-time=0.2", "-k", CASE, "-rA")
    assert f"PASSED tests/test_parity.py::test_parity[{CASE}]" in out, out[-3000:]
    assert f"PASSED tests/test_latency.py::test_latency[{CASE}]" in out, out[-3000:]
    rows = json.loads((report / "report.json").read_text())["results"]
    assert {(r["kind"], r["case"]) for r in rows} == {("parity", CASE), ("latency", CASE)}
    assert "ort_offline-fp32" in (report / "report.md").read_text()
    # the plug-in's own step ran in the isolated conversion child and its artifact is cached
    built = list((Path(pytestconfig.getoption(CACHE)) / "ort_offline").glob("*/optimized.onnx"))
    assert built and "[convsuite] step ort_offline finished" in (built[0].parent / "build.log").read_text()
