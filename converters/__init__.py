"""Converters: turn a subject into artifacts on disk and run them. Never decides pass/fail.

Each format module has the same two entry points: a `build(params, out_dir)` step run in an isolated
child process, and a Runner class (`set_input`, `invoke`, `get_output`). `get_output` returns one array, or
a list of them in the model's declared output order (models.api.Output); the suite packs them per sample
into one row (`pack`), and compare.outputs unpacks the row by the shapes PyTorch gives.
"""
from __future__ import annotations

import numpy as np


def pack(outputs) -> np.ndarray:
    """One array, or a sequence of arrays sharing their batch dimension N, as (N, total) float32: each
    output flattened per sample, concatenated in order."""
    if isinstance(outputs, np.ndarray):
        outputs = [outputs]
    n = len(outputs[0])
    return np.concatenate([np.asarray(o, np.float32).reshape(n, -1) for o in outputs], axis=1)


def predict(runner, inputs: np.ndarray) -> np.ndarray:
    """Run `inputs` (N, ...) through `runner` one sample at a time (batch 1, as deployed); packed rows."""
    outputs = []
    for i in range(len(inputs)):
        runner.set_input(inputs[i:i + 1])
        runner.invoke()
        outputs.append(pack(runner.get_output()))
    return np.concatenate(outputs)
