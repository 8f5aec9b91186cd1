"""ExecuTorch: PyTorch's own on-device runtime (the successor of PyTorch Mobile), through its XNNPACK delegate,
the CPU backend ExecuTorch ships for Arm and x86 phones and laptops. torch.export of the module, lowered by
`to_edge_transform_and_lower` with the XnnpackPartitioner; no ONNX, no TFLite in between. Steps:

  executorch            float32 .pte: every op XNNPACK takes is delegated, the rest runs on ExecuTorch's
                        portable kernels
  executorch_int8       PT2E static int8 with ExecuTorch's XNNPACKQuantizer, its symmetric config per channel:
                        per-channel symmetric int8 weights (min/max), per-tensor affine int8 activations
                        (histogram observers), calibrated on the suite's calibration set (the images every
                        other int8 path calibrates on), convert_pt2e, then lowered as above. Calibration runs
                        PyTorch with the training kernels pinned (models.training), so the observed ranges and
                        the artifact are the same on every x86-64 CPU. Beside the .pte the step saves the
                        quantized graph itself (torch.export.save), the reference below.
  the int8 reference    that quantized graph run in PyTorch: the same weights, scales and zero points with
                        every quantize/dequantize computed in float (PT2E's reference representation), i.e.
                        what the .pte should compute. Where the artifact is far from its golden outputs and
                        close to this, the quantization is the cause; where it is far from this too, the
                        lowering or XNNPACK's kernels are.

The runner is ExecuTorch's Python runtime (executorch.runtime) on the .pte, NCHW like the module; several
inputs go in forward's order, several outputs come back in the module's order."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.formats import CALIBRATION, Format, Step, register
from converters.formats import pytorch  # noqa: F401  (the weights step this format converts from)
from converters.onnx_names import CALIBRATION_FILE
from converters.torch_weights import WEIGHTS_FILE, load

TOOLS = ("torch", "executorch", "numpy")
INT8_TOOLS = (*TOOLS, "torchao")
MODEL_FILE = "model.pte"
REFERENCE_FILE = "reference_int8.pt2"


def _module_and_sample(params: dict):
    import torch

    from models import Subject

    subject = Subject.from_params(params["subject"])
    net = load(params["subject"], Path(params["deps"]["weights"]) / WEIGHTS_FILE).eval()
    return subject, net, tuple(torch.zeros(shape) for shape in subject.input_shapes(1))


def _export(subject, module, sample):
    import torch

    try:
        return torch.export.export(module, sample)
    except Exception as exc:
        raise RuntimeError(f"model {subject.model!r}: torch.export failed ({type(exc).__name__}: {exc}); ExecuTorch "
                           "needs a forward torch.export can capture with a fixed input shape (no data-dependent "
                           "Python control flow)") from exc


def _lower(subject, exported, out_dir: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    except Exception as exc:
        raise RuntimeError(f"model {subject.model!r} cannot be lowered to ExecuTorch: {type(exc).__name__}: "
                           f"{exc}\nthe edge dialect needs core ATen ops with fixed shapes") from exc
    (out_dir / MODEL_FILE).write_bytes(program.buffer)
    _check_loads(out_dir / MODEL_FILE)


def _check_loads(path: Path) -> None:
    """A .pte the runtime cannot initialise is a failed conversion, not a runner error: XNNPACK builds each
    delegated subgraph only when the method loads, and may refuse a node the partitioner accepted."""
    from executorch.runtime import Runtime

    try:
        Runtime.get().load_program(path).load_method("forward")
    except RuntimeError as exc:
        raise RuntimeError(f"the lowered {path.name} does not load in the ExecuTorch runtime ({exc}): a delegate "
                           "refused its part of the graph; the runtime's lines in the step's full log name the node") from exc


def convert(params: dict, out_dir: Path) -> None:
    subject, net, sample = _module_and_sample(params)
    _lower(subject, _export(subject, net, sample), out_dir)


def quantize(params: dict, out_dir: Path) -> None:
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from models.packing import split_inputs

    subject, net, sample = _module_and_sample(params)
    torch.manual_seed(0)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    graph = prepare_pt2e(_export(subject, net, sample).module(), quantizer)
    data = np.load(Path(params["deps"][CALIBRATION]) / CALIBRATION_FILE)
    shapes = subject.sample_shapes()
    with torch.no_grad():
        for row in data:
            graph(*(torch.from_numpy(np.ascontiguousarray(a)) for a in split_inputs(row[None], shapes)))
    graph = convert_pt2e(graph)
    exported = _export(subject, graph, sample)
    torch.export.save(exported, str(out_dir / REFERENCE_FILE))
    _lower(subject, exported, out_dir)


class ExecuTorchRunner:
    """executorch.runtime's Method on the .pte, batch 1. `invoke` (Method.execute) is the only timed call.
    `threads` sizes ExecuTorch's one process-wide threadpool (XNNPACK's). optimized=False is not a separate
    setting here (the delegate is baked into the .pte): it runs the same way."""

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
        from executorch.runtime import Runtime

        from models import Subject

        _set_threads(threads)
        self.threads = threads
        self.method = Runtime.get().load_program(Path(path)).load_method("forward")  # checked at conversion
        self.shapes = Subject.from_params(subject_params).sample_shapes() if subject_params else None
        self._x = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        import torch

        from models.packing import split_inputs

        parts = split_inputs(x, self.shapes) if self.shapes else [x]
        self._x = [torch.from_numpy(np.ascontiguousarray(p, dtype=np.float32)) for p in parts]

    def invoke(self) -> None:
        self._y = self.method.execute(self._x)

    def get_output(self):
        outs = [y.numpy().astype(np.float32, copy=False) for y in self._y]
        return outs[0] if len(outs) == 1 else outs


def _set_threads(threads: int) -> None:
    """ExecuTorch's threadpool is one per process, sized to the cores at start; resized where the runtime
    lets it (portable_lib's _unsafe_reset_threadpool)."""
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:
        return
    get = getattr(portable_lib, "_threadpool_get_thread_count", None)
    reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
    if reset is not None and (get is None or get() != threads):
        reset(threads)


class QuantizedGraphRunner:
    """The int8 reference: the PT2E-quantized graph (torch.export.load) run by PyTorch, batch 1, with oneDNN off.
    oneDNN's convolutions follow the CPU's instruction set, and near a rounding tie a quantize that follows one
    lands a step apart: measured, the reference moved up to 0.14 dB in excess error between AVX-512 and
    ONEDNN_MAX_CPU_ISA=AVX2 (mobilenet_v3_large_minimal); PyTorch's own kernels give both the same outputs."""

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
        import torch

        from models import Subject

        torch.set_num_threads(threads)
        self.threads = threads
        self.module = _load_quantized(path).module()
        self.shapes = Subject.from_params(subject_params).sample_shapes() if subject_params else None
        self._x = self._y = None

    set_input = ExecuTorchRunner.set_input

    def invoke(self) -> None:
        import torch

        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
            self._y = self.module(*self._x)

    def get_output(self):
        outs = self._y if isinstance(self._y, (tuple, list)) else [self._y]
        outs = [y.numpy() for y in outs]
        return outs[0] if len(outs) == 1 else outs


def _load_quantized(path: Path):
    """torch.export.load of a PT2E graph: its quantize/dequantize ops (quantized_decomposed) must be registered
    first, or deserialization fails."""
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers quantized_decomposed)

    return torch.export.load(str(path))


def activation_scales(path: Path) -> list[float]:
    """The scale of every per-tensor quantize in the quantized graph the .pte was lowered from (saved beside
    it): the activation grids the artifact computes on (compare.qat: are a QAT model's learned scales kept?)."""
    program = _load_quantized(Path(path).parent / REFERENCE_FILE)
    return [float(node.args[1]) for node in program.graph.nodes
            if node.op == "call_function" and "quantize_per_tensor" in str(node.target)
            and "dequantize" not in str(node.target) and isinstance(node.args[1], (int, float))]


def _pinned_env() -> dict:
    from models import training

    return dict(training.DETERMINISTIC_ENV)


CONVERT = Step("executorch", convert, needs=("weights",), tools=TOOLS)
QUANTIZE = Step("executorch_int8", quantize, needs=("weights", CALIBRATION), tools=INT8_TOOLS, env=_pinned_env(),
                fresh_interpreter=True,
                options={"quantizer": "XNNPACKQuantizer, symmetric config, per-channel, static",
                         "observer": "histogram"})
register(Format("executorch", {"fp32": ("executorch", MODEL_FILE), "int8": ("executorch_int8", MODEL_FILE)},
                ExecuTorchRunner, steps=(CONVERT, QUANTIZE),
                references={"int8": ("executorch_int8", REFERENCE_FILE)}, reference_runner=QuantizedGraphRunner,
                requires=("executorch", "torchao"), scales=activation_scales,
                install_hint="tox -e executorch, or pip install -c constraints.txt -e '.[executorch]' (its own "
                             "environment: it cannot share the litert one)"))
