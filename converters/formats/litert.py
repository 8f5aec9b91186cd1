"""LiteRT through litert-torch: Google's PyTorch->TFLite converter (the successor of ai-edge-torch), a second
PyTorch->TFLite path beside onnx2tf and independent of it: torch.export of the module, lowered by
litert-converter, no ONNX in between. Where the two TFLite paths disagree on a model, one of them is wrong
(the report's cross-path table). Steps:

  litert            litert_torch.convert(module, sample): float32, the module's own layout (NCHW in and out,
                    where onnx2tf's artifacts are NHWC)
  litert_int8       PT2E static int8, litert-torch's own recipe: torch.export, prepare_pt2e with its
                    PT2EQuantizer (per-channel symmetric int8 weights, per-tensor int8 activations from
                    histogram observers), calibrated on the suite's calibration set (the images every other
                    int8 path calibrates on), convert_pt2e, then litert_torch.convert with that quant_config.
                    The artifact has int8 input and output; the runner (de)quantizes with their parameters.
                    Calibration runs PyTorch with the training kernels pinned (models.training), so the
                    observed ranges and the artifact are the same on every x86-64 CPU.
  litert_reference  the int8 artifact's simulated reference (converters.tflite_simulation, as for onnx2tf's
                    TFLite): the fp32 artifact computing with the int8 one's stored constants and activation
                    grids, on float kernels; none where the two graphs' ops differ (`simulate`)

The runner is the TFLite one (ai-edge-litert Interpreter) without the NCHW<->NHWC transposes. Inputs are fed
by position: litert-torch names them args_0, args_1, ... in forward's order."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from converters import stored_weights, tflite_runtime, tflite_simulation
from converters.formats import CALIBRATION, Format, Step, register
from converters.formats import pytorch  # noqa: F401  (the weights step this format converts from)
from converters.onnx_names import CALIBRATION_FILE
from converters.torch_weights import WEIGHTS_FILE, load

TOOLS = ("torch", "litert-torch", "litert-converter", "ai-edge-litert", "numpy")
INT8_TOOLS = (*TOOLS, "torchao")
MODEL_FILE = "model.tflite"
REFERENCE_FILE = "reference_int8.tflite"
QUANTIZERS = ("QUANTIZE", "DEQUANTIZE")


def _module_and_sample(params: dict):
    import torch

    from models import Subject

    subject = Subject.from_params(params["subject"])
    net = load(params["subject"], Path(params["deps"]["weights"]) / WEIGHTS_FILE).eval()
    return subject, net, tuple(torch.zeros(shape) for shape in subject.input_shapes(1))


def _convert(subject, module, sample, out_dir: Path, **options) -> None:
    import litert_torch

    try:
        edge = litert_torch.convert(module, sample, **options)
    except Exception as exc:
        raise RuntimeError(f"model {subject.model!r} cannot be converted by litert-torch: {type(exc).__name__}: "
                           f"{exc}\nlitert-torch needs a forward that torch.export can capture with a fixed input "
                           "shape (no data-dependent Python control flow) and ops its lowering knows") from exc
    edge.export(str(out_dir / MODEL_FILE))


def convert(params: dict, out_dir: Path) -> None:
    subject, net, sample = _module_and_sample(params)
    _convert(subject, net, sample, out_dir)


def quantize(params: dict, out_dir: Path) -> None:
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from models.packing import split_inputs

    subject, net, sample = _module_and_sample(params)
    torch.manual_seed(0)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    try:
        graph = torch.export.export(net, sample).module()
    except Exception as exc:
        raise RuntimeError(f"model {subject.model!r}: torch.export failed ({type(exc).__name__}: {exc}); PT2E "
                           "quantization needs a forward torch.export can capture") from exc
    graph = prepare_pt2e(graph, quantizer)
    data = np.load(Path(params["deps"][CALIBRATION]) / CALIBRATION_FILE)
    shapes = subject.sample_shapes()
    with torch.no_grad():
        for row in data:
            graph(*(torch.from_numpy(np.ascontiguousarray(a)) for a in split_inputs(row[None], shapes)))
    graph = convert_pt2e(graph, fold_quantize=False)
    _convert(subject, graph, sample, out_dir, quant_config=QuantConfig(pt2e_quantizer=quantizer))


def simulate(params: dict, out_dir: Path) -> None:
    """The int8 artifact's simulated reference (converters.tflite_simulation.simulated), with its worst
    stored constant against the float value it stands for beside it. The simulation pairs the two graphs'
    ops by data flow, so it stands for the int8 artifact only where both graphs have the same ops (QUANTIZE
    and DEQUANTIZE aside). onnx2tf writes both from one graph; litert-torch lowers the float module and the
    PT2E graph separately, and on some models differently: MobileNetV3's hard-sigmoid gate has its +3 folded
    into the convolution's bias at fp32 and kept as an ADD at int8, EfficientNet-Lite0 and MobileNetV1 gain
    TRANSPOSE and PAD ops at int8. There the reference would pair unlike constants (measured 4e4-6e5 steps
    apart on MobileNetV3), so none is written: the .json says why, and the case is judged without one."""
    from tensorflow.lite.tools import flatbuffer_utils

    float_path = Path(params["deps"]["litert"]) / MODEL_FILE
    int8_path = Path(params["deps"]["litert_int8"]) / MODEL_FILE
    checks = out_dir / REFERENCE_FILE.replace(".tflite", ".json")
    differ = _op_difference(float_path, int8_path)
    if differ:
        checks.write_text(json.dumps({"unavailable": f"the int8 graph's ops are not the float graph's ({differ}): "
                                                     "a simulation that pairs them would not stand for it"}))
        return
    model, error, tensor = tflite_simulation.simulated(float_path, int8_path)
    flatbuffer_utils.write_model(model, str(out_dir / REFERENCE_FILE))
    checks.write_text(json.dumps({"constant_error_steps": error, "worst_constant": tensor}))


def _op_difference(float_path: Path, int8_path: Path) -> str:
    """The ops one graph has and the other lacks, QUANTIZE and DEQUANTIZE aside ("" where none)."""
    from collections import Counter

    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def ops(path: Path) -> Counter:
        model = flatbuffer_utils.read_model(str(path))
        codes = (tflite_simulation._opcode(model, op) for graph in model.subgraphs for op in graph.operators)
        return Counter(name for name in (names.get(c, str(c)) for c in codes) if name not in QUANTIZERS)

    f, q = ops(float_path), ops(int8_path)
    parts = [f"int8 only: {dict(q - f)}"] * bool(q - f) + [f"fp32 only: {dict(f - q)}"] * bool(f - q)
    return "; ".join(parts)


class LiteRtRunner(tflite_runtime.TFLiteRunner):
    """The TFLite runner on a litert-torch artifact: the module's own NCHW layout, inputs in forward's order."""

    NHWC = False

    def ordered_inputs(self, subject_params: dict | None) -> tuple[list[dict], list[tuple[int, ...]] | None]:
        import re

        from models import Subject

        details = self.interpreter.get_input_details()
        if len(details) == 1:
            return details, None
        shapes = Subject.from_params(subject_params).sample_shapes() if subject_params else None
        if shapes is None or len(shapes) != len(details):
            raise RuntimeError(f"a TFLite model with {len(details)} inputs needs its subject's declared inputs")
        by_index = {d["index"]: d for d in details}
        for signature in getattr(self.interpreter, "_get_full_signature_list", lambda: {})().values():
            inputs = signature.get("inputs", {})  # litert-torch names them args_0, args_1, ... in forward's order
            if set(inputs.values()) == set(by_index) and all(re.fullmatch(r"args_\d+", n) for n in inputs):
                return [by_index[inputs[n]] for n in sorted(inputs, key=lambda n: int(n.split("_")[1]))], shapes
        raise RuntimeError(f"a litert-torch model's inputs are named args_0, args_1, ... in its signature; found "
                           f"{[d['name'] for d in details]}")


def reference_runner(path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
    """Runs the simulated reference with TFLite's builtin float kernels (no XNNPACK rewrites)."""
    return LiteRtRunner(path, subject_params, threads, optimized=False)


def _pinned_env() -> dict:
    from models import training

    return dict(training.DETERMINISTIC_ENV)


CONVERT = Step("litert", convert, needs=("weights",), tools=TOOLS)
QUANTIZE = Step("litert_int8", quantize, needs=("weights", CALIBRATION), tools=INT8_TOOLS, env=_pinned_env(),
                fresh_interpreter=True, options={"quantizer": "symmetric per-channel, static", "observer": "histogram"})
SIMULATE = Step("litert_reference", simulate, needs=("litert", "litert_int8"), tools=(*INT8_TOOLS, "tensorflow"))
register(Format("litert", {"fp32": ("litert", MODEL_FILE), "int8": ("litert_int8", MODEL_FILE)}, LiteRtRunner,
                steps=(CONVERT, QUANTIZE, SIMULATE), references={"int8": ("litert_reference", REFERENCE_FILE)},
                reference_runner=reference_runner, requires=("litert_torch", "torchao"),
                install_hint="tox -e litert, or pip install -c constraints.txt -e '.[litert]' (~2.1 GB: jax, "
                             "transformers)",
                weights=stored_weights.tflite_weights, scales=stored_weights.tflite_activation_scales))
