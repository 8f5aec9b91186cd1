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

import inspect
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
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
from onnxruntime.quantization import quantize_dynamic, quantize_static


{reader}

{convert}
session = ort.InferenceSession("quantized_subgraph.onnx", providers=["CPUExecutionProvider"])
inputs = dict(np.load("inputs.npz"))
n = len(next(iter(inputs.values())))
actual = np.concatenate([session.run(None, {{k: v[i:i + 1] for k, v in inputs.items()}})[0] for i in range(n)])
expected = np.load("expected.npy")
snr = 10 * np.log10(np.sum(expected ** 2) / np.sum((expected - actual.reshape(expected.shape)) ** 2))
print(f"SNR of the quantized sub-network against PyTorch: {{snr:.1f}} dB (the suite measured {snr:.1f} dB)")
'''
STATIC = ('quantize_static("float_subgraph.onnx", "quantized_subgraph.onnx", _Reader(dict(np.load("calibration.npz"))),\n'
          '                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,\n'
          '                weight_type=QuantType.QInt8, reduce_range=True, calibrate_method=CalibrationMethod.MinMax)')
DYNAMIC = 'quantize_dynamic("float_subgraph.onnx", "quantized_subgraph.onnx", weight_type=QuantType.QInt8)'


def _enclosing(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(len(parts), 0, -1)]


def _cut(graph, modules: list[str]):
    """(inputs, exit tensor) of the scopes of `modules` together, or None when they hand on several tensors."""
    from diagnose.onnx_layers import module_path

    def inside(name: str) -> bool:
        path = module_path(name) or ""
        return any(path == m or path.startswith(m + ".") for m in modules)

    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    constants = {i for i, n in enumerate(graph.node) if n.op_type == "Constant"}
    initializers = {t.name for t in graph.initializer}
    nodes = {i for i, n in enumerate(graph.node) if inside(n.name)}
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


def _first_divergent(case, diagnosis: dict) -> str:
    first = diagnosis.get("first_divergent_layer")
    if not first:
        raise ValueError(f"{case.id}: the diagnosis names no divergent layer; nothing to reduce")
    return first


def _reduce(first: str, graph, order: list[str], reference: dict, attempt_cut, tried: list[dict],
            out_dir: Path) -> dict:
    """Search the candidates around `first` (`_search`), trying each usable cut with
    attempt_cut(modules, label, inputs, exit tensor), and keep the smallest that reproduces (`_finish`)."""
    def attempt(modules: list[str]) -> bool:
        cut = _usable_cut(graph, modules, reference, tried)
        return cut is not None and attempt_cut(modules, _label(modules), *cut)

    return _finish(_search(first, order, attempt, tried), tried, out_dir)


def _usable_cut(graph, modules: list[str], reference: dict, tried: list[dict]):
    """`_cut`, recorded as skipped in `tried` when the scopes hand on several tensors or PyTorch has no
    output for the last module."""
    cut = _cut(graph, modules)
    if cut is None or modules[-1] not in reference:
        tried.append({"module": _label(modules), "skipped": "its scope hands on several tensors or none"})
        return None
    return cut


def _label(modules: list[str]) -> str:
    return modules[0] if len(modules) == 1 else f"{modules[0]}..{modules[-1]}"


def _search(first: str, order: list[str], attempt_cut, tried: list[dict]) -> list[str] | None:
    """The smallest contiguous sub-network around `first` for which attempt(modules) is true: the module
    itself, then each enclosing module; where one is a numbered block of a sequence (`features.7`), the runs
    of blocks starting there (features.7..features.8, ..7..10, ..7..14: doubling, then bisected down to the
    shortest run that still reproduces). A cut that breaks is recorded in `tried` as skipped."""
    def attempt(modules: list[str]) -> bool:
        try:
            return attempt_cut(modules)
        except Exception as exc:  # noqa: BLE001 - one cut that cannot be made or run does not end the search
            tried.append({"module": _label(modules), "skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            return False

    chain = _enclosing(first)
    k = 0
    while k < len(chain):
        module = chain[k]
        if attempt([module]):
            return [module]
        parent, _, index = module.rpartition(".")
        if parent and index.isdigit():
            blocks = sorted(int(m.rpartition(".")[2]) for m in order
                            if m.rpartition(".")[0] == parent and m.rpartition(".")[2].isdigit())
            start, last = int(index), blocks[-1]

            def run(end: int) -> list[str]:
                return [f"{parent}.{n}" for n in range(start, end + 1)]

            lo, hi, step = start, None, 1
            while lo < last:
                end = min(start + step, last)
                if attempt(run(end)):
                    hi = end
                    break
                lo, step = end, step * 2
            if hi is not None:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if attempt(run(mid)):
                        hi = mid
                    else:
                        lo = mid
                return run(hi)
            k = chain.index(parent) if parent in chain else k + 1
            continue
        k += 1
    return None


def _inputs(pipeline, case, model):
    """What both reductions start from: the parity inputs, the calibration set, the module order, PyTorch's
    output of every module on the parity inputs, the float graph's input name and an Extractor over it."""
    from onnx.utils import Extractor

    from converters.onnx_names import CALIBRATION_FILE
    from diagnose.onnx_layers import torch_outputs
    from models import datasets

    net = pipeline.torch_model(case.subject)
    x = datasets.parity_inputs(case.subject)
    order = [name for name, _ in net.named_modules() if name]
    return (x, np.load(pipeline.calibration(case.subject) / CALIBRATION_FILE), order, torch_outputs(net, x, order),
            model.graph.input[0].name, Extractor(model))


def _at_cut(extractor, input_name: str, inputs: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """The float graph's own values of `inputs` for model inputs `x` (PyTorch's up to round-off; a module's
    PyTorch output is not always such a tensor: a convolution's BatchNorm is folded into it at export)."""
    from diagnose.onnx_layers import _per_sample, _session

    inner = [t for t in inputs if t != input_name]
    found = dict(zip(inner, _per_sample(_session(extractor.extract_model([input_name], inner)),
                                        {input_name: x}))) if inner else {}
    return {t: x if t == input_name else found[t] for t in inputs}


def reduce_case(pipeline, case, diagnosis: dict, out_dir: Path) -> dict:
    """Search the candidates (module docstring, `_search`) and write the repro of the smallest that
    reproduces. Returns what was tried and where the repro is."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, \
        quantize_static

    from compare.metrics import snr_db
    from converters.formats.onnxrt import FLOAT_SOURCE_FILE
    from diagnose.onnx_layers import _per_sample, _session

    if case.format != "onnx" or case.precision not in ("int8", "dynamic_int8"):
        raise ValueError(f"{case.id}: reduction covers onnxruntime int8 and dynamic_int8")
    first = _first_divergent(case, diagnosis)
    local = {layer["module"]: layer["local_snr_db"] for layer in diagnosis["layers"]}
    model = onnx.shape_inference.infer_shapes(onnx.load(str(pipeline.artifact(case).parent / FLOAT_SOURCE_FILE)))
    x, calibration, order, reference, input_name, extractor = _inputs(pipeline, case, model)
    converter = "onnxruntime quantize_static (QDQ)" if case.precision == "int8" else "onnxruntime quantize_dynamic"
    tried: list[dict] = []

    def attempt(modules: list[str], label: str, inputs: list[str], exit_tensor: str) -> bool:
        feeds, calib = _at_cut(extractor, input_name, inputs, x), _at_cut(extractor, input_name, inputs, calibration)
        work = out_dir.parent / f".{out_dir.name}-{len(tried)}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        float_path, quant_path = work / "float_subgraph.onnx", work / "quantized_subgraph.onnx"
        onnx.save(extractor.extract_model(inputs, [exit_tensor]), str(float_path))
        if case.precision == "int8":
            quantize_static(str(float_path), str(quant_path), _Reader(calib), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=True, calibrate_method=CalibrationMethod.MinMax)
        else:
            quantize_dynamic(str(float_path), str(quant_path), weight_type=QuantType.QInt8)
        expected = reference[modules[-1]]
        actual = _per_sample(_session(str(quant_path)), feeds)[0].reshape(expected.shape)
        alone = snr_db(expected, actual)
        as_float = snr_db(expected, _per_sample(_session(str(float_path)), feeds)[0].reshape(expected.shape))
        inside = local.get(label)
        row = {"module": label, "snr_alone_db": alone, "float_snr_db": as_float, "local_snr_in_model_db": inside,
               "nodes": len(onnx.load(str(float_path)).graph.node), "inputs": inputs, "exit": exit_tensor}
        tried.append(row)
        if as_float < MATCH_FLOAT_DB:
            row["skipped"] = f"its float sub-graph does not reproduce PyTorch ({as_float:.1f} dB): not faithful"
            shutil.rmtree(work)
            return False
        if not (alone < FAILING_DB and (inside is None or alone <= inside + REPRODUCE_DB)):
            shutil.rmtree(work)
            return False
        np.savez(work / "inputs.npz", **feeds)
        np.savez(work / "calibration.npz", **calib)
        np.save(work / "expected.npy", expected)
        np.save(work / "actual.npy", actual)
        (work / "reproduce.py").write_text(SCRIPT.format(
            case=case.id, converter=converter, module=label, model=case.subject.model,
            ort=onnxruntime.__version__, snr=alone, convert=STATIC if case.precision == "int8" else DYNAMIC,
            reader=inspect.getsource(_Reader)))
        (work / "README.md").write_text(
            f"# {case.id}: reduced to `{label}`\n\n{converter}, onnxruntime {onnxruntime.__version__}. The float "
            f"sub-network ({row['nodes']} nodes, inputs {', '.join(inputs)}) quantized alone with the suite's "
            f"settings gives {alone:.1f} dB SNR against PyTorch's output of `{modules[-1]}` on {len(x)} inputs "
            f"(inside the whole model the same layer measured {'n/a' if inside is None else f'{inside:.1f}'} dB "
            f"locally); the float sub-network itself gives {as_float:.1f} dB. Expected: expected.npy (PyTorch); "
            f"actual: actual.npy. Run `python reproduce.py`.\n")
        return True

    return _reduce(first, model.graph, order, reference, attempt, tried, out_dir)


def _finish(found: list[str] | None, tried: list[dict], out_dir: Path) -> dict:
    """Keep the smallest reproducing candidate's directory as `out_dir`, drop the others."""
    label = _label(found) if found else None
    kept = None
    for k, row in enumerate(tried):
        work = out_dir.parent / f".{out_dir.name}-{k}"
        if label and row["module"] == label and work.is_dir():
            kept = work
        elif work.is_dir():
            shutil.rmtree(work)
    if kept is None:
        return {"reproduced": None, "tried": tried}
    shutil.rmtree(out_dir, ignore_errors=True)
    kept.rename(out_dir)
    (out_dir / "tried.json").write_text(json.dumps(tried, indent=1, default=float))
    row = next(r for r in tried if r["module"] == label)
    return {"reproduced": label, "snr_alone_db": row["snr_alone_db"], "repro": str(out_dir), "tried": tried}


class _Reader:
    """onnxruntime CalibrationDataReader over {input name: stacked samples}, one sample per batch (also
    written verbatim into each repro's reproduce.py, which must run without this suite)."""

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

    from compare.metrics import snr_db
    from converters import predict, tflite_convert
    from converters.onnx_names import INPUT_NAME, ONNX_FILE
    from converters.tflite_runtime import TFLiteRunner

    if case.format != "tflite" or case.precision not in tflite_convert.PRECISION_FILES:
        raise ValueError(f"{case.id}: not a TFLite case")
    first = _first_divergent(case, diagnosis)
    model = onnx.shape_inference.infer_shapes(onnxslim.slim(onnx.load(
        str(pipeline.entry("onnx", case.subject) / ONNX_FILE))))
    x, calibration, order, reference, input_name, extractor = _inputs(pipeline, case, model)
    tried: list[dict] = []

    def attempt(modules: list[str], label: str, inputs: list[str], exit_tensor: str) -> bool:
        if len(inputs) != 1:
            tried.append({"module": label, "skipped": f"{len(inputs)} inputs (onnx2tf calibrates one here)"})
            return False
        feed = _at_cut(extractor, input_name, inputs, x)[inputs[0]]
        calib = _at_cut(extractor, input_name, inputs, calibration)[inputs[0]]
        expected = reference[modules[-1]]
        if feed.ndim != 4:
            tried.append({"module": label, "skipped": "its input is not an NCHW image tensor"})
            return False
        work = out_dir.parent / f".{out_dir.name}-{len(tried)}"
        shutil.rmtree(work, ignore_errors=True)
        (work / "converted").mkdir(parents=True)
        sub = extractor.extract_model(inputs, [exit_tensor])
        for node in sub.graph.node:
            node.input[:] = [INPUT_NAME if t == inputs[0] else t for t in node.input]
        sub.graph.input[0].name = INPUT_NAME
        onnx.save(sub, str(work / "float_subgraph.onnx"))
        onnx.save(sub, str(work / "converted" / ONNX_FILE))  # onnx2tf names its outputs after the file's stem
        files = work / "converted" / tflite_convert.SAVED_MODEL_DIR
        try:
            _onnx2tf(work / "converted" / ONNX_FILE, calib, work / "converted")
        except Exception as exc:  # noqa: BLE001 - a cut onnx2tf cannot convert is skipped, not fatal
            tried.append({"module": label, "skipped": f"onnx2tf failed on the cut: {str(exc).splitlines()[0][:200]}"})
            shutil.rmtree(work)
            return False
        missing = [f for f in (case.precision, "fp32") if not (files / tflite_convert.PRECISION_FILES[f]).is_file()
                   or (files / tflite_convert.PRECISION_FILES[f]).stat().st_size == 0]
        if missing:
            tried.append({"module": label, "skipped": f"onnx2tf wrote no {' or '.join(missing)} model for the cut"})
            shutil.rmtree(work)
            return False

        def run(path: Path) -> np.ndarray:
            flat = predict(TFLiteRunner(path), feed)
            return (flat.reshape(len(feed), *expected.shape[2:], expected.shape[1]).transpose(0, 3, 1, 2)
                    if expected.ndim == 4 else flat.reshape(expected.shape))

        converted = files / tflite_convert.PRECISION_FILES[case.precision]
        actual = run(converted)
        alone = snr_db(expected, actual)
        as_float = snr_db(expected, run(files / tflite_convert.PRECISION_FILES["fp32"]))
        row = {"module": label, "snr_alone_db": alone, "float_snr_db": as_float, "nodes": len(sub.graph.node),
               "inputs": inputs, "exit": exit_tensor}
        tried.append(row)
        if as_float < MATCH_FLOAT_DB or alone >= FAILING_DB:
            if as_float < MATCH_FLOAT_DB:
                row["skipped"] = (f"the float32 conversion of the cut does not reproduce PyTorch "
                                  f"({as_float:.1f} dB): not faithful, so its quantized error says nothing")
            shutil.rmtree(work)
            return False
        shutil.copyfile(converted, work / converted.name)
        shutil.rmtree(work / "converted")
        np.save(work / "inputs.npy", feed)
        np.save(work / "calibration.npy", calib)
        np.save(work / "expected.npy", expected)
        np.save(work / "actual.npy", actual)
        (work / "reproduce.py").write_text(TFLITE_SCRIPT.format(
            case=case.id, onnx2tf=onnx2tf.__version__, module=label, model=case.subject.model,
            file="float_subgraph" + converted.name.removeprefix(Path(ONNX_FILE).stem), snr=alone))
        (work / "README.md").write_text(
            f"# {case.id}: reduced to `{label}`\n\nonnx2tf {onnx2tf.__version__} (per-channel integer "
            f"quantization, calibrated on the float graph's values at the cut), run in ai-edge-litert. The "
            f"float sub-network ({row['nodes']} nodes) converted alone gives {alone:.1f} dB SNR against "
            f"PyTorch's output of `{modules[-1]}` on {len(feed)} inputs (its float32 conversion: "
            f"{as_float:.1f} dB). Expected: expected.npy (PyTorch, NCHW); actual: actual.npy; {converted.name} "
            f"is what the suite's options made. Run `python reproduce.py`.\n")
        return True

    return _reduce(first, model.graph, order, reference, attempt, tried, out_dir)


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
