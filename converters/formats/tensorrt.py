"""TensorRT: NVIDIA's GPU inference engine, the QAT seed's deployment target. Engines are built from the
suite's ONNX export with Polygraphy (NVIDIA's own tool around the TensorRT builder and ONNX parser), one per
precision, and run with Polygraphy's TrtRunner. Steps:

  tensorrt        fp32 engine from the `onnx` step's graph, TF32 off (TensorRT turns it on by default on
                  Ampere and later: a 10-bit mantissa in every convolution, an "fp32" that is not)
  tensorrt_fp16   the same graph with FP16 kernels allowed (the builder picks per layer)
  tensorrt_qdq    the ONNX graph quantized for TensorRT's explicit int8 (onnxruntime.quantization on the
                  suite's calibration set, the images every other int8 path calibrates on): QDQ nodes,
                  symmetric int8 activations and per-channel symmetric int8 weights (TensorRT takes zero
                  points of 0 only), float biases. onnx-int8's graph (u8 activations with zero points, int32
                  biases) is not one TensorRT builds. Runs on the CPU; its simulated reference is onnx-int8's
                  (converters.formats.onnxrt.simulate) and is the int8 cases' reference.
  tensorrt_int8   the engine TensorRT builds from that QDQ graph with INT8 (and FP16) kernels allowed

Engines are specific to the GPU and TensorRT version they were built with: the GPU's name, compute
capability and driver are part of every engine step's key. The format needs an NVIDIA GPU; where there is
none its cases are skipped saying so (`available`). It is never in CI (CI machines have no GPU)."""
from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from converters.formats import CALIBRATION, Format, Step, onnxrt, register
from converters.onnx_names import CALIBRATION_FILE, ONNX_FILE

ENGINE_FILE = "model.engine"
TOOLS = ("tensorrt", "polygraphy", "numpy")
QDQ_TOOLS = ("onnx", "onnxruntime", "numpy")
INSTALL_HINT = ("pip install -c constraints.txt -e '.[tensorrt]' on a machine with an NVIDIA GPU and driver "
                "(TensorRT's libraries come from pypi.nvidia.com)")


@lru_cache(maxsize=1)
def gpu() -> str:
    """The GPU engines are built for: 'name, compute capability, driver' of GPU 0, or "" where nvidia-smi
    finds none."""
    if shutil.which("nvidia-smi") is None:
        return ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader",
                              "--id=0"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def available() -> str:
    return "" if gpu() else ("format tensorrt needs an NVIDIA GPU (nvidia-smi finds none here); its cases run on a "
                             "machine with one, never in CI")


def quantize_qdq(params: dict, out_dir: Path) -> None:
    """TensorRT's explicit-quantization graph: QDQ, int8 activations and weights, both symmetric, per-channel
    weights, MinMax calibration, biases left float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static as qs

    pre = onnxrt._preprocessed(params, out_dir)
    calibration = Path(params["deps"][CALIBRATION]) / CALIBRATION_FILE
    qs(str(pre), str(out_dir / ONNX_FILE), onnxrt._Calibration(calibration, pre),
       quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
       weight_type=QuantType.QInt8, reduce_range=False, calibrate_method=CalibrationMethod.MinMax,
       extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})


def build_engine(params: dict, out_dir: Path) -> None:
    from polygraphy.backend.trt import CreateConfig, engine_bytes_from_network, network_from_onnx_path

    options = params["options"]
    source = Path(params["deps"][options["from"]]) / ONNX_FILE
    try:
        network = network_from_onnx_path(str(source))
        config = CreateConfig(tf32=False, fp16=options["fp16"], int8=options["int8"])
        engine = engine_bytes_from_network(network, config=config)
    except Exception as exc:
        raise RuntimeError(f"TensorRT could not build a {options['precision']} engine from {source.name}: "
                           f"{type(exc).__name__}: {exc}") from exc
    (out_dir / ENGINE_FILE).write_bytes(bytes(engine))


class TensorRtRunner:
    """Polygraphy's TrtRunner on a serialized engine, batch 1. `invoke` (infer: host->device copy, the
    engine, device->host copy) is the only timed call; `threads` and `optimized` do not apply to a GPU
    engine."""

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
        from polygraphy.backend.common import bytes_from_path
        from polygraphy.backend.trt import TrtRunner, engine_from_bytes

        self.threads = threads
        self.runner = TrtRunner(engine_from_bytes(bytes_from_path(str(path))))
        self.runner.activate()
        self.inputs = [(name, tuple(meta.shape[1:])) for name, meta in self.runner.get_input_metadata().items()]
        self._feed = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        self._feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in onnxrt.feed(x, self.inputs).items()}

    def invoke(self) -> None:
        self._y = self.runner.infer(feed_dict=self._feed, copy_outputs_to_host=True)

    def get_output(self):
        outs = [np.asarray(v, dtype=np.float32) for v in self._y.values()]
        return outs[0] if len(outs) == 1 else outs

    def __del__(self):
        runner = getattr(self, "runner", None)
        if runner is not None and getattr(runner, "is_active", False):
            runner.deactivate()


def _engine_step(name: str, source: str, precision: str, fp16: bool, int8: bool) -> Step:
    return Step(name, build_engine, needs=(source,), tools=TOOLS,
                options={"from": source, "precision": precision, "fp16": fp16, "int8": int8, "gpu": gpu()})


FP32 = _engine_step("tensorrt", "onnx", "fp32", fp16=False, int8=False)
FP16 = _engine_step("tensorrt_fp16", "onnx", "fp16", fp16=True, int8=False)
QDQ = Step("tensorrt_qdq", quantize_qdq, needs=("onnx", CALIBRATION), tools=QDQ_TOOLS)
SIM = Step("tensorrt_qdq_reference", onnxrt.simulate, needs=("tensorrt_qdq",), tools=QDQ_TOOLS,
           options={"of": "tensorrt_qdq"})
INT8 = _engine_step("tensorrt_int8", "tensorrt_qdq", "int8", fp16=True, int8=True)
register(Format("tensorrt", {"fp32": ("tensorrt", ENGINE_FILE), "fp16": ("tensorrt_fp16", ENGINE_FILE),
                             "int8": ("tensorrt_int8", ENGINE_FILE)},
                TensorRtRunner, steps=(FP32, FP16, QDQ, SIM, INT8),
                references={"int8": ("tensorrt_qdq_reference", onnxrt.REFERENCE_FILE)},
                reference_runner=onnxrt.reference_runner, requires=("tensorrt", "polygraphy"),
                install_hint=INSTALL_HINT, available=available))
