"""Case ids: stable, sorted, readable after -k, never containing '@'; built and parsed in one place."""
from __future__ import annotations

import pytest

import models
from compare.cases import CaseId
from converters import formats
from harness.matrix import RunMatrix

pytestmark = pytest.mark.selftest


def _cases(subjects, latency=False):
    return RunMatrix(subjects, [], [], None, None).cases(subjects, latency=latency)


def test_ids_are_unique_sorted_and_xdist_safe():
    subjects = [models.Subject.of(n) for n in models.names()]
    ids = [c.id for c in _cases(subjects)]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert not any("@" in i or " " in i for i in ids)
    in_matrix = [f for f in formats.formats() if f.in_matrix]
    assert len(ids) == len(subjects) * sum(len(f.precisions) for f in in_matrix)


def test_ids_read_like_what_a_person_types_and_parse_back():
    cases = _cases([models.Subject.of("mobilenet_v3_small")], latency=True)
    ids = {c.id for c in cases}
    assert {"mobilenet_v3_small-onnx-fp32", "mobilenet_v3_small-tflite-int8", "mobilenet_v3_small-pytorch-fp32",
            "mobilenet_v3_small-tflite-int16x8", "mobilenet_v3_small-onnx-dynamic_int8"} <= ids
    for case in cases:
        parsed = CaseId.parse(case.id)
        assert (parsed.subject, parsed.format, parsed.precision) == (case.subject.id, case.format, case.precision)
    assert CaseId.parse("mobilenet_v2_digits-tflite-full_int8").column == "tflite-full_int8"
    with pytest.raises(ValueError, match="not a case id"):
        CaseId.parse("mobilenet_v2")


def test_registry_is_sorted_and_rejects_bad_names():
    assert models.names() == sorted(models.names())
    with pytest.raises(ValueError, match="may not be empty or contain"):
        models.register("bad@name", published=models.Published(1, 1.0, "x"))(lambda: None)
    with pytest.raises(ValueError, match="may not be empty or contain"):
        models.register("bad-name", published=models.Published(1, 1.0, "x"))(lambda: None)
    with pytest.raises(ValueError, match="registered twice"):
        models.register("mobilenet_v2", published=models.Published(1, 1.0, "x"))(lambda: None)


def test_collect_only_lists_the_matrix(pytester_run):
    out = pytester_run("--collect-only", "-q", "-m", "parity")
    for model in ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"):
        for column in formats.columns():
            if not column.startswith("pytorch"):
                assert f"test_parity[{model}-{column}]" in out


def test_k_selects_what_a_person_expects(pytester_run):
    out = pytester_run("--collect-only", "-q", "-m", "parity", "-k", "mobilenet_v3 and onnx")
    lines = [line for line in out.splitlines() if "::" in line]
    assert lines and all("mobilenet_v3" in line and "-onnx-" in line for line in lines)
