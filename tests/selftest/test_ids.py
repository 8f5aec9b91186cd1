"""Case ids: stable, sorted, readable after -k, never containing '@'."""
from __future__ import annotations

import pytest

import models
from converters.pipeline import FORMATS, cases_for

pytestmark = pytest.mark.selftest


def test_ids_are_unique_sorted_and_xdist_safe():
    subjects = [models.Subject.of(n) for n in models.names()]
    ids = [c.id for c in cases_for(subjects)]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert not any("@" in i or " " in i for i in ids)
    assert len(ids) == len(subjects) * sum(len(p) for p in FORMATS.values())


def test_ids_read_like_what_a_person_types():
    ids = {c.id for c in cases_for([models.Subject.of("mobilenet_v3_small")])}
    assert {"mobilenet_v3_small-onnx-fp32", "mobilenet_v3_small-tflite-int8",
            "mobilenet_v3_small-tflite-int16x8", "mobilenet_v3_small-onnx-dynamic_int8"} <= ids


def test_registry_is_sorted_and_rejects_bad_names():
    assert models.names() == sorted(models.names())
    with pytest.raises(ValueError, match="may not contain"):
        models.register("bad@name", published=models.Published(1, 1.0, "x"))(lambda: None)
    with pytest.raises(ValueError, match="registered twice"):
        models.register("mobilenet_v2", published=models.Published(1, 1.0, "x"))(lambda: None)


def test_collect_only_lists_the_matrix(pytester_run):
    out = pytester_run("--collect-only", "-q", "-m", "parity")
    for model in ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"):
        for fmt, precisions in FORMATS.items():
            for p in precisions:
                assert f"test_parity[{model}-{fmt}-{p}]" in out


def test_k_selects_what_a_person_expects(pytester_run):
    out = pytester_run("--collect-only", "-q", "-m", "parity", "-k", "mobilenet_v3 and onnx")
    lines = [l for l in out.splitlines() if "::" in l]
    assert lines and all("mobilenet_v3" in l and "-onnx-" in l for l in lines)
