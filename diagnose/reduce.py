"""Reduce a failing quantized case to the smallest contiguous sub-network that still shows its error, and
write a repro directory a converter's maintainers can run without this suite (onnxruntime: `reduce_case`;
onnx2tf/TFLite: `reduce_tflite_case`).

Candidates, smallest first: the diagnosis's first divergent layer, then each enclosing module (its parent
scope, up to the whole model). For each, the float graph the quantizer saw (`float_source.onnx`) is cut from
the tensors entering the module's scope to its exit (onnx.utils.Extractor), PyTorch's values at that cut are
the inputs (the parity inputs, and the calibration set for calibration), and the cut is quantized alone with
the suite's exact settings. It reproduces when its error against PyTorch's output of the module, measured
alone, is within REPRODUCE_DB of what the same layer showed inside the model (its local SNR) and below
FAILING_DB: the error is the converter's on that sub-network, not something the rest of the model adds.

The repro directory holds float_subgraph.onnx, quantized_subgraph.onnx (what the converter made of it),
inputs.npz and calibration.npz (keyed by input name), expected.npy (PyTorch) and actual.npy, reproduce.py
(the converter call and the measurement, onnxruntime and numpy only) and README.md.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

REPRODUCE_DB = 3.0
FAILING_DB = 20.0  # a sub-network at or above this SNR alone is not where a failing case loses its budget
MATCH_FLOAT_DB = 60.0  # a cut whose float conversion is further than this from PyTorch is not faithful

SCRIPT = '''"""Reproduce: {case} -- {converter} on the sub-network `{module}` of {model}.

python reproduce.py   (needs onnxruntime=={ort} and numpy)
"""
import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
from onnxruntime.quantization import quantize_dynamic, quantize_static


class Reader(CalibrationDataReader):
    def __init__(self, data):
        self.items = [{{k: v[i:i + 1] for k, v in data.items()}} for i in range(len(next(iter(data.values()))))]
        self.i = 0

    def get_next(self):
        self.i += 1
        return self.items[self.i - 1] if self.i <= len(self.items) else None

    def rewind(self):
        self.i = 0


{convert}
session = ort.InferenceSession("quantized_subgraph.onnx", providers=["CPUExecutionProvider"])
inputs = dict(np.load("inputs.npz"))
n = len(next(iter(inputs.values())))
actual = np.concatenate([session.run(None, {{k: v[i:i + 1] for k, v in inputs.items()}})[0] for i in range(n)])
expected = np.load("expected.npy")
snr = 10 * np.log10(np.sum(expected ** 2) / np.sum((expected - actual.reshape(expected.shape)) ** 2))
print(f"SNR of the quantized sub-network against PyTorch: {{snr:.1f}} dB (the suite measured {snr:.1f} dB)")
'''
STATIC = ('quantize_static("float_subgraph.onnx", "quantized_subgraph.onnx", Reader(dict(np.load("calibration.npz"))),\n'
          '                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,\n'
          '                weight_type=QuantType.QInt8, reduce_range=True, calibrate_method=CalibrationMethod.MinMax)')
DYNAMIC = 'quantize_dynamic("float_subgraph.onnx", "quantized_subgraph.onnx", weight_type=QuantType.QInt8)'


def _enclosing(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(len(parts), 0, -1)]


def _cut(graph, module: str):
    """(inputs, exit tensor) of `module`'s scope in `graph`, or None when the scope hands on several tensors."""
    from diagnose.onnx_layers import module_path

    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    constants = {i for i, n in enumerate(graph.node) if n.op_type == "Constant"}
    initializers = {t.name for t in graph.initializer}
    nodes = {i for i, n in enumerate(graph.node)
             if (module_path(n.name) or "") == module or (module_path(n.name) or "").startswith(module + ".")}
    if not nodes:
        return None
    consumers: dict[str, set] = {}
    for i, n in enumerate(graph.node):
        for t in n.input:
            consumers.setdefault(t, set()).add(i)
    outputs = {o.name for o in graph.output}
    exits = [o for i in sorted(nodes) for o in graph.node[i].output if o in outputs or consumers.get(o, set()) - nodes]
    inputs = sorted({t for i in nodes for t in graph.node[i].input
                     if t and t not in initializers and producer.get(t) not in nodes | constants})
    return (inputs, exits[0]) if len(exits) == 1 else None


def reduce_case(pipeline, case, diagnosis: dict, out_dir: Path) -> dict:
    """Try the candidates (module docstring); write the repro of the first that reproduces. Returns what
    was tried and where the repro is."""
    import onnx
    import onnxruntime
    from onnx.utils import Extractor
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, \
        quantize_static

    from compare.metrics import snr_db
    from converters.formats.onnxrt import FLOAT_SOURCE_FILE
    from converters.onnx_names import CALIBRATION_FILE
    from diagnose.onnx_layers import _per_sample, _session, torch_outputs
    from models import datasets

    if case.format != "onnx" or case.precision not in ("int8", "dynamic_int8"):
        raise ValueError(f"{case.id}: reduction covers onnxruntime int8 and dynamic_int8")
    first = diagnosis.get("first_divergent_layer")
    if not first:
        raise ValueError(f"{case.id}: the diagnosis names no divergent layer; nothing to reduce")
    local = {layer["module"]: layer["local_snr_db"] for layer in diagnosis["layers"]}
    artifact = pipeline.artifact(case)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(artifact.parent / FLOAT_SOURCE_FILE)))
    net = pipeline.torch_model(case.subject)
    x = datasets.parity_inputs(case.subject)
    calibration = np.load(pipeline.calibration(case.subject) / CALIBRATION_FILE)
    order = [name for name, _ in net.named_modules() if name]
    reference, calibrated = torch_outputs(net, x, order), torch_outputs(net, calibration, order)
    tensor_of = {}  # tensor name -> module whose PyTorch output it is (matched by the diagnosis)
    for layer in diagnosis["layers"]:
        tensor_of[layer["tensor"]] = layer["module"]
    input_name = model.graph.input[0].name
    tried = []
    extractor = Extractor(model)
    for module in _enclosing(first):
        cut = _cut(model.graph, module)
        if cut is None or module not in reference:
            tried.append({"module": module, "skipped": "its scope hands on several tensors or none"})
            continue
        inputs, exit_tensor = cut
        if not all(t in tensor_of or t == input_name for t in inputs):
            tried.append({"module": module, "skipped": "an input of its scope has no PyTorch counterpart"})
            continue

        def at_cut(values, raw):
            return {t: raw if t == input_name else values[tensor_of[t]] for t in inputs}

        feeds, calib = at_cut(reference, x), at_cut(calibrated, calibration)
        out_dir.mkdir(parents=True, exist_ok=True)
        float_path, quant_path = out_dir / "float_subgraph.onnx", out_dir / "quantized_subgraph.onnx"
        onnx.save(extractor.extract_model(inputs, [exit_tensor]), str(float_path))
        if case.precision == "int8":
            quantize_static(str(float_path), str(quant_path), _Reader(calib), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=True, calibrate_method=CalibrationMethod.MinMax)
        else:
            quantize_dynamic(str(float_path), str(quant_path), weight_type=QuantType.QInt8)
        actual = _per_sample(_session(str(quant_path)), feeds)[0].reshape(reference[module].shape)
        alone = snr_db(reference[module], actual)
        as_float = snr_db(reference[module], _per_sample(_session(str(float_path)), feeds)[0].reshape(actual.shape))
        inside = local.get(module)
        row = {"module": module, "snr_alone_db": alone, "float_snr_db": as_float, "local_snr_in_model_db": inside,
               "nodes": len(onnx.load(str(float_path)).graph.node), "inputs": inputs, "exit": exit_tensor}
        tried.append(row)
        reproduces = alone < FAILING_DB and (inside is None or alone <= inside + REPRODUCE_DB)
        if reproduces:
            np.savez(out_dir / "inputs.npz", **feeds)
            np.savez(out_dir / "calibration.npz", **calib)
            np.save(out_dir / "expected.npy", reference[module])
            np.save(out_dir / "actual.npy", actual)
            converter = "onnxruntime quantize_static (QDQ)" if case.precision == "int8" else \
                "onnxruntime quantize_dynamic"
            (out_dir / "reproduce.py").write_text(SCRIPT.format(
                case=case.id, converter=converter, module=module, model=case.subject.model,
                ort=onnxruntime.__version__, snr=alone, convert=STATIC if case.precision == "int8" else DYNAMIC))
            (out_dir / "README.md").write_text(
                f"# {case.id}: reduced to `{module}`\n\n{converter}, onnxruntime {onnxruntime.__version__}. "
                f"The float sub-network ({row['nodes']} nodes, inputs {', '.join(inputs)}) quantized alone with "
                f"the suite's settings gives {alone:.1f} dB SNR against PyTorch's output of `{module}` on "
                f"{len(x)} inputs (inside the whole model the same layer measured "
                f"{'n/a' if inside is None else f'{inside:.1f}'} dB); the float sub-network itself gives {as_float:.1f} dB. "
                f"Expected: expected.npy "
                f"(PyTorch); actual: actual.npy. Run `python reproduce.py`.\n")
            (out_dir / "tried.json").write_text(json.dumps(tried, indent=1, default=float))
            return {"reproduced": module, "snr_alone_db": alone, "repro": str(out_dir), "tried": tried}
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"reproduced": None, "tried": tried}


class _Reader:
    """onnxruntime CalibrationDataReader over {input name: stacked samples}, one sample per batch."""

    def __init__(self, data: dict[str, np.ndarray]):
        n = len(next(iter(data.values())))
        self.items = [{k: np.ascontiguousarray(v[i:i + 1]) for k, v in data.items()} for i in range(n)]
        self.i = 0

    def get_next(self):
        self.i += 1
        return self.items[self.i - 1] if self.i <= len(self.items) else None

    def rewind(self):
        self.i = 0


TFLITE_SCRIPT = '''"""Reproduce: {case} -- onnx2tf {onnx2tf} on the sub-network `{module}` of {model}, run in ai-edge-litert.

python reproduce.py   (needs onnx2tf=={onnx2tf}, tensorflow, ai-edge-litert, numpy; writes ./converted/)
"""
import shutil

import numpy as np
import onnx2tf
from ai_edge_litert.interpreter import Interpreter

calibration = np.load("calibration.npy").transpose(0, 2, 3, 1).astype(np.float32)  # NCHW -> NHWC
np.save("calibration_nhwc.npy", calibration)
# onnx2tf downloads a sample file unless one of this name is in the working directory
shutil.copyfile("calibration_nhwc.npy", "calibration_image_sample_data_20x128x128x3_float32.npy")
zero, one = np.zeros((1, 1, 1, calibration.shape[-1]), np.float32), np.ones((1, 1, 1, calibration.shape[-1]), np.float32)
onnx2tf.convert(input_onnx_file_path="float_subgraph.onnx", output_folder_path="converted", output_signaturedefs=True,
                not_use_onnxsim=True, output_integer_quantized_tflite=True, quant_type="per-channel",
                custom_input_op_name_np_data_path=[["input", "calibration_nhwc.npy", zero, one]])
interpreter = Interpreter(model_path="converted/{file}")
interpreter.allocate_tensors()
x, y = interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def q(v, d):
    if np.dtype(d["dtype"]).kind == "f":
        return v.astype(d["dtype"])
    s, z = d["quantization"]
    info = np.iinfo(d["dtype"])
    return np.clip(np.round(v / s + z), info.min, info.max).astype(d["dtype"])


def dq(v, d):
    if np.dtype(d["dtype"]).kind == "f":
        return v.astype(np.float32)
    s, z = d["quantization"]
    return (v.astype(np.float32) - z) * s


inputs = np.load("inputs.npy")
actual = []
for i in range(len(inputs)):
    interpreter.set_tensor(x["index"], q(inputs[i:i + 1].transpose(0, 2, 3, 1), x))
    interpreter.invoke()
    out = dq(interpreter.get_tensor(y["index"]), y)
    actual.append(out.transpose(0, 3, 1, 2) if out.ndim == 4 else out)
actual = np.concatenate(actual)
expected = np.load("expected.npy")
snr = 10 * np.log10(np.sum(expected ** 2) / np.sum((expected - actual.reshape(expected.shape)) ** 2))
print(f"SNR of the converted sub-network against PyTorch: {{snr:.1f}} dB (the suite measured {snr:.1f} dB)")
'''


def reduce_tflite_case(pipeline, case, diagnosis: dict, out_dir: Path) -> dict:
    """The TFLite counterpart of `reduce_case`: the cut is taken from the ONNX graph onnx2tf converted (after
    the suite's onnxslim pass), renamed to one input `input`, converted with the suite's onnx2tf options
    calibrated on the float graph's values at the cut, and the same precision's TFLite file is run on those
    values and judged against PyTorch's output of the module. A cut whose float32 conversion does not
    reproduce PyTorch is not faithful and is skipped; so are cuts with several inputs (onnx2tf's calibration
    takes one input here)."""
    import onnx
    import onnx2tf
    import onnxslim
    from onnx.utils import Extractor

    from compare.metrics import snr_db
    from converters import predict, tflite_convert
    from converters.onnx_names import CALIBRATION_FILE, INPUT_NAME, ONNX_FILE
    from converters.tflite_runtime import TFLiteRunner
    from diagnose.onnx_layers import _per_sample, _session, torch_outputs
    from models import datasets

    if case.format != "tflite" or case.precision not in tflite_convert.PRECISION_FILES:
        raise ValueError(f"{case.id}: not a TFLite case")
    first = diagnosis.get("first_divergent_layer")
    if not first:
        raise ValueError(f"{case.id}: the diagnosis names no divergent layer; nothing to reduce")
    model = onnx.shape_inference.infer_shapes(onnxslim.slim(onnx.load(
        str(pipeline.entry("onnx", case.subject) / ONNX_FILE))))
    net = pipeline.torch_model(case.subject)
    x = datasets.parity_inputs(case.subject)
    calibration = np.load(pipeline.calibration(case.subject) / CALIBRATION_FILE)
    order = [name for name, _ in net.named_modules() if name]
    reference = torch_outputs(net, x, order)
    input_name = model.graph.input[0].name
    tried = []
    extractor = Extractor(model)
    for module in _enclosing(first):
        cut = _cut(model.graph, module)
        if cut is None or module not in reference:
            tried.append({"module": module, "skipped": "its scope hands on several tensors or none"})
            continue
        inputs, exit_tensor = cut
        if len(inputs) != 1:
            tried.append({"module": module, "skipped": f"{len(inputs)} inputs (onnx2tf calibrates one here)"})
            continue
        source = inputs[0]
        # the float graph's own values at the cut (PyTorch's up to round-off; a module's PyTorch output is not
        # always the tensor: a convolution's BatchNorm is folded into it at export)
        if source == input_name:
            feed, calib = x, calibration
        else:
            prefix = _session(extractor.extract_model([input_name], [source]))
            feed = _per_sample(prefix, {input_name: x})[0]
            calib = _per_sample(prefix, {input_name: calibration})[0]
        if feed.ndim != 4:
            tried.append({"module": module, "skipped": "its input is not an NCHW image tensor"})
            continue
        work = out_dir / "work"
        shutil.rmtree(work, ignore_errors=True)
        (work / "onnx").mkdir(parents=True)
        (work / "tflite").mkdir()
        sub = extractor.extract_model(inputs, [exit_tensor])
        for node in sub.graph.node:
            node.input[:] = [INPUT_NAME if t == source else t for t in node.input]
        sub.graph.input[0].name = INPUT_NAME
        onnx.save(sub, str(work / "onnx" / ONNX_FILE))
        _onnx2tf(work / "onnx" / ONNX_FILE, calib, work / "tflite")
        converted = work / "tflite" / tflite_convert.SAVED_MODEL_DIR / tflite_convert.PRECISION_FILES[case.precision]
        expected = reference[module]

        def run(path: Path) -> np.ndarray:
            flat = predict(TFLiteRunner(path), feed)
            return (flat.reshape(len(feed), *expected.shape[2:], expected.shape[1]).transpose(0, 3, 1, 2)
                    if expected.ndim == 4 else flat.reshape(expected.shape))

        actual = run(converted)
        alone = snr_db(expected, actual)
        as_float = snr_db(expected, run(converted.parent / tflite_convert.PRECISION_FILES["fp32"]))
        row = {"module": module, "snr_alone_db": alone, "float_snr_db": as_float, "nodes": len(sub.graph.node),
               "inputs": inputs, "exit": exit_tensor}
        tried.append(row)
        if as_float < MATCH_FLOAT_DB:
            row["skipped"] = (f"the float32 conversion of the cut does not reproduce PyTorch ({as_float:.1f} dB): "
                              f"the cut is not faithful, so its quantized error says nothing")
            continue
        if alone < FAILING_DB:
            onnx.save(sub, str(out_dir / "float_subgraph.onnx"))
            shutil.copyfile(converted, out_dir / converted.name)
            np.save(out_dir / "inputs.npy", feed)
            np.save(out_dir / "calibration.npy", calib)
            np.save(out_dir / "expected.npy", expected)
            np.save(out_dir / "actual.npy", actual)
            (out_dir / "reproduce.py").write_text(TFLITE_SCRIPT.format(
                case=case.id, onnx2tf=onnx2tf.__version__, module=module, model=case.subject.model,
                file=converted.name, snr=alone))
            (out_dir / "README.md").write_text(
                f"# {case.id}: reduced to `{module}`\n\nonnx2tf {onnx2tf.__version__} (per-channel integer "
                f"quantization, calibrated on the float graph's values at the cut), run in ai-edge-litert. The float "
                f"sub-network ({row['nodes']} nodes) converted alone gives {alone:.1f} dB SNR against PyTorch's "
                f"output of `{module}` on {len(feed)} inputs (its float32 conversion: {as_float:.1f} dB). Expected: expected.npy (PyTorch, NCHW); actual: "
                f"actual.npy; {converted.name} is what the suite's call made. Run `python reproduce.py`.\n")
            (out_dir / "tried.json").write_text(json.dumps(tried, indent=1, default=float))
            shutil.rmtree(work, ignore_errors=True)
            return {"reproduced": module, "snr_alone_db": alone, "repro": str(out_dir), "tried": tried}
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"reproduced": None, "tried": tried}


def _onnx2tf(onnx_path: Path, calibration_nchw: np.ndarray, out_dir: Path) -> None:
    """The suite's onnx2tf call (converters.tflite_convert) for a cut with any channel count: integer
    variants per-channel, calibrated on `calibration_nchw` used as is (mean 0, std 1)."""
    import contextlib

    import onnx2tf

    from converters.onnx_names import INPUT_NAME
    from converters.tflite_convert import ONNX2TF_SAMPLE_FILE, SAVED_MODEL_DIR

    nhwc = np.ascontiguousarray(calibration_nchw.transpose(0, 2, 3, 1), dtype=np.float32)
    path = out_dir / "calibration_nhwc.npy"
    np.save(path, nhwc)
    shutil.copyfile(path, out_dir / ONNX2TF_SAMPLE_FILE)  # never fetched from GitHub
    channels = nhwc.shape[-1]
    zero, one = np.zeros((1, 1, 1, channels), np.float32), np.ones((1, 1, 1, channels), np.float32)
    with contextlib.chdir(out_dir):  # onnx2tf looks for its sample file in the working directory
        onnx2tf.convert(input_onnx_file_path=str(onnx_path), output_folder_path=str(out_dir / SAVED_MODEL_DIR),
                        output_signaturedefs=True, not_use_onnxsim=True, output_integer_quantized_tflite=True,
                        output_dynamic_range_quantized_tflite=True, quant_type="per-channel",
                        custom_input_op_name_np_data_path=[[INPUT_NAME, str(path), zero, one]], non_verbose=True)
