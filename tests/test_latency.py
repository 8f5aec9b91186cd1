"""Latency: every model x format x precision plus PyTorch eager, batch 1, with pytest-benchmark. Only the
runtime's invoke call is timed: conversion, session creation, input layout and quantization happen before.
pytest-benchmark is off under xdist, so these run in their own serial pass (`pytest -n 0 -m latency`)."""
from __future__ import annotations

import pytest

from converters import latency
from converters.isolate import ConversionError
from models import build, count_macs, datasets


def test_latency(latency_case, pipeline, benchmark, latency_settings, record_result):
    case, threads = latency_case, latency_settings.threads
    fields = dict(case=case.id, kind="latency", model=case.subject.id, arch=case.subject.model, format=case.format, precision=case.precision,
                  threads=threads)
    try:
        runner = pipeline.runner(case, threads=threads, optimized=latency_settings.optimized)
    except ConversionError as exc:
        record_result(error=exc.reason, **fields)
        pytest.fail(f"{case.id}: conversion failed: {exc}", pytrace=False)
    runner.set_input(datasets.parity_inputs(case.subject)[:1])
    fastest = latency.probe(runner.invoke)  # the warm-up
    rounds = latency.rounds_for(fastest, latency_settings.max_time_s, latency_settings.min_rounds)
    benchmark.pedantic(runner.invoke, rounds=rounds, iterations=1, warmup_rounds=0)

    arch = case.subject.arch()
    macs = count_macs(build(arch), arch.input)
    stats = benchmark.stats.stats
    # the report turns macs and the pass's best peak into the compute-bound floor
    measured = dict(latency_ms=stats.median * 1e3, latency_q1_ms=stats.q1 * 1e3, latency_q3_ms=stats.q3 * 1e3,
                    rounds=stats.rounds, macs=macs, peak_gflops=latency.peak_matmul_gflops(threads),
                    optimized=latency_settings.optimized, size_bytes=pipeline.artifact(case).stat().st_size)
    benchmark.extra_info.update(measured, threads=threads)
    record_result(**measured, **fields)
