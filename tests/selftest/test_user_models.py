"""Your own models (models.model, --models-from): a good one from a file outside the package runs through
the matrix with its goldens (and a labelled one, `labels=`, its accuracy case), and each mistake a user makes fails its own cases with what to fix while the
rest of the run goes on: a file that does not exist or registers nothing, a factory that raises, an input
spec the model does not take, an output whose shape depends on the batch, outputs that differ from the
declaration, a model the exporter cannot export, a converted output whose shape changed."""
from __future__ import annotations

import subprocess
import textwrap

import numpy as np
import pytest

from tests.selftest.conftest import ROOT, child_pytest

pytestmark = pytest.mark.selftest

MODELS = '''
import torch
from torch import nn

from models import Input, Output, model, seeded_


def tiny(channels=3, classes=10):
    return seeded_(nn.Sequential(nn.Conv2d(channels, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(8, classes)))


@model("user_good", input=Input((3, 24, 40)))  # non-square photo crops, a classifier
def user_good():
    return tiny()


@model("user_labelled", input=Input((3, 32, 32)), labels=LABELS)  # scored on a labelled folder
def user_labelled():
    return tiny(classes=2)


@model("user_raises", input=Input((3, 24, 24)))
def user_raises():
    raise RuntimeError("weights.bin not found")


@model("user_wrong_input", input=Input((3, 24, 24)))
def user_wrong_input():
    return tiny(channels=1)


class Flat(nn.Module):
    def forward(self, x):
        return x.mean(1).reshape(-1)  # the batch folded into the output


@model("user_batch_output", input=Input((3, 8, 8)), outputs=[Output("flat", "generic")])
def user_batch_output():
    return Flat()


@model("user_two_declared", input=Input((3, 24, 24)), outputs=[Output("a"), Output("b")])
def user_two_declared():
    return tiny()


class Cummax(nn.Module):
    def forward(self, x):
        return torch.cummax(x.flatten(1), 1)[0]


@model("user_not_exportable", input=Input((3, 8, 8)), outputs=[Output("running_max", "generic")])
def user_not_exportable():
    return Cummax()
'''


def _labelled_folder(root):
    """Two classes of crops of two shipped photos, 8 each (every 4th calibrates, the rest is the test split)."""
    from PIL import Image

    from models.images import natural_crops

    for label, offset in (("cat", 1), ("coffee", 2)):
        (root / label).mkdir(parents=True)
        crops = natural_crops(8 * 15, 48, "userdata")[offset::15][:8]
        for i, crop in enumerate(crops):
            Image.fromarray(crop).save(root / label / f"{i}.png")


def test_user_model_file_and_its_mistakes(tmp_path):
    _labelled_folder(tmp_path / "labels")
    models = tmp_path / "my_models.py"
    models.write_text(f"LABELS = {str(tmp_path / 'labels')!r}\n" + textwrap.dedent(MODELS))
    (tmp_path / "empty.py").write_text("x = 1\n")
    cmd, env = child_pytest(str(tmp_path / "cache"), "-n", "0",
                            f"--models-from={models}", f"--models-from={tmp_path / 'missing.py'}",
                            f"--models-from={tmp_path / 'empty.py'}", f"--golden-dir={tmp_path / 'golden'}",
                            "--update-golden", "-m", "parity or drift or architecture or accuracy",
                            "-k", "models_file or (user_ and (onnx-fp32 or drift))")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]

    def outcome(test_id: str) -> str:
        lines = [line for line in log.splitlines() if test_id in line and line.split()[0] in ("PASSED", "FAILED")]
        return lines[0].split()[0] if lines else "absent"

    assert "passed" in log and outcome("user_good-onnx-fp32") == "absent"  # summary table, -ra lists failures only
    expected = {
        "missing.py": "no such file",
        "empty.py": "it registered no model",
        "user_raises-onnx-fp32": "its factory user_raises() raised RuntimeError: weights.bin not found",
        "user_wrong_input-onnx-fp32": "forward on its declared input (1, 3, 24, 24) raised",
        "user_batch_output-onnx-fp32": "its first dimension must be the batch",
        "user_two_declared-onnx-fp32": "forward returned 1 output(s), declared 2 (a, b)",
        "user_not_exportable-onnx-fp32": "cannot be exported to ONNX",
    }
    for test_id, message in expected.items():
        assert outcome(test_id) == "FAILED", f"{test_id} did not fail:\n{log[-3000:]}"
        assert message in log, f"{test_id}: {message!r} not in the output:\n{log[-4000:]}"
    # the good model ran beside them: its goldens were written and its cases passed
    assert (tmp_path / "golden" / "user_good.npz").is_file()
    summary = [line for line in log.splitlines() if line.startswith("user_good")]
    assert summary and all(line.rstrip().endswith("passed") for line in summary), "\n".join(summary) or log[-3000:]
    # labels=: the accuracy case of the labelled model ran on its folder's test split (12 of 16 images: its
    # accuracy is a multiple of 1/12)
    accuracy = [line.split() for line in log.splitlines() if line.startswith("user_labelled_labelled-onnx-fp32")]
    assert accuracy and accuracy[0][1] == "accuracy" and accuracy[0][-1] == "passed", accuracy or log[-3000:]
    assert any(abs(float(v) * 12 / 100 - round(float(v) * 12 / 100)) < 1e-3 for v in accuracy[0][2:-1]
               if v.replace(".", "").isdigit() and 1 < float(v) <= 100), accuracy[0]


def test_a_converted_output_whose_shape_changed_fails_naming_it():
    from compare.budgets import Budgets
    from compare.outputs import Slot
    from harness.checks import declared_verdicts

    layout = [Slot("boxes", "generic", (5, 4)), Slot("scores", "generic", (5, 3))]
    rng = np.random.default_rng(0)
    golden = rng.normal(size=(4, 35)).astype(np.float32)
    budgets = Budgets.load(ROOT / "budgets.toml")
    verdicts, record = declared_verdicts("m-onnx-fp32", "fp32", layout, golden, golden[:, :32], None, budgets)
    assert not verdicts[0].passed and record == {}
    assert "32 values per sample" in verdicts[0].problems[0] and "boxes (5, 4) = 20" in verdicts[0].problems[0]
