"""How latency is measured and what it is measured against: the timing protocol (warm-up, rounds), the
machine's facts for pytest-benchmark (CPU flags, tool versions, threads) and the measured peak fp32 matmul
throughput that turns a model's MAC count into a compute-bound lower bound on its latency."""
from __future__ import annotations

import os
import platform
import time
from functools import lru_cache

# The CPU features that decide which kernels onnxruntime, XNNPACK and oneDNN pick.
KERNEL_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
                "amx_tile", "neon", "asimd", "asimddp")
PEAK_SIZE = 1024  # square fp32 matmul: large enough to reach the BLAS peak, about 20 ms a try at 1 thread
PEAK_TRIES = 3
WARMUP_ROUNDS = 5  # first invokes allocate arenas and pack weights (XNNPACK, oneDNN); never timed
MAX_ROUNDS = 500


def cpu_flags() -> list[str]:
    """The KERNEL_FLAGS this CPU reports (Linux /proc/cpuinfo; numpy's own detection elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith(("flags", "Features"))), [])
    except OSError:
        from numpy._core._multiarray_umath import __cpu_features__ as features

        flags = [name.lower() for name, on in features.items() if on]
    return [flag for flag in KERNEL_FLAGS if flag in flags]


def isa_cap() -> list[str]:
    """The oneDNN ISA cap this process runs under (ONEDNN_MAX_CPU_ISA or DNNL_MAX_CPU_ISA), [] when none: the
    same CPU runs other kernels under a cap, so outputs cached per CPU are keyed by it too."""
    return [f"{v}={os.environ[v]}" for v in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") if os.environ.get(v)]


def kernel_identity() -> list:
    """What decides which kernels run: the CPU's name, its kernel flags and any oneDNN ISA cap."""
    return [cpu_name(), cpu_flags(), *isa_cap()]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.processor())
    except OSError:
        return platform.processor()


@lru_cache(maxsize=1)
def _peak_operands():
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    a, b = (rng.random((PEAK_SIZE, PEAK_SIZE), dtype=np.float32) for _ in range(2))
    return a, b, torch.from_numpy(a), torch.from_numpy(b)


def peak_matmul_gflops(threads: int, tries: int = PEAK_TRIES) -> float:
    """Best observed fp32 GFLOP/s of a PEAK_SIZE^3 matmul at `threads` threads (2 n^3 flops), over the two
    BLAS libraries the stack ships (torch's oneDNN/MKL and numpy's OpenBLAS): neither wins everywhere.
    Probed next to every latency case, not once: a shared VM's speed drifts in phases (1.5x here), and a
    floor measured in a slow phase is no floor. The report takes the best probe of the pass."""
    import torch
    from threadpoolctl import threadpool_limits

    a, b, ta, tb = _peak_operands()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            best = min(probe(lambda: a @ b, tries), probe(lambda: torch.mm(ta, tb), tries))
    finally:
        torch.set_num_threads(previous)
    return 2 * PEAK_SIZE ** 3 / best / 1e9


def latency_bound_ms(macs: int, gflops: float) -> float:
    """Compute-bound floor: 2 flops per MAC at the peak matmul rate (memory traffic only adds to it)."""
    return 2 * macs / (gflops * 1e9) * 1e3


def environment() -> dict:
    """What the report records about where it ran: Python, CPU, its kernel-relevant flags, tool versions."""
    from converters.pipeline import tool_versions

    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_name(),
            "cpu_flags": cpu_flags(), "tools": tool_versions(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def machine_info(threads: int) -> dict:
    """Stable facts for pytest-benchmark's machine_info: a comparison against a run whose toolchain,
    thread count or CPU differs then warns. (Measured numbers such as the peak would make every run differ,
    so they travel in each benchmark's extra_info instead.)"""
    from converters.pipeline import tool_versions

    return {"cpu_name": cpu_name(), "cpu_flags": cpu_flags(), "cpu_count": os.cpu_count(),
            "latency_threads": threads, "tools": tool_versions()}


def rounds_for(probe_s: float, max_time_s: float, min_rounds: int) -> int:
    """Timed rounds: as many as fit in max_time_s (pytest-benchmark's --benchmark-max-time) at the probed
    per-call time, at least min_rounds (--benchmark-min-rounds), at most MAX_ROUNDS."""
    return max(min_rounds, min(MAX_ROUNDS, int(max_time_s / max(probe_s, 1e-6))))


def probe(call, times: int = WARMUP_ROUNDS) -> float:
    """Run `call` `times` times (the warm-up) and return the fastest call's seconds."""
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def slowed(call, factor: float):
    """`call`, made `factor` times slower by spinning after it (test-only: --latency-slowdown proves what
    slowdown the latency gate catches). factor 1 returns `call` itself."""
    if factor == 1:
        return call

    def run():
        start = time.perf_counter()
        call()
        until = start + (time.perf_counter() - start) * factor
        while time.perf_counter() < until:
            pass

    return run
