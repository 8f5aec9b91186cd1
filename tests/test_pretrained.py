"""Models with real pretrained weights recognize the shipped photos a person would name, in PyTorch and
after full-integer TFLite conversion."""
from __future__ import annotations

import numpy as np
import pytest

import models
from converters import predict
from converters.torch_weights import reference_outputs
from converters.pipeline import Case
from models.images import center_crop, normalize

PRETRAINED = [n for n in models.names() if models.get(n).photo_classes]


def _photos(subject):
    spec = subject.arch().input
    checks = subject.entry.photo_classes
    return checks, np.concatenate([normalize(center_crop(c.photo, spec.size), spec) for c in checks])


def _verdicts(checks, logits):
    return [(c, int(np.argmax(row))) for c, row in zip(checks, logits)]


@pytest.mark.architecture
@pytest.mark.parametrize("name", PRETRAINED)
def test_pretrained_weights_recognize_photos(name):
    subject = models.Subject.of(name)
    checks, x = _photos(subject)
    got = _verdicts(checks, reference_outputs(subject.build(), x))
    print("\n".join(f"{name}: {c.photo} -> class {top} (expected {c.label}: {c.classes})" for c, top in got))
    wrong = [f"{c.photo}: got class {top}, expected {c.label} {c.classes}" for c, top in got if top not in c.classes]
    assert not wrong, f"{name} misclassifies shipped photos (wrong weights mapping or preprocessing?): {wrong}"


@pytest.mark.tflite
@pytest.mark.parametrize("name", PRETRAINED)
def test_full_integer_tflite_keeps_photo_classes(name, pipeline):
    """Every photo keeps PyTorch's exact top-1 class, except photos declared `ambiguous` (with the reason, in
    the registration), which must stay inside the classes a person accepts."""
    subject = models.Subject.of(name)
    checks, x = _photos(subject)
    reference = reference_outputs(subject.build(), x)
    converted = predict(pipeline.runner(Case(subject, "tflite", "int8"), 1), x)
    problems = []
    for check, ref, out in zip(checks, reference, converted):
        torch_top, top = int(np.argmax(ref)), int(np.argmax(out))
        print(f"{name}: {check.photo}: PyTorch {torch_top}, tflite-int8 {top}"
              + (f" (declared ambiguous: {check.ambiguous})" if check.ambiguous else ""))
        if top not in check.classes:
            problems.append(f"{check.photo}: tflite-int8 says {top}, not {check.label} {check.classes}")
        elif top != torch_top and not check.ambiguous:
            problems.append(f"{check.photo}: tflite-int8 top-1 {top} != PyTorch {torch_top}")
    assert not problems, f"{name}-tflite-int8 on shipped photos: {problems}"
