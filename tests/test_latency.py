"""Latency: every model x format x precision plus PyTorch eager, batch 1, with pytest-benchmark. Only the
runtime's invoke call is timed: conversion, session creation, input layout and quantization happen before.
pytest-benchmark is off under xdist, so these run in their own serial pass (`pytest -n 0 -m latency`)."""
from __future__ import annotations

from converters import latency
from harness.checks import row_for
from models import datasets


def test_latency(latency_case, pipeline, benchmark, latency_settings, record_result, conversion):
    case, threads = latency_case, latency_settings.threads
    row = row_for(case, "latency", threads=threads)
    with conversion(row):
        runner = pipeline.runner(case, threads=threads, optimized=latency_settings.optimized)
    runner.set_input(datasets.parity_inputs(case.subject)[:1])
    invoke = latency.slowed(runner.invoke, latency_settings.slowdown)
    fastest = latency.probe(invoke)  # the warm-up
    rounds = latency.rounds_for(fastest, latency_settings.max_time_s, latency_settings.min_rounds)
    peak_before = latency.peak_matmul_gflops(threads)
    benchmark.pedantic(invoke, rounds=rounds, iterations=1, warmup_rounds=0)

    stats = benchmark.stats.stats
    # the report turns macs and the pass's best peak into the compute-bound floor
    row.latency_ms, row.latency_q1_ms, row.latency_q3_ms = stats.median * 1e3, stats.q1 * 1e3, stats.q3 * 1e3
    row.latency_min_ms, row.rounds, row.macs = stats.min * 1e3, stats.rounds, case.subject.macs()
    # the in-run reference: the machine's matmul speed right before and after the case (the faster of the
    # two), so a gate can compare cases between runs in units of this machine's speed at the time
    row.peak_gflops = max(peak_before, latency.peak_matmul_gflops(threads))
    row.optimized = latency_settings.optimized
    row.size_bytes = pipeline.artifact_size(case)
    benchmark.extra_info.update(latency_ms=row.latency_ms, macs=row.macs, peak_gflops=row.peak_gflops,
                                threads=threads, optimized=row.optimized, size_bytes=row.size_bytes)
    record_result(row)
