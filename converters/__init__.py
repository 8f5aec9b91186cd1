"""Converters: turn a subject into artifacts on disk and run them. Never decides pass/fail.

Each format module has the same two entry points: a `build(params, out_dir)` step run in an isolated
child process, and a Runner class (`set_input`, `invoke`, `get_output`).
"""
from __future__ import annotations

import numpy as np


def predict(runner, inputs: np.ndarray) -> np.ndarray:
    """Run `inputs` (N, C, H, W) through `runner` one sample at a time (batch 1, as deployed)."""
    outputs = []
    for i in range(len(inputs)):
        runner.set_input(inputs[i:i + 1])
        runner.invoke()
        outputs.append(runner.get_output().reshape(1, -1))
    return np.concatenate(outputs)
