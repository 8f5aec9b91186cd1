"""PyTorch: the reference format. The `weights` step materializes a subject's weights as safetensors
(shipped, seeded or trained: models.weights); the runner is eager inference, the latency reference row."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.formats import Format, Step, register

WEIGHTS_FILE = "model.safetensors"


def build_weights(params: dict, out_dir: Path) -> None:
    from safetensors.torch import save_file

    from models import Subject

    net = Subject.from_params(params["subject"]).build()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out_dir / WEIGHTS_FILE))


def load(subject_params: dict, weights_file: Path):
    """The subject's network with weights from a built artifact (strict: every key must match)."""
    from safetensors.torch import load_file

    from models import Subject
    from models.builder import build as build_net

    net = build_net(Subject.from_params(subject_params).arch())
    net.load_state_dict(load_file(str(weights_file)))
    return net.eval()


class TorchRunner:
    """Eager PyTorch, batch as given. `invoke` is the only timed call. optimized=False turns oneDNN off
    (PyTorch's plain convolution kernels: a genuine slowdown)."""

    def __init__(self, path: Path, subject_params: dict, threads: int, optimized: bool = True):
        import torch

        torch.set_num_threads(threads)
        self.net, self.threads, self.optimized = load(subject_params, path), threads, optimized
        self._x = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        import torch

        self._x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def invoke(self) -> None:
        import contextlib

        import torch

        kernels = contextlib.nullcontext() if self.optimized else torch.backends.mkldnn.flags(enabled=False)
        with torch.inference_mode(), kernels:
            self._y = self.net(self._x)

    def get_output(self) -> np.ndarray:
        return self._y.numpy()


def reference_outputs(net, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
    """Eager PyTorch logits for a whole input set, in batches (how golden and reference outputs are made)."""
    import torch

    with torch.inference_mode():
        return np.concatenate([net(torch.from_numpy(np.ascontiguousarray(chunk))).numpy()
                               for chunk in np.array_split(inputs, max(1, -(-len(inputs) // batch)))]
                              ).astype(np.float32)


def _weights_env() -> dict:
    """Trained weights are built with the CPU's kernel choices pinned as far as they go (models.training)."""
    from models import training

    return training.DETERMINISTIC_ENV if training.pinned() else {}


WEIGHTS = Step("weights", build_weights, tools=("torch", "numpy"), env=_weights_env())
register(Format("pytorch", {"fp32": ("weights", WEIGHTS_FILE)}, TorchRunner, steps=(WEIGHTS,), in_matrix=False))
