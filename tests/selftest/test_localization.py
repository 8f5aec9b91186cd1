"""The localizer names the layer a fault was put in: a weight of one named PyTorch module's convolution
scaled inside the artifact, on both toolchains, float and int8, and the diagnosis names that module as the
first divergent and the worst local layer; on the clean artifact it names another (or none)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.selftest

TARGET = "features.6.branch.dw"  # a depthwise block in the middle of MobileNetV3-Small


def _subject():
    from models import subjects

    return next(s for s in subjects.digits() if s.model == "mobilenet_v3_small")


def _scale_named_conv(src, dst, module: str, factor: float) -> str:
    """Scale the weight (float) or the weight's dequantization scale (QDQ int8) of the convolution that
    `module`'s scope owns; returns the node's name."""
    import onnx
    from onnx import numpy_helper

    from diagnose.onnx_layers import module_path

    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and (module_path(n.name) or "").startswith(module))
    weight = conv.input[1]
    target = inits[weight] if weight in inits else inits[producer[weight].input[1]]  # DequantizeLinear's scale
    value = numpy_helper.to_array(target)
    target.CopyFrom(numpy_helper.from_array((value * factor).astype(value.dtype), target.name))
    onnx.save(model, str(dst))
    return conv.name


def _scale_tflite_op(src, dst, tensor_name: str, factor: float) -> None:
    """Scale the weights (float) or the weight quantization scales (integer) of the operator that writes
    the tensor named `tensor_name`."""
    from tensorflow.lite.tools import flatbuffer_utils

    from converters.tflite_simulation import _constant

    model = flatbuffer_utils.read_model(str(src))
    graph = model.subgraphs[0]
    # a quantized model keeps the float model's operator names up to the constants it fused (after ";")
    op = next(op for op in graph.operators
              if graph.tensors[op.outputs[0]].name.decode().split(";")[0] == tensor_name.split(";")[0])
    weight = graph.tensors[op.inputs[1]]
    if weight.quantization is not None and weight.quantization.scale is not None and len(weight.quantization.scale):
        weight.quantization.scale = (np.asarray(weight.quantization.scale) * factor).tolist()
    else:
        data = _constant(model, graph, op.inputs[1])
        model.buffers[weight.buffer].data = np.frombuffer((data * factor).astype(data.dtype).tobytes(), np.uint8)
    flatbuffer_utils.write_model(model, str(dst))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_fault_in_one_named_layer_is_localized_to_it(fmt, precision, pipeline, tmp_path):
    from converters.onnx_names import ONNX_FILE
    from converters.pipeline import Case
    from diagnose.onnx_layers import localize
    from models import datasets

    from diagnose import tflite_layers

    subject = _subject()
    case = Case(subject, fmt, precision)
    artifact = pipeline.artifact(case)
    net = pipeline.torch_model(subject)
    x = np.ascontiguousarray(datasets.labelled(subject, "test")[0][:8])
    faulty = tmp_path / f"faulty{artifact.suffix}"
    if fmt == "onnx":
        float_onnx = pipeline.entry("onnx", subject) / ONNX_FILE
        clean = localize(float_onnx, artifact, net, x, tmp_path)
        node = _scale_named_conv(artifact, faulty, TARGET, 3.0)
        found = localize(float_onnx, faulty, net, x, tmp_path)
    else:
        float_tflite = pipeline.artifact(Case(subject, "tflite", "fp32"))
        clean = tflite_layers.localize(float_tflite, artifact, net, x)
        conv = next(layer for layer in clean["layers"] if layer["module"].startswith(TARGET)
                    and "CONV" in layer["op"])
        node = conv["tensor"]
        _scale_tflite_op(artifact, faulty, node, 3.0)
        found = tflite_layers.localize(float_tflite, faulty, net, x)
    key = "local_snr_db" if fmt == "onnx" else "drop_db"
    layers = {layer["module"]: layer for layer in found["layers"]}
    print(f"{fmt}-{precision}: fault in {node}; named {found['first_divergent_layer']} ({key} "
          f"{layers[found['worst_local_layer']][key]:.1f} dB), clean run named "
          f"{clean['first_divergent_layer']}; {found['matched']} layers matched, {len(found['unmatched'])} not")
    assert found["first_divergent_layer"].startswith(TARGET)
    assert found["worst_local_layer"].startswith(TARGET)
    assert not (clean["first_divergent_layer"] or "").startswith(TARGET)
    # upstream of the fault nothing changed: the layers before it read the same in both diagnoses
    before = [m for m in (layer["module"] for layer in clean["layers"]) if m.startswith("features.5")]
    assert before and all(abs(layers[m]["cumulative_snr_db"] - next(
        layer for layer in clean["layers"] if layer["module"] == m)["cumulative_snr_db"]) < 1e-6 for m in before)


def test_the_report_row_carries_the_diagnosis_of_a_known_failure(pipeline, tmp_path):
    """`diagnose.attach` on a failing outcome fills row.diagnosis; on a pass with the default mode it does
    not; an artifact it cannot read is recorded as the diagnosis's error, not raised."""
    import diagnose
    from compare.cases import Outcome
    from converters.pipeline import Case
    from harness.checks import row_for
    from models import datasets

    case = Case(_subject(), "onnx", "int8")
    x = datasets.labelled(case.subject, "test")[0]
    row = row_for(case, "parity")
    diagnose.attach(row, pipeline, case, x, "failing", Outcome.PASSED)
    assert row.diagnosis is None
    diagnose.attach(row, pipeline, case, x, "failing", Outcome.KNOWN)
    assert row.diagnosis["matched"] > 20 and row.diagnosis["first_divergent_layer"]
    row.outcome = Outcome.KNOWN.value
    from report.files import write_all

    written = write_all([row], tmp_path / "report", {"time": "now"})
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "Diagnosis: where the error comes from" in markdown and row.diagnosis["worst_local_layer"] in markdown
    assert tmp_path / "report" / f"diagnosis-{case.id}.png" in written
    eager = Case(case.subject, "pytorch", "fp32")
    diagnose.attach(row, pipeline, eager, x, "all", Outcome.PASSED)
    assert "not localized yet" in row.diagnosis["unsupported"]

    class Broken:
        cache = pipeline.cache

        def artifact(self, case):
            raise OSError("artifact unreadable")

    diagnose.attach(row, Broken(), case, x, "all", Outcome.FAILED)
    assert row.diagnosis == {"error": "OSError: artifact unreadable"}


def test_a_known_failure_reduces_to_a_repro_that_runs_on_its_own(pipeline, tmp_path):
    """onnxruntime's dynamic int8 on MobileNetV3-Small (a known failure) reduces to the first divergent
    layer, and the repro directory's script, run alone, measures what the suite measured."""
    import subprocess
    import sys

    from converters.pipeline import Case
    from diagnose import for_case
    from diagnose.reduce import reduce_case
    from models import datasets, subjects

    subject = next(s for s in subjects.natural() if s.id == "mobilenet_v3_small")
    case = Case(subject, "onnx", "dynamic_int8")
    diagnosis = for_case(pipeline, case, datasets.parity_inputs(subject))
    found = reduce_case(pipeline, case, diagnosis, tmp_path / "repro")
    assert found["reproduced"] == diagnosis["first_divergent_layer"], found["tried"]
    out = subprocess.run([sys.executable, "reproduce.py"], cwd=tmp_path / "repro", capture_output=True, text=True,
                         check=True).stdout
    assert f"{found['snr_alone_db']:.1f} dB (the suite measured {found['snr_alone_db']:.1f} dB)" in out
    assert found["tried"][0]["float_snr_db"] > 60  # the cut itself is exact; the error is the quantizer's


def test_mitigation_measures_the_levers_and_finds_what_restores_a_known_failure(pipeline, budgets, golden_store,
                                                                                 tmp_path):
    """--diagnose=mitigate on onnxruntime dynamic int8 of MobileNetV3-Small (a known failure): the suite's own
    setting fails its budget, and leaving the localized depthwise layer float restores it (measured)."""
    import diagnose
    from compare.cases import Outcome
    from converters.pipeline import Case
    from harness.checks import row_for
    from models import datasets, subjects
    from report.files import write_all

    subject = next(s for s in subjects.natural() if s.id == "mobilenet_v3_small")
    case = Case(subject, "onnx", "dynamic_int8")
    x = datasets.parity_inputs(subject)
    row = row_for(case, "parity", outcome=Outcome.KNOWN.value)
    diagnose.attach(row, pipeline, case, x, "mitigate", Outcome.KNOWN, golden_store(subject).logits,
                    budgets.for_case("parity", case.id, case.precision))
    levers = row.diagnosis["mitigations"]
    print("\n".join(f"{m['lever']}: {m['metrics']['snr_db']:.1f} dB {'pass' if m['passed'] else 'FAIL'} "
                    f"{m['latency_ratio']:.2f}x" for m in levers))
    assert levers[0]["lever"] == "the suite's settings" and not levers[0]["passed"]
    greedy = [m for m in levers if m["lever"].startswith("greedy")]
    assert greedy and greedy[-1]["passed"] and row.diagnosis["first_divergent_layer"] in greedy[-1]["note"]
    write_all([row], tmp_path, {"time": "now"})
    assert "| lever | SNR dB |" in (tmp_path / "report.md").read_text()


def test_tflite_levers_include_selective_quantization_of_the_localized_layers(pipeline, budgets, tmp_path):
    """TFLite int8: the SavedModel of the same onnx2tf run re-converted by TensorFlow with the localized
    layers denylisted (selective quantization) gives another model than without the denylist."""
    from converters.pipeline import Case
    from diagnose import for_case
    from diagnose.mitigate import levers
    from models import datasets

    case = Case(_subject(), "tflite", "int8")
    x = datasets.parity_inputs(case.subject)
    diagnosis = for_case(pipeline, case, x)
    found = levers(pipeline, case, pipeline.reference_outputs(case.subject, x), x,
                   budgets.for_case("trained", case.id, case.precision), diagnosis, tmp_path)
    by_lever = {m["lever"].split(" (")[0]: m for m in found}
    print("\n".join(f"{m['lever']}: {m['metrics']['snr_db']:.2f} dB, {m['size_bytes']} B, {m['note']}" for m in found))
    plain, selective = by_lever["TensorFlow's converter, same calibration"], by_lever["localized layers float"]
    assert "nodes denylisted" in selective["note"] and not selective["note"].startswith("0 ")
    assert (selective["size_bytes"], selective["metrics"]["snr_db"]) != (plain["size_bytes"], plain["metrics"]["snr_db"])
    assert by_lever["16-bit activations"]["metrics"]["snr_db"] > plain["metrics"]["snr_db"]
