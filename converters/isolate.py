"""Run one build step in a child process with a wall-clock timeout and a memory ceiling.

A converter that crashes, hangs or blows up memory fails only the cases that need its artifact; the
child's combined stdout/stderr is kept as `build.log` next to the artifact (or under the cache's
`failed/` directory) and its tail is quoted in the error.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
LOG_NAME = "build.log"
# Test-only fault injection: CONVSUITE_FAULT="<step>[/<subject>]:<crash|segfault|hang|oom>" makes that
# step misbehave in the child, so the isolation itself can be tested. Never set it outside self-tests.
FAULT_ENV = "CONVSUITE_FAULT"
# Test-only network guard: with CONVSUITE_DENY_NETWORK=1 every socket connection and name lookup in the
# pytest process and every conversion child raises NetworkDenied (the no-network self-test sets it).
NETWORK_ENV = "CONVSUITE_DENY_NETWORK"
# A step that fails with less than this free beside its output is reported as a possible full disk: a tool
# that runs out of space mid-write usually fails later, reading its own truncated file (onnx: "Wire format
# was corrupt"), so the log alone rarely says so.
LOW_DISK_BYTES = 2**30
DISK_FULL_MARKS = ("No space left on device", "[Errno 28]")


class NetworkDenied(OSError):
    pass


def deny_network() -> None:
    """Make every outbound connection and DNS lookup in this process fail loudly, and say so on stderr."""
    import socket

    def refuse(*args, **_):
        target = next((a for a in args if not isinstance(a, socket.socket)), "?")
        print(f"[network guard] blocked a connection to {target!r}", file=sys.stderr, flush=True)
        raise NetworkDenied(f"network access attempted ({target!r}) while {NETWORK_ENV} is set")

    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse


class ConversionError(RuntimeError):
    """A build step failed; the message carries the reason and the tail of the step's log."""

    def __init__(self, step: str, reason: str, log_path: Path | None, tail: str = ""):
        super().__init__(step, reason)
        self.step, self.reason, self.log_path, self.tail = step, reason, log_path, tail

    def __str__(self) -> str:  # read when shown: the pipeline moves the log out of the build's directory
        where = f"\nfull log: {self.log_path}" if self.log_path else ""
        quoted = "\n".join("    | " + line for line in self.tail.splitlines())
        return f"{self.step} {self.reason}{where}\n--- last lines of the converter's log ---\n{quoted}"


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


PROGRESS_PREFIX = "[convsuite] "  # a step's own progress lines (training epochs, QAT steps) start with it


def run_step(step: str, params: dict, out_dir: Path, *, timeout: float, memory_gb: float, env=None,
             on_progress=None) -> None:
    """Run `python -m converters.worker step` with `out_dir` as its working directory. `on_progress(line)`
    gets each line the step prints that starts with PROGRESS_PREFIX (but the worker's own), as it prints it:
    a training step's epochs reach the run's live progress instead of waiting in its log.

    Raises ConversionError on a non-zero exit, a signal, a timeout or the memory ceiling.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / LOG_NAME
    # The step's temporary files (quant_pre_process's models, TensorFlow's autograph sources) go beside its
    # output, on the cache's disk, and go with the step: none pile up in /tmp, which may be a small tmpfs.
    scratch = out_dir.with_name(out_dir.name + ".scratch")
    scratch.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "converters.worker", step, json.dumps(params), str(out_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch), **(env or {})}
    try:
        _run(cmd, out_dir, log_path, env, step, timeout=timeout, memory_gb=memory_gb, on_progress=on_progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(cmd, out_dir: Path, log_path: Path, env: dict, step: str, *, timeout: float, memory_gb: float,
         on_progress) -> None:
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=out_dir, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        ps = psutil.Process(proc.pid)
        reason = None
        follow = _Follow(log_path, on_progress)
        while proc.poll() is None:
            follow.poll()
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                reason = f"timed out after {timeout:.0f} s (killed)"
            elif _tree_rss(ps) > memory_gb * 2**30:
                reason = f"exceeded the memory ceiling of {memory_gb:g} GB (killed)"
            if reason:
                _kill_group(proc)
                break
            time.sleep(0.2)
    rc = proc.wait()
    follow.poll()
    if reason is None and rc != 0:
        reason = (f"crashed with signal {signal.Signals(-rc).name}" if rc < 0 else f"failed with exit code {rc}")
    if reason:
        tail = log_tail(log_path)
        raise ConversionError(step, reason + disk_note(out_dir, tail), log_path, tail)


def disk_note(path: Path, tail: str = "") -> str:
    """What to add to a failed step's reason when its disk is (nearly) full: '' while there is room and the
    log does not say otherwise."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return ""
    if free >= LOW_DISK_BYTES and not any(mark in tail for mark in DISK_FULL_MARKS):
        return ""
    return (f"; the disk may be full ({free / 2**20:.0f} MiB free at {path}): a tool that runs out of space "
            "leaves truncated files behind, so the error below may be that. Free space, or point the artifact "
            "cache (--artifact-cache or CONVSUITE_CACHE_DIR) at a larger disk, and run again")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def inject_fault(step: str, subject: str = "") -> None:
    """Called by the worker before a step runs: act out a fault requested through FAULT_ENV as
    `<step>[/<subject id>]:<fault>` (with a subject id, only that model's step misbehaves)."""
    spec = os.environ.get(FAULT_ENV, "")
    if ":" not in spec:
        return
    target, fault = spec.split(":", 1)
    target_step, _, target_subject = target.partition("/")
    if target_step != step or (target_subject and target_subject != subject):
        return
    print(f"[fault injection] {step}: {fault}", flush=True)
    if fault == "crash":
        raise RuntimeError(f"injected converter crash in step {step}")
    if fault == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "hang":
        while True:
            time.sleep(1)
    if fault == "oom":
        hog = []
        while True:
            hog.append(b"\x01" * (256 * 2**20))  # touched pages, so RSS really grows
            time.sleep(0.05)
    raise ValueError(f"unknown fault {fault!r} in {FAULT_ENV}; use crash, segfault, hang or oom")


class _Follow:
    """The progress lines a step's log gained since the last poll, passed on whole."""

    def __init__(self, path: Path, on_line):
        self.path, self.on_line, self.offset, self.partial = path, on_line, 0, b""

    def poll(self) -> None:
        if self.on_line is None:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
                self.offset = f.tell()
        except OSError:
            return
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith(PROGRESS_PREFIX) and not line.startswith(f"{PROGRESS_PREFIX}step "):
                self.on_line(line[len(PROGRESS_PREFIX):])
