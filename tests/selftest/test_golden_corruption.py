"""A wrong or damaged golden file fails that model's cases, with a message that says what to do, and
leaves every other model alone."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from compare import golden

pytestmark = pytest.mark.selftest
ROOT = Path(__file__).resolve().parents[2]
SELECT = ("test_parity[mobilenet_v2-onnx-fp32] or test_parity[mobilenet_v3_small-onnx-fp32] "
          "or test_golden_drift[mobilenet_v2] "
          "or test_golden_drift[mobilenet_v3_small]")


@pytest.fixture
def golden_copy(tmp_path):
    target = tmp_path / "golden"
    shutil.copytree(ROOT / "golden", target)
    return target


def test_scaled_logits_fail_only_that_model(pytester_run, golden_copy):
    """Someone regenerated mobilenet_v3_small's golden wrongly (logits x 1.5, manifest consistent)."""
    g = golden.load(golden_copy, "mobilenet_v3_small", *_identity("mobilenet_v3_small"))
    golden.save(golden_copy, "mobilenet_v3_small", g.logits * 1.5, g.manifest)
    out = pytester_run("-m", "parity or drift", "-k", SELECT, "--golden-dir", str(golden_copy), ok=(1,))
    assert "2 failed, 2 passed" in out
    assert "FAILED tests/test_parity.py::test_parity[mobilenet_v3_small-onnx-fp32]" in out
    assert "FAILED tests/test_golden.py::test_golden_drift[mobilenet_v3_small]" in out
    assert "max_abs_error" in out and "pytest --update-golden -k mobilenet_v3_small" in out


@pytest.mark.parametrize("damage, words", [
    (lambda npz: npz.write_bytes(npz.read_bytes()[:1000]), "does not match the sha256 in its manifest"),
    (lambda npz: npz.unlink(), "no golden outputs for mobilenet_v3_small"),
])
def test_truncated_or_missing_golden_names_the_fix(pytester_run, golden_copy, damage, words):
    damage(golden_copy / "mobilenet_v3_small.npz")
    out = pytester_run("-m", "parity or drift", "-k", SELECT, "--golden-dir", str(golden_copy), ok=(1,))
    assert "2 failed, 2 passed" in out and words in out
    assert "pytest --update-golden -k mobilenet_v3_small" in out


def test_golden_of_another_model_version_is_refused(golden_copy):
    import json

    manifest_path = golden_copy / "mobilenet_v2.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["identity"]["architecture"] = "0000000000000000"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(golden.GoldenError, match="made for another model version"):
        golden.load(golden_copy, "mobilenet_v2", *_identity("mobilenet_v2"))


def _identity(name):
    import models
    from models import datasets
    from models.images import array_digest

    subject = models.Subject.of(name)
    return subject.identity(), array_digest(datasets.parity_inputs(subject))
