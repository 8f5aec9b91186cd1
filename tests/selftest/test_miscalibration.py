"""An accuracy regression is caught: int8 calibrated on wrongly scaled inputs (a pipeline that forgot to
normalize) fails the accuracy case, and the message gives both accuracies, the drop and the budget."""
from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.selftest
CASES = "mobilenet_v2_digits-onnx-int8 or mobilenet_v2_digits-tflite-int8"


def test_miscalibrated_int8_fails_the_accuracy_case(pytester_run):
    out = pytester_run("-m", "accuracy", "-k", CASES, "--calibration-mode", "wrong_scale", ok=(1,))
    assert "2 failed" in out, out[-3000:]
    assert re.search(r"accuracy_drop [\d.]+ > budget max_accuracy_drop = [\d.]+ \[accuracy\.int8\]", out)
    assert re.search(r"accuracy: PyTorch [\d.]+ %, onnx-int8 [\d.]+ %", out)


def test_correct_calibration_passes_the_same_cases(pytester_run):
    out = pytester_run("-m", "accuracy", "-k", CASES)
    assert "2 passed" in out
