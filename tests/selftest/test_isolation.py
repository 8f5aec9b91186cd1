"""Conversion isolation: a crashing, hanging or memory-hungry converter fails only its own cases, within
its limits, with the converter's own error quoted."""
from __future__ import annotations

import time

import pytest

from converters.isolate import FAULT_ENV, ConversionError, run_step

pytestmark = pytest.mark.selftest


@pytest.mark.parametrize("fault, limit, words", [
    ("crash", 60, "injected converter crash in step onnx"),
    ("segfault", 60, "crashed with signal SIGSEGV"),
    ("hang", 4, "timed out after 4 s"),
    ("oom", 60, "exceeded the memory ceiling of 1 GB"),
])
def test_step_faults_become_conversion_errors(tmp_path, monkeypatch, fault, limit, words):
    monkeypatch.setenv(FAULT_ENV, f"onnx:{fault}")
    start = time.monotonic()
    with pytest.raises(ConversionError) as info:
        run_step("onnx", {}, tmp_path, timeout=limit, memory_gb=1)
    assert words in str(info.value)
    assert time.monotonic() - start < limit + 30
    assert (tmp_path / "build.log").is_file() and "[fault injection] onnx" in str(info.value)


def test_a_broken_converter_fails_only_its_own_cases(pytester_run, tmp_path):
    """End to end: onnx2tf hangs; the TFLite case fails on its timeout, the ONNX case still passes."""
    out = pytester_run("-m", "parity", "-k", "mobilenet_v3_small-onnx-fp32 or mobilenet_v3_small-tflite-fp32",
                       "--artifact-cache", str(tmp_path / "cache"), "--convert-timeout", "60",
                       env={FAULT_ENV: "tflite:hang"}, ok=(1,))
    assert "1 failed, 1 passed" in out
    assert "mobilenet_v3_small-tflite-fp32: conversion failed: tflite timed out after 60 s" in out
    assert "[fault injection] tflite: hang" in out  # the converter's own log, quoted


def test_a_crash_is_reported_once_per_run_not_retried_per_case(pytester_run, tmp_path):
    out = pytester_run("-m", "parity", "-k", "mobilenet_v3_small-tflite-fp32 or mobilenet_v3_small-tflite-fp16",
                       "--artifact-cache", str(tmp_path / "cache"), env={FAULT_ENV: "tflite:crash"}, ok=(1,))
    assert "2 failed" in out
    assert out.count("injected converter crash in step tflite") >= 2
    logs = list((tmp_path / "cache" / "failed").glob("tflite-*.log"))
    assert len(logs) == 1 and logs[0].read_text().count("[fault injection] tflite: crash") == 1


def test_a_model_that_fails_to_export_fails_only_its_cases(pytester_run, tmp_path):
    """mobilenet_v3_small's ONNX export fails: its ONNX and TFLite cases fail naming the export step, and
    another model's case in the same run passes."""
    cases = ("test_parity[mobilenet_v3_small-onnx-fp32] or test_parity[mobilenet_v3_small-tflite-fp32] "
             "or test_parity[mobilenet_v2-onnx-fp32]")
    out = pytester_run("-m", "parity", "-k", cases, "--artifact-cache", str(tmp_path / "cache"),
                       env={FAULT_ENV: "onnx/mobilenet_v3_small:crash"}, ok=(1,))
    assert "2 failed, 1 passed" in out, out[-3000:]
    for case in ("mobilenet_v3_small-onnx-fp32", "mobilenet_v3_small-tflite-fp32"):
        assert f"{case}: conversion failed: onnx " in out
    assert "injected converter crash in step onnx" in out


def test_a_conversion_known_to_crash_is_known_while_it_crashes_that_way_and_fails_once_it_converts(pytester_run,
                                                                                                 tmp_path):
    """A `crash` known failure: the TFLite case crashing with the pinned error is a known failure (xfail);
    an entry for a case that converts fails, saying to remove it (strict)."""
    known = tmp_path / "known.toml"
    known.write_text('[[known_failure]]\ncase = "mobilenet_v3_small-tflite-fp32"\ntest = "parity"\n'
                     'reason = "the injected crash"\ncrash = "injected converter crash in step tflite"\n\n'
                     '[[known_failure]]\ncase = "mobilenet_v3_small-onnx-fp32"\ntest = "parity"\n'
                     'reason = "fixed since"\ncrash = "no longer seen"\n')
    out = pytester_run("-m", "parity", "-k", "mobilenet_v3_small-onnx-fp32 or mobilenet_v3_small-tflite-fp32",
                       "--artifact-cache", str(tmp_path / "cache"), "--known-failures", str(known),
                       env={FAULT_ENV: "tflite:crash"}, ok=(1,))
    assert "1 failed," in out and " 1 xfailed" in out, out[-3000:]
    assert "known failure: the injected crash [crashed as pinned" in out
    assert "mobilenet_v3_small-onnx-fp32: known to crash ('no longer seen') but it converted" in out


def test_a_steps_progress_lines_arrive_while_it_runs(tmp_path):
    """A step's own `[convsuite] ` lines (training epochs) reach on_progress as it prints them, not at its end;
    the worker's own lines and anything else stay in the log."""
    plugin = tmp_path / "probe_format.py"
    plugin.write_text(
        "import time\n"
        "from converters.formats import Format, Step, register\n"
        "def build(params, out_dir):\n"
        "    print('[convsuite] training epoch 1/2', flush=True)\n"
        "    print('noise', flush=True)\n"
        "    time.sleep(3)\n"
        "    print('[convsuite] training epoch 2/2', flush=True)\n"
        "register(Format('probe', {'fp32': ('progress_probe', 'x')}, object,\n"
        "                steps=(Step('progress_probe', build),)))\n")
    seen = []
    start = time.monotonic()
    run_step("progress_probe", {"plugins": [str(plugin)]}, tmp_path / "out", timeout=60, memory_gb=2,
             on_progress=lambda line: seen.append((line, time.monotonic() - start)))
    ended = time.monotonic() - start
    assert [line for line, _ in seen] == ["training epoch 1/2", "training epoch 2/2"]
    assert seen[0][1] < ended - 2, \
        f"the first epoch line arrived {seen[0][1]:.1f} s in, the step ended at {ended:.1f} s"


def _probe(tmp_path, body: str):
    """A one-step format plug-in whose build runs `body` (indented code) in the conversion child."""
    plugin = tmp_path / "probe_format.py"
    plugin.write_text(
        "import errno, os, tempfile\n"
        "from converters.formats import Format, Step, register\n"
        "def build(params, out_dir):\n" + body +
        "register(Format('probe', {'fp32': ('disk_probe', 'x')}, object, steps=(Step('disk_probe', build),)))\n")
    return {"plugins": [str(plugin)]}


def test_a_steps_temporary_files_stay_beside_it_and_go_with_it(tmp_path):
    """The child's TMPDIR is a scratch directory beside the step's output (the cache's disk, not /tmp), and
    it is removed when the step ends, so temporary files from converters never pile up."""
    params = _probe(tmp_path, "    fd, path = tempfile.mkstemp()\n"
                              "    print('[convsuite] temp ' + path, flush=True)\n")
    seen = []
    run_step("disk_probe", params, tmp_path / "out", timeout=60, memory_gb=2, on_progress=seen.append)
    path = seen[0].removeprefix("temp ")
    assert path.startswith(str(tmp_path / "out.scratch") + "/"), path
    assert not (tmp_path / "out.scratch").exists()


def test_a_full_disk_is_named_in_the_error(tmp_path, monkeypatch):
    """A tool that runs out of space is reported as such, with what to do; so is any failure while the disk
    is nearly full (a truncated file read back fails with a parse error that never mentions space)."""
    from converters import isolate

    full = _probe(tmp_path, "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir / 'model.onnx'))\n")
    with pytest.raises(ConversionError) as info:
        run_step("disk_probe", full, tmp_path / "a", timeout=60, memory_gb=2)
    assert "the disk may be full" in str(info.value) and "CONVSUITE_CACHE_DIR" in str(info.value)

    parse = _probe(tmp_path, "    raise ValueError('Wire format was corrupt')\n")
    with pytest.raises(ConversionError) as info:
        run_step("disk_probe", parse, tmp_path / "b", timeout=60, memory_gb=2)
    assert "disk may be full" not in str(info.value)  # room on the disk: the error is the tool's own
    monkeypatch.setattr(isolate, "LOW_DISK_BYTES", 2**62)
    with pytest.raises(ConversionError) as info:
        run_step("disk_probe", parse, tmp_path / "c", timeout=60, memory_gb=2)
    assert "the disk may be full" in str(info.value) and "Wire format was corrupt" in str(info.value)
