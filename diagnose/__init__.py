"""Diagnosis of a conversion: where its error comes from, layer by layer, named by the PyTorch module that
produced each tensor (`features.12.branch.se`): onnxruntime artifacts by cutting the graph along the
exporter's module scopes (diagnose.onnx_layers), TFLite artifacts by matching tensor values
(diagnose.tflite_layers: onnx2tf renames everything).

`--diagnose=failing` (the default) diagnoses every parity case that fails or is a known failure,
`--diagnose=all` every parity case, `--diagnose=off` none; `--diagnose=mitigate` diagnoses the failing ones
and, for onnxruntime int8 and dynamic_int8 and TFLite int8 and full_int8, measures the quantization levers
(diagnose.mitigate: minutes a case, so never the default). A diagnosis is cached like an artifact (keyed by
the artifact's and the float graph's content, the weights, the inputs, this code, the tools and the CPU),
so a warm run re-reads it; it never changes a verdict, and a diagnosis that breaks is recorded as its error.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MODES = ("failing", "all", "mitigate", "off")
SAMPLES = 8  # per-layer SNR over 8 inputs: enough to rank layers, a quarter of the parity set's cost
FORMATS = ("onnx", "tflite")


def _entry(pipeline, case) -> Path:
    """The cache entry holding the case's artifact (a TFLite artifact sits in a sub-folder of it)."""
    from converters import formats

    return pipeline.entry(formats.get(case.format).artifact_of(case.precision, case.subject)[0], case.subject)


def wanted(mode: str, outcome) -> bool:
    from compare.cases import Outcome

    return mode == "all" or (mode in ("failing", "mitigate") and outcome in (Outcome.FAILED, Outcome.KNOWN))


def for_case(pipeline, case, inputs: np.ndarray) -> dict:
    """The case's diagnosis (diagnose.onnx_layers or tflite_layers), computed once per artifact, inputs, code,
    tools and CPU."""
    if case.format not in FORMATS:
        return {"unsupported": f"layer localization covers {', '.join(FORMATS)} artifacts; {case.format} is "
                               f"not localized yet"}
    user = case.subject.user
    if user and len(user.inputs) > 1:
        return {"unsupported": f"layer localization feeds one input; {case.subject.model} has "
                               f"{len(user.inputs)} ({', '.join(i.name for i in user.inputs)})"}
    from converters import codehash, latency
    from converters.cache import make_key
    from converters.onnx_names import ONNX_FILE
    from converters.pipeline import Case, content_key, tool_version
    from diagnose import onnx_layers, tflite_layers
    from models.images import array_digest

    x = np.ascontiguousarray(inputs[:SAMPLES])
    artifact = pipeline.artifact(case)
    if case.format == "onnx":
        float_model = pipeline.entry("onnx", case.subject) / ONNX_FILE
        code = codehash.function_digest(onnx_layers.localize)
    else:
        float_model = pipeline.artifact(Case(case.subject, "tflite", "fp32"))
        code = codehash.function_digest(tflite_layers.localize)
    weights = pipeline.entry("weights", case.subject)
    float_case = Case(case.subject, case.format, "fp32")
    key = make_key({"artifact": content_key(_entry(pipeline, case)), "file": artifact.name,
                    "float": content_key(_entry(pipeline, float_case)), "file_float": float_model.name,
                    "weights": content_key(weights),
                    "inputs": array_digest(x), "code": code,
                    "tools": {t: tool_version(t) for t in ("onnx", "onnxruntime", "torch", "ai-edge-litert")},
                    "cpu": [latency.cpu_name(), latency.cpu_flags()]})

    def build(tmp: Path) -> None:
        net = pipeline.torch_model(case.subject)
        if case.format == "onnx":
            result = onnx_layers.localize(float_model, artifact, net, x, tmp)
        else:
            result = tflite_layers.localize(float_model, artifact, net, x)
        (tmp / "diagnosis.json").write_text(json.dumps(result, default=float))
        for scratch in tmp.glob("*.onnx"):
            scratch.unlink()

    hit = pipeline.cache.get_or_build("diagnosis", key, build, {"case": case.id})
    return json.loads((hit.path / "diagnosis.json").read_text())


def mitigations(pipeline, case, inputs: np.ndarray, expected: np.ndarray, budget, diagnosis: dict) -> list[dict]:
    """The quantization levers measured on this case (diagnose.mitigate), cached like the diagnosis."""
    import tempfile

    from converters import codehash, latency
    from converters.cache import make_key
    from converters.pipeline import content_key, tool_version
    from diagnose import mitigate
    from models.images import array_digest

    key = make_key({"artifact": content_key(_entry(pipeline, case)), "file": pipeline.artifact(case).name,
                    "inputs": array_digest(inputs),
                    "expected": array_digest(np.ascontiguousarray(expected, dtype=np.float32)),
                    "budget": repr(budget), "diagnosis": diagnosis.get("layers"),
                    "code": codehash.function_digest(mitigate.levers),
                    "tools": {t: tool_version(t) for t in ("onnx", "onnxruntime", "tensorflow", "ai-edge-litert")},
                    "cpu": [latency.cpu_name(), latency.cpu_flags()]})

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as work:
            found = mitigate.levers(pipeline, case, expected, inputs, budget, diagnosis, Path(work))
        (tmp / "mitigations.json").write_text(json.dumps(found, default=float))

    hit = pipeline.cache.get_or_build("mitigations", key, build, {"case": case.id})
    return json.loads((hit.path / "mitigations.json").read_text())


def attach(row, pipeline, case, inputs: np.ndarray, mode: str, outcome, expected=None, budget=None) -> None:
    """Set row.diagnosis when `mode` asks for this outcome (with the levers' measurements under
    "mitigations" in mode "mitigate"); a diagnosis that breaks is recorded, not raised."""
    if not wanted(mode, outcome):
        return
    row.diagnosis = None
    try:
        row.diagnosis = for_case(pipeline, case, inputs)
        if mode == "mitigate" and "layers" in row.diagnosis and expected is not None and (
                (case.format == "onnx" and case.precision in ("int8", "dynamic_int8"))
                or (case.format == "tflite" and case.precision in ("int8", "full_int8"))):
            row.diagnosis["mitigations"] = mitigations(pipeline, case, inputs, expected, budget, row.diagnosis)
    except Exception as exc:  # noqa: BLE001 - diagnosis must never change or hide the verdict
        row.diagnosis = {**(row.diagnosis or {}), "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:400]}
