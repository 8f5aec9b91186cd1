"""Session fixtures: the pipeline, the matrix data, golden outputs, latency settings, and how a test records
its result row."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import options as opt
from harness.matrix import load as load_matrix, plugin_files
from harness.results import RESULT_PROPERTY


@pytest.fixture(scope="session")
def matrix(pytestconfig):
    return load_matrix(pytestconfig)


@pytest.fixture(scope="session")
def budgets(matrix):
    return matrix.budgets


@pytest.fixture(scope="session")
def known_failures(matrix):
    return matrix.known


@pytest.fixture(scope="session")
def pipeline(pytestconfig):
    from converters.cache import ArtifactCache
    from converters.pipeline import Pipeline

    return Pipeline(ArtifactCache(pytestconfig.getoption(opt.CACHE)),
                    timeout=pytestconfig.getoption(opt.TIMEOUT), memory_gb=pytestconfig.getoption(opt.MEMORY),
                    run_id=os.environ.get(opt.ENV_RUN_ID, ""), calibration=pytestconfig.getoption(opt.CALIBRATION),
                    plugin_files=tuple(plugin_files(pytestconfig)))


@pytest.fixture(scope="session")
def golden_store(pytestconfig, pipeline):
    """golden_store(subject) -> Golden; regenerated from live PyTorch only under --update-golden. A real-weight
    QAT subject (models.qat) gets its float model's: it is judged by agreement with it."""
    from compare import golden
    from models import datasets
    from models.images import array_digest

    root, update, done = Path(pytestconfig.getoption(opt.GOLDEN_DIR)), pytestconfig.getoption(opt.UPDATE_GOLDEN), {}

    def get(subject):
        from models.qat import float_source

        subject = float_source(subject) or subject  # a real-weight QAT subject: its float model's outputs
        if subject.id not in done:
            inputs = datasets.parity_inputs(subject)
            identity, digest = subject.identity(), array_digest(inputs)
            declared = None
            if subject.user:
                from models.user import output_layout

                declared = output_layout(subject)
            if update:
                import torch

                manifest = golden.manifest(subject.id, identity, datasets.parity_recipe(subject), digest,
                                           torch.__version__)
                if declared is not None:
                    manifest["outputs"] = declared
                done[subject.id] = golden.save(root, subject.id, pipeline.reference_outputs(subject, inputs),
                                               manifest)
            else:
                done[subject.id] = golden.load(root, subject.id, identity, digest, declared)
        return done[subject.id]

    return get


@dataclass(frozen=True)
class LatencySettings:
    threads: int
    optimized: bool
    max_time_s: float  # pytest-benchmark's --benchmark-max-time and --benchmark-min-rounds, honoured
    min_rounds: int
    slowdown: float = 1.0  # test-only --latency-slowdown


@pytest.fixture(scope="session")
def latency_settings(pytestconfig):
    return LatencySettings(threads=pytestconfig.getoption(opt.LATENCY_THREADS),
                           optimized=not pytestconfig.getoption(opt.LATENCY_UNOPTIMIZED),
                           max_time_s=float(pytestconfig.getoption("benchmark_max_time")),
                           min_rounds=int(pytestconfig.getoption("benchmark_min_rounds")),
                           slowdown=pytestconfig.getoption(opt.LATENCY_SLOWDOWN))


@pytest.fixture
def record_result(record_property):
    """record_result(row): a compare.cases.ResultRow that travels to the controller on the test report."""

    def record(row) -> None:
        record_property(RESULT_PROPERTY, row.to_json())

    return record


@pytest.fixture
def conversion(record_result, known_failures):
    """`with conversion(row):` a failed conversion step records the row with its error and fails the test
    with the converter's log tail; a user's model that does not fit (models.ModelSpecError: its factory
    raised, its outputs differ from the declaration) does the same with what to fix; anything else
    propagates. A case with a `crash` known failure is a known failure while its conversion fails with
    that error, and fails once it converts (strict)."""
    from converters.isolate import ConversionError
    from models.api import ModelSpecError

    @contextmanager
    def guard(row):
        crash = known_failures.crash_for(row.case)
        try:
            yield
        except ConversionError as exc:
            row.error = exc.reason
            record_result(row)
            if crash is not None and crash.crashed(str(exc)):
                pytest.xfail(f"known failure: {crash.reason} [crashed as pinned: {crash.crash!r}]")
            pytest.fail(f"{row.case}: conversion failed: {exc}", pytrace=False)
        except ModelSpecError as exc:
            row.error = str(exc).splitlines()[0]
            record_result(row)
            pytest.fail(f"{row.case}: {exc}", pytrace=False)
        if crash is not None:
            pytest.fail(f"{row.case}: known to crash ({crash.crash!r}) but it converted: remove its entry from "
                        "the known-failures file", pytrace=False)

    return guard
