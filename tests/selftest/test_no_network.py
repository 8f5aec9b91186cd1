"""No network: a full conversion (seeded weights, ONNX export, ORT static int8, onnx2tf with every TFLite
variant) runs with every socket connection and DNS lookup made to fail, in the pytest process and in every
conversion child. onnx2tf in particular fetches a calibration file from GitHub unless it finds ours."""
from __future__ import annotations

import subprocess
import sys

import pytest

from converters.isolate import NETWORK_ENV, ROOT

pytestmark = pytest.mark.selftest
CASES = "mobilenet_v3_small_minimal-onnx-int8 or mobilenet_v3_small_minimal-tflite-int8"


def test_the_guard_blocks_connections():
    code = ("from converters.isolate import deny_network; deny_network(); import urllib.request; "
            "urllib.request.urlopen('http://127.0.0.1:9', timeout=5)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "NetworkDenied" in run.stderr and "[network guard] blocked a connection" in run.stderr


def test_a_full_conversion_makes_no_network_connection(pytester_run, tmp_path):
    cache = tmp_path / "cache"  # empty: every step really runs
    out = pytester_run("-m", "parity", "-k", CASES, "--artifact-cache", str(cache), env={NETWORK_ENV: "1"})
    assert "2 passed" in out, out[-3000:]
    logs = list(cache.rglob("build.log"))
    assert {p.parts[-3] for p in logs} >= {"weights", "onnx", "onnx_int8", "tflite"}, logs
    blocked = [p for p in logs if "[network guard]" in p.read_text(errors="replace")]
    assert not blocked and "[network guard]" not in out, blocked
