"""Mitigate a failing onnxruntime quantized case: quantize the same float graph again with one lever changed
at a time, the way onnxruntime.quantization exposes them, and measure each against the same expected
outputs with the case's own parity budget, with its size and latency cost.

  static (QDQ)   the suite's settings (MinMax, per-channel s8 weights, u8 activations, reduce_range) |
                 entropy calibration | percentile calibration | per-tensor weights | without reduce_range |
                 16-bit activations (QDQ contrib ops) | the localized layers left float (`nodes_to_exclude`) |
                 greedy float fallback
  dynamic        the suite's settings | per-channel weights | depthwise convolutions left float | the
                 localized layers left float | greedy float fallback

  TFLite int8  the suite's artifact (onnx2tf) | the same SavedModel re-converted by TensorFlow's converter
  /full_int8   with the suite's calibration set (where selective quantization starts) | 16-bit activations
               (the int16x8 artifact of the same onnx2tf run) | the localized layers float (TensorFlow's
               selective quantization: QuantizationDebugger with those layers' nodes denylisted) | greedy
               float fallback

Greedy float fallback is NNCF's accuracy-control idea on onnxruntime's quantizer: leave the layer that adds
the most error by itself (the diagnosis's local SNR) in float, re-quantize, re-measure, and go on to the next
worst until the budget holds or GREEDY_STEPS layers are float. Latency is the median of LATENCY_CALLS
single-thread calls at batch 1 on this machine, next to the suite's own artifact measured the same way in
the same process (compare ratios, not milliseconds, across runs). Without reduce_range the outputs depend on
the CPU (u8s8 without VNNI saturates, README); the lever is measured here, on this CPU only.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

GREEDY_STEPS = 6
LATENCY_CALLS = 30


def _row(label: str, verdict, path: Path, latency: float, own_latency: float, note: str) -> dict:
    """One lever's measurement: the verdict on the case's budget, size, latency and its ratio to the artifact's."""
    return {"lever": label, "metrics": verdict.metrics, "passed": verdict.passed,
            "failures": [c.describe() for c in verdict.failures], "size_bytes": path.stat().st_size,
            "latency_ms": latency, "latency_ratio": latency / own_latency, "note": note}


def _scope_nodes(graph, module: str) -> list[str]:
    """Names of the nodes `module`'s scope owns (itself and its sub-modules)."""
    from diagnose.onnx_layers import module_path

    found = []
    for node in graph.node:
        path = module_path(node.name) or ""
        if path == module or path.startswith(module + "."):
            found.append(node.name)
    return found


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    from diagnose.onnx_layers import _per_sample, _session

    session = _session(str(path))
    return _per_sample(session, {session.get_inputs()[0].name: x})[0]


def _latency_ms(path: Path, x: np.ndarray) -> float:
    from diagnose.onnx_layers import _session

    session = _session(str(path))
    feed = {session.get_inputs()[0].name: x[:1]}
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def levers(pipeline, case, expected: np.ndarray, x: np.ndarray, budget, diagnosis: dict, work: Path) -> list[dict]:
    """Every lever's measurement (module docstring): [{lever, metrics, passed, failures, size_bytes,
    latency_ms, latency_ratio}], the suite's own setting first."""
    if case.format == "tflite":
        return tflite_levers(pipeline, case, expected, x, budget, diagnosis, work)
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, \
        quantize_static

    from compare.verdict import judge_outputs
    from converters.formats.onnxrt import FLOAT_SOURCE_FILE, _Calibration
    from converters.onnx_names import CALIBRATION_FILE

    static = case.precision == "int8"
    if case.precision not in ("int8", "dynamic_int8"):
        raise ValueError(f"{case.id}: mitigation covers onnxruntime int8 and dynamic_int8, not {case.precision}")
    artifact = pipeline.artifact(case)
    pre = artifact.parent / FLOAT_SOURCE_FILE
    graph = onnx.load(str(pre)).graph
    depthwise = [n.name for n in graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1
                                                                             for a in n.attribute)]
    ranked = sorted((layer for layer in diagnosis.get("layers", []) if layer.get("local_snr_db") is not None),
                    key=lambda layer: layer["local_snr_db"])
    worst = [layer["module"] for layer in ranked]
    localized = sorted({n for module in worst[:3] for n in _scope_nodes(graph, module)})
    calibration = pipeline.calibration(case.subject) / CALIBRATION_FILE
    base = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, reduce_range=True, calibrate_method=CalibrationMethod.MinMax)

    def quantize(extra: dict, out: Path) -> None:
        if static:
            quantize_static(str(pre), str(out), _Calibration(calibration), **{**base, **extra})
        else:
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, **extra)

    own_latency = _latency_ms(artifact, x)
    results = []

    def measure(label: str, extra: dict | None, note: str = "") -> dict:
        out = work / f"lever-{len(results)}.onnx"
        if extra is None:
            out = artifact
        else:
            quantize(extra, out)
        row = _row(label, judge_outputs(case.id, "parity", expected, _run(out, x), budget), out,
                   _latency_ms(out, x), own_latency, note)
        results.append(row)
        return row

    measure("the suite's settings", None)
    if static:
        measure("entropy calibration", {"calibrate_method": CalibrationMethod.Entropy})
        measure("percentile calibration (99.999)", {"calibrate_method": CalibrationMethod.Percentile})
        measure("per-tensor weights", {"per_channel": False})
        measure("without reduce_range", {"reduce_range": False}, "outputs depend on the CPU without VNNI")
        measure("16-bit activations", {"activation_type": QuantType.QUInt16,
                                       "extra_options": {"UseQDQContribOps": True}})
    else:
        measure("per-channel weights", {"per_channel": True})
        measure("depthwise convolutions float", {"nodes_to_exclude": depthwise}, f"{len(depthwise)} nodes")
    if localized:
        measure(f"localized layers float ({', '.join(worst[:3])})", {"nodes_to_exclude": localized},
                f"{len(localized)} nodes")
    excluded: list[str] = []
    for step, module in enumerate(worst[:GREEDY_STEPS], 1):
        excluded += [n for n in _scope_nodes(graph, module) if n not in excluded]
        row = measure(f"greedy float fallback, {step} layer{'s' if step > 1 else ''}",
                      {"nodes_to_exclude": list(excluded)}, f"float: {', '.join(worst[:step])}")
        if row["passed"]:
            break
    return results


def _tflite_latency_ms(path: Path, x: np.ndarray) -> float:
    from converters.tflite_runtime import TFLiteRunner

    runner = TFLiteRunner(path)
    runner.set_input(x[:1])
    for _ in range(3):
        runner.invoke()
    times = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        runner.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def tflite_levers(pipeline, case, expected: np.ndarray, x: np.ndarray, budget, diagnosis: dict,
                  work: Path) -> list[dict]:
    """The TFLite levers (module docstring) for an int8 or full_int8 artifact of onnx2tf."""
    import tensorflow as tf

    from compare.verdict import judge_outputs
    from converters import predict
    from converters.onnx_names import CALIBRATION_FILE
    from converters.pipeline import Case
    from converters.tflite_runtime import TFLiteRunner

    if case.precision not in ("int8", "full_int8"):
        raise ValueError(f"{case.id}: TFLite mitigation covers int8 and full_int8, not {case.precision}")
    artifact = pipeline.artifact(case)
    saved_model = artifact.parent
    calibration = np.load(pipeline.calibration(case.subject) / CALIBRATION_FILE).transpose(0, 2, 3, 1)

    def samples():
        for i in range(len(calibration)):
            yield [np.ascontiguousarray(calibration[i:i + 1], dtype=np.float32)]

    def converter():
        c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = samples
        if case.precision == "full_int8":
            c.inference_input_type = c.inference_output_type = tf.int8
        return c

    ranked = sorted((layer for layer in diagnosis.get("layers", []) if layer.get("drop_db") is not None),
                    key=lambda layer: -layer["drop_db"])
    own_latency = _tflite_latency_ms(artifact, x)
    results = []

    def measure(label: str, path: Path, note: str = "") -> dict:
        row = _row(label, judge_outputs(case.id, "parity", expected, predict(TFLiteRunner(path), x), budget), path,
                   _tflite_latency_ms(path, x), own_latency, note)
        results.append(row)
        return row

    def selective(nodes: list[str]) -> Path:
        out = work / f"lever-{len(results)}.tflite"
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter(), debug_dataset=samples,
                                                             debug_options=options)
        out.write_bytes(debugger.get_nondebug_quantized_model())
        return out

    measure("the suite's artifact (onnx2tf)", artifact)
    plain = work / "tf_converter.tflite"
    plain.write_bytes(converter().convert())
    measure("TensorFlow's converter, same calibration", plain)
    measure("16-bit activations (int16x8 artifact)", pipeline.artifact(Case(case.subject, "tflite", "int16x8")))
    # the debugger denylists by the names of the quantized model it converts; ours come from onnx2tf's float
    # model, which shares the first part of each name (before the fused constants)
    from ai_edge_litert.interpreter import Interpreter

    names = {d["name"].split(";")[0]: d["name"] for d in Interpreter(model_path=str(plain)).get_tensor_details()}
    nodes_of = {layer["module"]: [names[k] for k in [layer["tensor"].split(";")[0]] if k in names]
                for layer in ranked}
    worst = [layer["module"] for layer in ranked]
    if worst:
        top = sorted({n for module in worst[:3] for n in nodes_of[module]})
        measure(f"localized layers float ({', '.join(worst[:3])})", selective(top), f"{len(top)} nodes denylisted")
    excluded: list[str] = []
    for step, module in enumerate(worst[:GREEDY_STEPS], 1):
        excluded += [n for n in nodes_of[module] if n not in excluded]
        row = measure(f"greedy float fallback, {step} layer{'s' if step > 1 else ''}", selective(list(excluded)),
                      f"float: {', '.join(worst[:step])}")
        if row["passed"]:
            break
    return results
