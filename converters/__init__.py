"""Converters: turn a subject into artifacts on disk and run them. Never decides pass/fail.

Each format module has the same two entry points: a `build(params, out_dir)` step run in an isolated
child process, and a Runner class (`set_input`, `invoke`, `get_output`). `get_output` returns one array, or
a list of them in the model's declared output order (models.api.Output); the suite packs them per sample
into one row (`pack`), and compare.outputs unpacks the row by the shapes PyTorch gives.
"""
from __future__ import annotations

import numpy as np

from models.packing import pack, split  # noqa: F401  (the packing every runner and check shares)


def predict(runner, inputs: np.ndarray) -> np.ndarray:
    """Run `inputs` (N, ...) through `runner` one sample at a time (batch 1, as deployed); packed rows. A
    model with several inputs gets them packed per sample too (models.user.pack_inputs): every runner splits
    them by its own graph's input names and shapes."""
    outputs = []
    for i in range(len(inputs)):
        runner.set_input(inputs[i:i + 1])
        runner.invoke()
        outputs.append(pack(runner.get_output()))
    return np.concatenate(outputs)
