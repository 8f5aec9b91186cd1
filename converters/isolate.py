"""Run one build step in a child process with a wall-clock timeout and a memory ceiling.

A converter that crashes, hangs or blows up memory fails only the cases that need its artifact; the
child's combined stdout/stderr is kept as `build.log` next to the artifact (or under the cache's
`failed/` directory) and its tail is quoted in the error.

The child is forked from a server process (multiprocessing's forkserver) that has imported what every step
imports (PRELOAD: torch, numpy, onnx, onnxruntime, the format registry), once per pytest process: a new
interpreter spends 1-2 s on those imports, per step, and a cold matrix runs ~370 steps
(benchmarks/step_start.py measures both ways). The child is its own process group with its own environment,
working directory and log, exactly as a new interpreter's would be. A step whose environment must be in
place before torch is imported (Step.fresh_interpreter: kernel pinning) still gets a new interpreter, as
does every step under CONVSUITE_STEP_START=spawn, and where no forkserver can start.
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
# How steps start: "fork" (from the preloaded server; the default) or "spawn" (a new interpreter each).
START_ENV = "CONVSUITE_STEP_START"
START_MODES = ("fork", "spawn")
# What the server imports once: what every step's child would import anyway before its own tools. Not
# TensorFlow, onnx2tf or NNCF: they start threads when imported, and a fork copies none of them.
PRELOAD = ("converters.worker", "converters.formats", "onnx", "onnxruntime")


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


def _tree_rss(proc: psutil.Process | None) -> int:
    if proc is None:
        return 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # gone between polls (a forked step is reaped by its server, not by us)
        return 0
    total = 0
    for p in tree:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


PROGRESS_PREFIX = "[convsuite] "  # a step's own progress lines (training epochs, QAT steps) start with it


def run_step(step: str, params: dict, out_dir: Path, *, timeout: float, memory_gb: float, env=None,
             on_progress=None, fresh_interpreter: bool = False) -> None:
    """Run the worker for `step` (converters.worker) in a child with `out_dir` as its working directory:
    forked from the preloaded server, or `python -m converters.worker` where `fresh_interpreter` is set or
    START_ENV says spawn. `on_progress(line)` gets each line the step prints that starts with PROGRESS_PREFIX
    (but the worker's own), as it prints it: a training step's epochs reach the run's live progress instead
    of waiting in its log.

    Raises ConversionError on a non-zero exit, a signal, a timeout or the memory ceiling.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / LOG_NAME
    # The step's temporary files (quant_pre_process's models, TensorFlow's autograph sources) go beside its
    # output, on the cache's disk, and go with the step: none pile up in /tmp, which may be a small tmpfs.
    scratch = out_dir.with_name(out_dir.name + ".scratch")
    scratch.mkdir(parents=True, exist_ok=True)
    args = [step, json.dumps(params), str(out_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch), **(env or {})}
    try:
        child = None if fresh_interpreter else _fork(args, out_dir, log_path, env)
        if child is None:
            child = _Spawned([sys.executable, "-m", "converters.worker", *args], out_dir, log_path, env)
        _watch(child, out_dir, log_path, step, timeout=timeout, memory_gb=memory_gb, on_progress=on_progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def start_mode() -> str:
    mode = os.environ.get(START_ENV, "fork")
    if mode not in START_MODES:
        raise ValueError(f"{START_ENV}={mode!r}: expected one of {', '.join(START_MODES)}")
    return mode


class _Spawned:
    """A step in a new interpreter (subprocess), its output into the log."""

    def __init__(self, cmd: list[str], out_dir: Path, log_path: Path, env: dict):
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=out_dir, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.pid = self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self) -> int:
        return self.proc.wait()


class _Forked:
    """A step forked from the preloaded server (multiprocessing.Process under the forkserver context)."""

    def __init__(self, proc):
        self.proc, self.pid = proc, proc.pid

    def poll(self) -> int | None:
        return self.proc.exitcode

    def wait(self) -> int:
        self.proc.join()
        return self.proc.exitcode


_SERVER: list = []  # the forkserver context, once per process; [None] where none could start


def _server():
    if not _SERVER:
        import multiprocessing

        try:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(list(PRELOAD))
        except ValueError:  # no forkserver on this platform
            ctx = None
        _SERVER.append(ctx)
    return _SERVER[0]


def _fork(args: list[str], out_dir: Path, log_path: Path, env: dict) -> _Forked | None:
    """Start the step forked from the preloaded server; None where steps start in new interpreters."""
    if start_mode() != "fork" or _server() is None:
        return None
    log_path.write_bytes(b"")
    proc = _server().Process(target=_forked_step, args=(args, str(out_dir), str(log_path), env),
                             name=f"convsuite-step-{args[0]}")
    try:
        proc.start()
    except OSError as exc:  # the server could not start (a full /tmp, a process limit): new interpreters
        print(f"[convsuite] step server unavailable ({exc}); steps start in new interpreters", file=sys.stderr)
        _SERVER[0] = None
        return None
    return _Forked(proc)


def _forked_step(args: list[str], out_dir: str, log_path: str, env: dict) -> None:
    """In the forked child: become what a new interpreter started by _Spawned would be (own session, the
    step's environment, working directory and log on stdout and stderr), then run the worker."""
    import tempfile

    os.setsid()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # tempfile caches TMPDIR at first use: ask again
    os.chdir(out_dir)
    from converters import worker

    sys.exit(worker.main(args))


def _watch(child, out_dir: Path, log_path: Path, step: str, *, timeout: float, memory_gb: float,
           on_progress) -> None:
    start = time.monotonic()
    try:
        ps = psutil.Process(child.pid)
    except psutil.NoSuchProcess:  # a forked step is reaped by its server: a quick one may be gone already
        ps = None
    reason = None
    follow = _Follow(log_path, on_progress)
    while child.poll() is None:
        follow.poll()
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            reason = f"timed out after {timeout:.0f} s (killed)"
        elif _tree_rss(ps) > memory_gb * 2**30:
            reason = f"exceeded the memory ceiling of {memory_gb:g} GB (killed)"
        if reason:
            _kill_group(child)
            break
        time.sleep(0.2 if elapsed > 2 else 0.02)  # most steps take a second or two: notice their end soon
    rc = child.wait()
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


def _kill_group(child) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # gone, or not yet its own group (killed before its first instruction)
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child.wait()


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
