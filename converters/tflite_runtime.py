"""Running TFLite artifacts: the ai-edge-litert Interpreter with NCHW->NHWC on the way in (and NHWC->NCHW
for 4-D outputs on the way out: onnx2tf's layout), the tensors' own scale/zero point for integer I/O, and
several outputs in the ONNX graph's order (which the interpreter's output list does not keep: measured,
the integer models list a detector's scores before its boxes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

class TFLiteRunner:
    """ai-edge-litert Interpreter, batch 1, NHWC. `invoke` is the only timed call; (de)quantization of
    integer I/O happens in set_input / get_output with the tensors' own parameters. optimized=False runs
    the builtin kernels without the default XNNPACK delegate (a genuine slowdown). `NHWC`: the artifact's
    4-D tensors are channels-last (onnx2tf's), so inputs are transposed on the way in and out."""

    NHWC = True

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if optimized else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                       experimental_op_resolver_type=resolver)
        self.interpreter.allocate_tensors()
        self.threads = threads
        self._ins, self._shapes = self.ordered_inputs(subject_params)
        self._in = self._ins[0]
        self._outs = ordered_outputs(self.interpreter)
        self._out = self._outs[0]

    @property
    def io_dtypes(self) -> tuple[str, str]:
        return np.dtype(self._in["dtype"]).name, np.dtype(self._out["dtype"]).name

    def ordered_inputs(self, subject_params: dict | None) -> tuple[list[dict], list[tuple[int, ...]] | None]:
        return ordered_inputs(self.interpreter, subject_params)

    def set_input(self, x: np.ndarray) -> None:
        from models.packing import split_inputs

        for detail, x in zip(self._ins, split_inputs(x, self._shapes)):
            if x.ndim == 4 and self.NHWC:
                x = x.transpose(0, 2, 3, 1)
            self.interpreter.set_tensor(detail["index"], quantize(np.ascontiguousarray(x, dtype=np.float32), detail))

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_output(self):
        outs = [dequantize(self.interpreter.get_tensor(d["index"]), d) for d in self._outs]
        outs = [y.transpose(0, 3, 1, 2) if y.ndim == 4 and self.NHWC else y for y in outs]
        return outs[0] if len(outs) == 1 else outs


def ordered_inputs(interpreter, subject_params: dict | None) -> tuple[list[dict], list[tuple[int, ...]] | None]:
    """The input details in the model's declared order, with the declared per-sample (NCHW) shapes, matched
    by name: the signature's input names are the ONNX graph's (onnx2tf), the tensors' are
    serving_default_<name>:0. Never by position: the interpreter may list two same-shaped inputs either way,
    and a swap would go unnoticed by shape checks."""
    details = interpreter.get_input_details()
    if len(details) == 1:
        return details, None
    from models import Subject

    user = Subject.from_params(subject_params).user if subject_params else None
    if user is None or len(user.inputs) != len(details):
        raise RuntimeError(f"a TFLite model with {len(details)} inputs needs its subject's declared inputs to feed "
                           "them by name")
    by_index = {d["index"]: d for d in details}
    signature = next(iter(getattr(interpreter, "_get_full_signature_list", lambda: {})().values()), {})
    named = {n: by_index[i] for n, i in signature.get("inputs", {}).items() if i in by_index}
    ordered = []
    for inp in user.inputs:
        names = (inp.name, f"{inp.name}:0", f"serving_default_{inp.name}:0")
        found = named.get(inp.name) or next((d for d in details if d["name"] in names), None)
        if found is None:
            raise RuntimeError(f"input {inp.name!r} is not among the TFLite model's inputs "
                               f"{[d['name'] for d in details]}")
        ordered.append(found)
    return ordered, [i.shape for i in user.inputs]


def ordered_outputs(interpreter) -> list[dict]:
    """The output details in the converted graph's order: by the signature's output_N where the model has
    a signature, else by the N of onnx2tf's tensor names (Identity, Identity_1, ...; PartitionedCall:N)."""
    import re

    details = interpreter.get_output_details()
    if len(details) == 1:
        return details
    by_index = {d["index"]: d for d in details}
    signatures = getattr(interpreter, "_get_full_signature_list", lambda: {})()
    for signature in signatures.values():
        outputs = signature.get("outputs", {})
        if set(outputs.values()) == set(by_index) and all(re.fullmatch(r"output_\d+", n) for n in outputs):
            return [by_index[outputs[n]] for n in sorted(outputs, key=lambda n: int(n.split("_")[1]))]

    def position(d):
        m = re.search(r"(?:_|:)(\d+)$", d["name"])
        return int(m.group(1)) if m else 0

    return sorted(details, key=position)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def reference_runner(path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
    """Runs a simulated reference with TFLite's builtin float kernels (no XNNPACK rewrites)."""
    return TFLiteRunner(path, subject_params, threads, optimized=False)
