"""OpenVINO: Intel's path, straight from PyTorch. Steps:

  openvino       ov.convert_model(module, example_input=...): OpenVINO's own PyTorch frontend (TorchScript
                 tracing), independent of the ONNX export, so where it and onnx-fp32 disagree one of the two
                 exporters is wrong. Inputs and outputs are renamed to the declared names and the IR is saved
                 with compress_to_fp16=False: save_model's default stores every weight in fp16, an "fp32"
                 artifact that is not.
  openvino_int8  NNCF post-training quantization of that IR on the suite's calibration set (the same images
                 onnx-int8 and tflite-int8 calibrate on): nncf.quantize's defaults (symmetric int8
                 activations whose range is the mean over samples of each sample's min/max, per-channel
                 weights, fast bias correction) with one change, overflow_fix=ENABLE: every layer's weights
                 in 7 bits, so that no CPU's int8 kernels saturate. With the default (the first layer only)
                 CPUs without VNNI (AVX2: u8 x s8 pairs summed in saturating int16, vpmaddubsw) compute the
                 same artifact differently: measured on efficientnet_lite0, 15.1 dB SNR on AVX-512 VNNI and
                 8.0 dB under ONEDNN_MAX_CPU_ISA=AVX2, a verdict that would depend on the CPU; with
                 overflow_fix=ENABLE 14.1 dB on both. `python -m scripts.nncf_levers` measures each lever.
  openvino_qat   a QAT subject's int8: its QDQ ONNX (onnx_qat) through OpenVINO's ONNX frontend, the
                 learned scales as FakeQuantize ranges (OpenVINO's documented path for QAT models)

The runner is an OpenVINO CPU CompiledModel with INFERENCE_PRECISION_HINT = f32 on every precision: the
default is bf16 on CPUs that have it (measured: 3e-4 off PyTorch on a small net; f32 7e-9), so without the
hint an "fp32" verdict would depend on the CPU. The runner refuses to run if the compiled model reports any
other inference precision. Both conversion steps run with CI=true, which turns OpenVINO's and NNCF's
telemetry off (their `disable_in_ci`); nothing else reaches the network."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters import stored_weights
from converters.formats import CALIBRATION, Format, Step, register
from converters.formats import onnxrt  # noqa: F401  (onnx_qat, the QDQ graph a QAT subject's int8 reads)
from converters.formats import pytorch  # noqa: F401  (the weights step this format converts from)
from converters.onnx_names import CALIBRATION_FILE, OUTPUT_NAME
from converters.torch_weights import WEIGHTS_FILE, load

TOOLS = ("torch", "openvino", "numpy")
INT8_TOOLS = (*TOOLS, "nncf")
IR_FILE = "model.xml"  # beside it model.bin, the weights
ENV = {"CI": "true"}  # OpenVINO's and NNCF's telemetry: off in CI (disable_in_ci=True in both)
PRECISION_HINT = "f32"


def _names(subject) -> tuple[list[str], list[str]]:
    return subject.input_names(), ([o.name for o in subject.outputs] if subject.user else [OUTPUT_NAME])


def convert(params: dict, out_dir: Path) -> None:
    import openvino as ov
    import torch

    from models import Subject

    subject = Subject.from_params(params["subject"])
    net = load(params["subject"], Path(params["deps"]["weights"]) / WEIGHTS_FILE).eval()
    example = tuple(torch.zeros(shape) for shape in subject.input_shapes(1))
    try:
        model = ov.convert_model(net, example_input=example[0] if len(example) == 1 else example,
                                 input=[list(s) for s in subject.input_shapes(1)])
    except Exception as exc:
        raise RuntimeError(f"model {subject.model!r} cannot be converted by OpenVINO's PyTorch frontend "
                           f"(ov.convert_model): {type(exc).__name__}: {exc}\nThe forward must be traceable with a "
                           "fixed input shape (torch.jit.trace)") from exc
    inputs, outputs = _names(subject)
    if len(model.inputs) != len(inputs) or len(model.outputs) != len(outputs):
        raise RuntimeError(f"model {subject.model!r}: OpenVINO's graph has {len(model.inputs)} inputs and "
                           f"{len(model.outputs)} outputs, declared {len(inputs)} and {len(outputs)}: every "
                           "declared input must be used by forward, in its order")
    for port, name in [*zip(model.inputs, inputs), *zip(model.outputs, outputs)]:
        port.get_tensor().set_names({name})
    ov.save_model(model, str(out_dir / IR_FILE), compress_to_fp16=False)


def dataset(subject, data: np.ndarray):
    """An nncf.Dataset over packed NCHW rows, fed to the model by input name."""
    import nncf

    from models.packing import split_inputs

    inputs, shapes = subject.input_names(), subject.sample_shapes()
    return nncf.Dataset(list(data), lambda row: dict(zip(inputs, split_inputs(row[None], shapes))))


def levers() -> dict:
    """nncf.quantize keyword arguments by name. `suite` is what the suite converts with: NNCF's defaults
    with overflow_fix=ENABLE (every layer's weights in 7 bits, NNCF's setting for CPUs without VNNI). The
    others change one thing from it; `nncf_defaults` is nncf.quantize with no arguments, whose artifact
    computes differently on CPUs with and without VNNI (scripts.nncf_levers measures each)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    def suite(**advanced) -> dict:
        return {"advanced_parameters": AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE, **advanced)}

    return {"suite": suite(), "nncf_defaults": {},
            "minmax_activations": suite(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX),
            "mixed_preset": {**suite(), "preset": nncf.QuantizationPreset.MIXED},
            "no_bias_correction": suite(disable_bias_correction=True)}


def quantize(params: dict, out_dir: Path) -> None:
    import nncf
    import openvino as ov

    from models import Subject

    subject = Subject.from_params(params["subject"])
    model = ov.Core().read_model(str(Path(params["deps"]["openvino"]) / IR_FILE))
    data = np.load(Path(params["deps"][CALIBRATION]) / CALIBRATION_FILE)
    quantized = nncf.quantize(model, dataset(subject, data), subset_size=len(data),
                              **levers()[params["options"]["nncf"]])
    ov.save_model(quantized, str(out_dir / IR_FILE), compress_to_fp16=False)


def convert_qat(params: dict, out_dir: Path) -> None:
    """A QAT subject's QDQ ONNX (onnx_qat) read by OpenVINO's ONNX frontend: each QuantizeLinear/
    DequantizeLinear pair becomes a FakeQuantize with the learned range, and the CPU plugin runs the
    convolutions in int8 with it. Nothing is calibrated again."""
    import openvino as ov

    from converters.onnx_names import ONNX_FILE
    from models import Subject

    subject = Subject.from_params(params["subject"])
    model = ov.convert_model(str(Path(params["deps"]["onnx_qat"]) / ONNX_FILE))
    inputs, outputs = _names(subject)
    for port, name in [*zip(model.inputs, inputs), *zip(model.outputs, outputs)]:
        port.get_tensor().set_names({name})
    ov.save_model(model, str(out_dir / IR_FILE), compress_to_fp16=False)


class OpenVinoRunner:
    """An OpenVINO CPU CompiledModel: one stream, `threads` inference threads, f32 inference precision.
    `invoke` (InferRequest.infer on tensors set beforehand) is the only timed call. optimized=False runs
    the same way: OpenVINO has no switch that turns its optimized kernels off."""

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
        import openvino as ov

        config = {"INFERENCE_PRECISION_HINT": PRECISION_HINT, "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                  "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        ran = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        if ran != ov.Type.f32:
            raise RuntimeError(f"OpenVINO compiled {path} with inference precision {ran}, asked {PRECISION_HINT}: "
                               "its verdicts would depend on the CPU")
        self.threads = threads
        self.request = self.compiled.create_infer_request()
        self.inputs = [(p.get_any_name(), tuple(p.get_partial_shape().to_shape())[1:]) for p in self.compiled.inputs]
        if subject_params is not None:
            from models import Subject

            declared = Subject.from_params(subject_params).input_names()
            if sorted(declared) != sorted(n for n, _ in self.inputs):
                raise RuntimeError(f"{path}: inputs {[n for n, _ in self.inputs]}, declared {declared}")

    def set_input(self, x: np.ndarray) -> None:
        import openvino as ov

        from converters.formats.onnxrt import feed

        for name, array in feed(x, self.inputs).items():
            self.request.set_tensor(name, ov.Tensor(np.ascontiguousarray(array, dtype=np.float32)))

    def invoke(self) -> None:
        self.request.infer()

    def get_output(self):
        outs = [self.request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))]
        return outs[0] if len(outs) == 1 else outs


CONVERT = Step("openvino", convert, needs=("weights",), tools=TOOLS, env=ENV,
               options={"compress_to_fp16": False})
QUANTIZE = Step("openvino_int8", quantize, needs=("openvino", CALIBRATION), tools=INT8_TOOLS, env=ENV,
                options={"nncf": "suite"})
QAT = Step("openvino_qat", convert_qat, needs=("onnx_qat",), tools=(*TOOLS, "onnx"), env=ENV,
           options={"compress_to_fp16": False})
register(Format("openvino", {"fp32": ("openvino", IR_FILE), "int8": ("openvino_int8", IR_FILE)},
                OpenVinoRunner, steps=(CONVERT, QUANTIZE, QAT), requires=("openvino", "nncf"),
                install_hint="pip install -c constraints.txt -e '.[openvino]'",
                weights=stored_weights.openvino_weights, qat_artifacts={"int8": ("openvino_qat", IR_FILE)},
                scales=stored_weights.openvino_activation_scales))
