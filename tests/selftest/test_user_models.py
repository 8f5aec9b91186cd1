"""Your own models (models.model, --models-from): a good one from a file outside the package runs through
the matrix with its goldens (and a labelled one, `labels=`, its accuracy case), and each mistake a user makes fails its own cases with what to fix while the
rest of the run goes on: a file that does not exist or registers nothing, a factory that raises, an input
spec the model does not take, an output whose shape depends on the batch, outputs that differ from the
declaration, a model the exporter cannot export, a converted output whose shape changed."""
from __future__ import annotations

import subprocess
import sys
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


class IgnoresSecond(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = tiny()

    def forward(self, image, unused):
        return self.net(image)


@model("user_unused_input", inputs=[Input((3, 24, 24), name="image"), Input((3, 24, 24), name="unused")])
def user_unused_input():
    return IgnoresSecond()


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
        "user_unused_input-onnx-fp32": "every declared input must be used by forward",
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


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give input=models.Input(...) or inputs=[...], exactly one of them"),
    ({"input": "x", "inputs": ["y"]}, "exactly one of them"),
    ({"inputs": [("a", (3, 8, 8)), ("a", (3, 8, 8))]}, "input names must be distinct"),
    ({"inputs": [("in put", (3, 8, 8))]}, "must be an identifier"),
    ({"inputs": [("logits", (3, 8, 8))]}, "names both an input and an output"),
    ({"inputs": [("a", (3, 8, 8)), ("b", (5,))]}, "'photos' makes (3, H, W) or (1, H, W) images"),
])
def test_input_declarations_that_cannot_work_are_refused_at_registration(kwargs, message):
    from models import Input, ModelSpecError, model

    def make(value):
        return Input((3, 8, 8), name=value) if isinstance(value, str) else Input(value[1], name=value[0])

    args = {k: (make(v) if k == "input" else [make(i) for i in v]) for k, v in kwargs.items()}
    with pytest.raises(ModelSpecError, match=r"model 'bad': .*" + __import__("re").escape(message)):
        model("bad", **args)(lambda: None)


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


SEVERAL_INPUTS = '''
import torch
from torch import nn

from models import Input, Output, model, seeded_


class Change(nn.Module):
    """Shared features of two same-shaped images, their difference weighed against the later one, plus a
    metadata vector: swapping `before` and `after` changes every output."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.meta = nn.Linear(6, 32)
        self.head = nn.Linear(32, 5)
        self.embed = nn.Conv2d(32, 4, 1)

    def forward(self, before, after, meta):
        a, b = self.features(before), self.features(after)
        d = b - 0.5 * a
        return self.head(torch.relu(d.mean((2, 3)) + self.meta(meta))), self.embed(d).flatten(1)


@model("user_several_inputs", inputs=[Input((3, 40, 56), name="before"), Input((3, 40, 56), name="after"),
                                      Input((6,), source="npy:" + META, name="meta")],
       outputs=[Output("logits", "classification"), Output("embedding", "generic")])
def user_several_inputs():
    return seeded_(Change())
'''

SWAP = '''
import sys

import models
from compare.budgets import Budgets
from compare.golden import paths
from converters import predict
from converters.cache import ArtifactCache
from converters.pipeline import Case, Pipeline
from harness.checks import declared_verdicts
from models import Subject, datasets
from models.user import output_layout
from compare.outputs import Slot
import numpy as np

models.load_file(sys.argv[1])
subject = Subject.of("user_several_inputs")
pipeline = Pipeline(ArtifactCache(sys.argv[2]))
x = datasets.parity_inputs(subject)
golden = np.load(paths(__import__("pathlib").Path(sys.argv[3]), subject.id)[0])
golden = golden[golden.files[0]]
layout = [Slot(o["name"], o["kind"], tuple(o["shape"])) for o in output_layout(subject)]
budgets = Budgets.load("budgets.toml")
for fmt in ("onnx", "tflite", "openvino"):
    runner = pipeline.runner(Case(subject, fmt, "fp32"), 1)
    for swapped in (False, True):
        if swapped and fmt in ("onnx", "openvino"):  # both feed by (name, shape) pairs in runner.inputs
            runner.inputs[0], runner.inputs[1] = runner.inputs[1], runner.inputs[0]
        elif swapped:
            runner._ins[0], runner._ins[1] = runner._ins[1], runner._ins[0]
        verdicts, _ = declared_verdicts(f"{fmt}-fp32", "fp32", layout, golden, predict(runner, x), None, budgets)
        print(fmt, "swapped" if swapped else "declared", "passed" if all(v.passed for v in verdicts) else "failed")
'''


def test_a_model_with_several_inputs_feeds_each_by_name(tmp_path):
    """Three inputs (two same-shaped images and a vector from an .npy file) through ONNX, TFLite, the
    SavedModel and OpenVINO, float and quantized: each runtime feeds each input by its name (calibration
    per input too), the float cases pass their goldens, every quantized case reaches a verdict; and feeding
    the two images swapped, as a positional runner could, fails parity (ONNX, TFLite and OpenVINO runners)."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "meta.npy", rng.normal(size=(48, 6)).astype(np.float32))
    models = tmp_path / "several.py"
    models.write_text(f"META = {str(tmp_path / 'meta.npy')!r}\n" + textwrap.dedent(SEVERAL_INPUTS))
    cache, golden = tmp_path / "cache", tmp_path / "golden"
    cmd, env = child_pytest(str(cache), "-n", "0", f"--models-from={models}", f"--golden-dir={golden}",
                            "--update-golden", "-m", "parity or drift", "-k", "user_several_inputs")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    log = out.stdout + out.stderr
    rows = {line.split()[0]: line.split()[-1] for line in log.splitlines()
            if line.startswith("user_several_inputs") and line.split()[1] in ("parity", "drift")}
    for precision in ("onnx-fp32", "tflite-fp32", "tflite-fp16", "savedmodel-fp32", "openvino-fp32"):
        assert rows.get(f"user_several_inputs-{precision}") == "passed", (precision, rows, log[-3000:])
    for precision in ("onnx-int8", "onnx-dynamic_int8", "tflite-int8", "tflite-full_int8", "tflite-int16x8",
                      "tflite-dynamic_int8", "openvino-int8"):  # converted, run, judged (a verdict, not an error)
        assert rows.get(f"user_several_inputs-{precision}") in ("passed", "failed"), (precision, rows, log[-3000:])
    assert "Traceback" not in log and "ConversionError" not in log, log[-3000:]
    swap = subprocess.run([sys.executable, "-c", SWAP, str(models), str(cache), str(golden)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert swap.returncode == 0, swap.stderr[-3000:]
    assert swap.stdout.split("\n")[:6] == ["onnx declared passed", "onnx swapped failed", "tflite declared passed",
                                           "tflite swapped failed", "openvino declared passed",
                                           "openvino swapped failed"], swap.stdout + swap.stderr[-2000:]


def test_the_zoo_and_the_exporter_agree_on_the_default_input_name():
    from converters.onnx_names import INPUT_NAME
    from models import Input, Subject

    assert Input.name == INPUT_NAME == Subject.of("mobilenet_v2").input_names()[0]
