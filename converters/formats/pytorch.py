"""PyTorch: the reference format. The `weights` step materializes a subject's weights as safetensors
(shipped, seeded or trained: models.weights); the runner is eager inference, the latency reference row."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.formats import Format, Step, register
from converters.torch_weights import WEIGHTS_FILE, build_weights, load


class TorchRunner:
    """Eager PyTorch, batch as given. `invoke` is the only timed call. optimized=False turns oneDNN off
    (PyTorch's plain convolution kernels: a genuine slowdown)."""

    def __init__(self, path: Path, subject_params: dict, threads: int, optimized: bool = True):
        import torch

        from models import Subject

        torch.set_num_threads(threads)
        self.net, self.threads, self.optimized = load(subject_params, path), threads, optimized
        self.shapes = Subject.from_params(subject_params).sample_shapes()
        self._x = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        import torch

        from models.packing import split_inputs

        self._x = [torch.from_numpy(t) for t in split_inputs(x, self.shapes)]

    def invoke(self) -> None:
        import contextlib

        import torch

        kernels = contextlib.nullcontext() if self.optimized else torch.backends.mkldnn.flags(enabled=False)
        with torch.inference_mode(), kernels:
            self._y = self.net(*self._x)

    def get_output(self):
        return [t.numpy() for t in self._y] if isinstance(self._y, tuple) else self._y.numpy()


def _weights_env() -> dict:
    """Trained weights are built with the CPU's kernel choices pinned as far as they go (models.training)."""
    from models import training

    return training.DETERMINISTIC_ENV if training.pinned() else {}


WEIGHTS = Step("weights", build_weights, tools=("torch", "numpy"), env=_weights_env(),
               fresh_interpreter=bool(_weights_env()))
register(Format("pytorch", {"fp32": ("weights", WEIGHTS_FILE)}, TorchRunner, steps=(WEIGHTS,), in_matrix=False))
