"""Running TFLite artifacts: the ai-edge-litert Interpreter with NCHW->NHWC on the way in and the tensors'
own scale/zero point for integer I/O."""
from __future__ import annotations

from pathlib import Path

import numpy as np

class TFLiteRunner:
    """ai-edge-litert Interpreter, batch 1, NHWC. `invoke` is the only timed call; (de)quantization of
    integer I/O happens in set_input / get_output with the tensors' own parameters. optimized=False runs
    the builtin kernels without the default XNNPACK delegate (a genuine slowdown)."""

    def __init__(self, path: Path, subject_params: dict | None = None, threads: int = 1, optimized: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if optimized else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                       experimental_op_resolver_type=resolver)
        self.interpreter.allocate_tensors()
        self.threads = threads
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]

    @property
    def io_dtypes(self) -> tuple[str, str]:
        return np.dtype(self._in["dtype"]).name, np.dtype(self._out["dtype"]).name

    def set_input(self, x: np.ndarray) -> None:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=np.float32)
        self.interpreter.set_tensor(self._in["index"], quantize(x, self._in))

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_output(self) -> np.ndarray:
        return dequantize(self.interpreter.get_tensor(self._out["index"]), self._out)


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
