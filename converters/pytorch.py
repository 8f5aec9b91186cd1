"""PyTorch: the reference format. build = materialize a subject's weights as safetensors (seeded init
with BN calibration, or a checkpoint); run = eager inference, the latency reference row."""
from __future__ import annotations

from pathlib import Path

import numpy as np

WEIGHTS_FILE = "model.safetensors"


def build(params: dict, out_dir: Path) -> None:
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

    def __init__(self, net, threads: int, optimized: bool = True):
        import torch

        torch.set_num_threads(threads)
        self.net, self.threads, self.optimized = net, threads, optimized
        self._x = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        import torch

        self._x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def invoke(self) -> None:
        import torch

        with torch.inference_mode(), self._kernels():
            self._y = self.net(self._x)

    def _kernels(self):
        import contextlib

        import torch

        return contextlib.nullcontext() if self.optimized else torch.backends.mkldnn.flags(enabled=False)

    def get_output(self) -> np.ndarray:
        return self._y.numpy()


def reference_outputs(net, inputs: np.ndarray) -> np.ndarray:
    """Eager PyTorch logits for a whole input set in one batch (how golden outputs are made)."""
    import torch

    with torch.inference_mode():
        return net(torch.from_numpy(inputs)).numpy().astype(np.float32)
