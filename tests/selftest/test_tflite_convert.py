"""The tflite step's shortcut (converters.tflite_convert._calibrate_once: each float model calibrated once,
the unused int16-I/O variant skipped) writes the same bytes as onnx2tf left alone, for every variant."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from converters.tflite_convert import PRECISION_FILES, SAVED_MODEL_DIR
from tests.selftest.conftest import ROOT

pytestmark = pytest.mark.selftest
SUBJECT = "mobilenet_v3_small_minimal_digits"  # hard-swish, squeeze-excite: every int8 path's ops, 32x32

BUILD = """
import json, sys
from pathlib import Path
from converters import tflite_convert
tflite_convert.CALIBRATE_ONCE = sys.argv[2] == "once"
tflite_convert.build(json.loads(sys.argv[1]), Path.cwd())
"""


def _digests(out) -> dict[str, str]:
    return {name: hashlib.sha256((out / SAVED_MODEL_DIR / name).read_bytes()).hexdigest()
            for name in PRECISION_FILES.values()}


def test_calibrating_once_writes_the_same_files(tmp_path, pipeline):
    from converters.formats import CALIBRATION
    from models import subjects

    subject = next(s for s in subjects.digits() if s.id == SUBJECT)
    params = {"subject": subject.to_params(), "options": {"quant_type": "per-channel"}, "plugins": [],
              "deps": {"onnx": str(pipeline.entry("onnx", subject)), CALIBRATION: str(pipeline.calibration(subject))}}
    digests = {}
    for mode in ("once", "every-time"):
        out = tmp_path / mode
        out.mkdir()
        run = subprocess.run([sys.executable, "-c", BUILD, json.dumps(params), mode], cwd=out, capture_output=True,
                             text=True, timeout=900, env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                                                          "CUDA_VISIBLE_DEVICES": "", **_base_env()})
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        digests[mode] = _digests(out)
    assert digests["once"] == digests["every-time"]


def _base_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "ONEDNN_MAX_CPU_ISA")}
