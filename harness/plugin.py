"""The pytest plugin: options, markers, parametrization of the matrix and the collection rules. Fixtures
live in harness.fixtures, result collection in harness.results; the domain (subjects, formats, budgets,
verdicts, the report) lives in models/, converters/, compare/ and report/."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from harness import options as opt
from harness.matrix import load as load_matrix, plugin_files

PROGRESS_KEY = pytest.StashKey["object"]()
MODEL_FILES_KEY = pytest.StashKey[dict]()
MARKERS = {
    "parity": "converted model vs stored PyTorch golden outputs",
    "accuracy": "converted model's accuracy and parity on a labelled test split vs PyTorch's",
    "drift": "live PyTorch vs the stored golden outputs",
    "architecture": "parameter count and MACs vs the published figures",
    "selftest": "tests of the harness itself",
    "latency": "pytest-benchmark latency cases; a serial pass of their own: pytest -n 0 -m latency",
    "slow": "heavy models (ResNet-50): only in the full matrix (tox -e matrix)",
    "extended": "models beyond CI's representative profile (tox -e tests deselects them; tox -e matrix runs them)",
    "sparsity": "a pruned model's zeros or removed channels, read from each converted artifact's weights",
    "variant": "pruned, distilled and quantization-aware trained variants of a digits model (models.variants)",
    "qat": "a QAT model's learned activation scales, read from each converted int8 artifact",
    "fuzz": "the long fuzzing profile (generated architectures through every path): pytest -m fuzz",
}


def pytest_addoption(parser):
    opt.add_options(parser)


def pytest_configure(config):
    from converters import formats
    from converters.isolate import NETWORK_ENV, deny_network

    if os.environ.get(NETWORK_ENV):  # the no-network self-test: conversion children inherit it too
        deny_network()
    try:
        for path in plugin_files(config):
            formats.load_file(path)
    except (OSError, ValueError, ImportError) as exc:
        raise pytest.UsageError(f"{opt.FORMATS_FROM}: {exc}") from None
    from harness.matrix import model_files
    from models.registry import RegistryError, load_file

    loaded = config.stash[MODEL_FILES_KEY] = {}
    for spec in model_files(config):  # one broken file fails its own test; the rest of the run goes on
        try:
            loaded[spec] = ("ok", ", ".join(load_file(spec)))
        except RegistryError as exc:
            loaded[spec] = ("error", str(exc))
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    for fmt in formats.formats():
        config.addinivalue_line("markers", f"{fmt.name}: {fmt.name} cases")
    if not getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        # No workers, so nothing is distributed: say so, or pytest-benchmark (configured after this hook)
        # sees addopts' --dist loadgroup and switches itself off.
        config.option.dist = "no"
    if not hasattr(config, "workerinput"):  # controller: one run id shared by every xdist worker
        os.environ.setdefault(opt.ENV_RUN_ID, uuid.uuid4().hex)
        _check_baseline(config)
    from harness.results import ResultCollector

    config.pluginmanager.register(ResultCollector(config), "convsuite-results")


def _check_baseline(config) -> None:
    baseline = config.getoption(opt.REPORT_BASELINE)
    if not baseline:
        return
    from report.files import load_report

    if not config.getoption(opt.REPORT_DIR):
        raise pytest.UsageError(f"{opt.REPORT_BASELINE} compares into a report: add {opt.REPORT_DIR}=DIR")
    try:
        load_report(baseline)
    except ValueError as exc:
        raise pytest.UsageError(f"{opt.REPORT_BASELINE}: {exc}") from None


def _marks(case_or_subject, kind: str, fmt=None, group: str | None = None):
    subject = getattr(case_or_subject, "subject", case_or_subject)
    names = (*subject.entry.marks, *subject.marks)
    marks = [getattr(pytest.mark, kind)] + [getattr(pytest.mark, m) for m in names]
    if group:  # with --dist loadgroup, one worker converts a model while the others convert other models
        marks.append(pytest.mark.xdist_group(group))
    if fmt is not None:
        marks.append(getattr(pytest.mark, fmt.name))
        reason = fmt.unavailable()  # the GPU check inside is cached (converters.formats.tensorrt.gpu)
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
    return marks


def _case_params(cases, kind: str, grouped: bool = True):
    from converters import formats

    return [pytest.param(c, id=c.id, marks=_marks(c, kind, formats.get(c.format), c.subject.id if grouped else None))
            for c in cases]


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "models_file" in names:
        files = metafunc.config.stash.get(MODEL_FILES_KEY, {})
        metafunc.parametrize("models_file", [pytest.param((spec, *files[spec]), id=Path(spec).name)
                                             for spec in sorted(files)])
    if not {"parity_case", "accuracy_case", "latency_case", "sparsity_case", "qat_case", "natural_subject",
            "trained_subject"} & set(names):
        return
    matrix = load_matrix(metafunc.config)
    if "parity_case" in names:
        metafunc.parametrize("parity_case", _case_params(matrix.cases(matrix.parity_subjects), "parity"))
    if "accuracy_case" in names:
        metafunc.parametrize("accuracy_case", _case_params(matrix.cases(matrix.accuracy), "accuracy"))
    if "sparsity_case" in names:
        metafunc.parametrize("sparsity_case",
                             _case_params(matrix.cases(matrix.pruned, inspected=True), "sparsity"))
    if "qat_case" in names:
        metafunc.parametrize("qat_case", _case_params(matrix.qat_cases(), "qat"))
    if "latency_case" in names:
        timed = matrix.cases(matrix.natural + matrix.variants + matrix.qat_natural, latency=True)
        metafunc.parametrize("latency_case", _case_params(timed, "latency", grouped=False))
    for fixture, subjects in (("natural_subject", matrix.natural), ("trained_subject", matrix.trained)):
        if fixture in names:
            kind = next(m.name for m in metafunc.definition.iter_markers() if m.name in MARKERS)
            metafunc.parametrize(fixture, [pytest.param(s, id=s.id, marks=_marks(s, kind, group=s.id))
                                           for s in subjects])


# What a cold run of the CI profile writes into the artifact cache, measured by .ci/run from a fresh clone
# (README, "Disk"): with less free there, the header says so before the first build fails on a full disk.
COLD_CI_CACHE_GIB = 4  # 3.8 GiB measured (README, "Disk")


def pytest_report_header(config):
    """Where the artifacts and temp files go, and the room left there."""
    import shutil
    import tempfile

    lines = []
    for label, path in (("artifact cache", Path(config.getoption(opt.CACHE)).expanduser().resolve()),
                        ("temp dir", Path(tempfile.gettempdir()))):
        existing = next((p for p in (path, *path.parents) if p.exists()), path)
        free = shutil.disk_usage(existing).free / 2**30
        lines.append(f"convsuite {label}: {path} ({free:.1f} GiB free)")
        if label == "artifact cache" and free < COLD_CI_CACHE_GIB:
            lines.append(f"convsuite WARNING: a cold run of the CI profile writes about {COLD_CI_CACHE_GIB} GiB "
                         f"there: free space, or point {opt.CACHE} (${opt.ENV_CACHE}) at a larger disk; "
                         "`python -m converters.cache usage` shows what the cache holds")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    """The controller shows build steps as they start and finish (workers print nothing until a test ends)."""
    config = session.config
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if hasattr(config, "workerinput") or reporter is None or config.option.collectonly:
        return
    from harness.progress import ProgressTail

    path = Path(config.getoption(opt.CACHE)).expanduser().resolve() / "progress" / f"{os.environ[opt.ENV_RUN_ID]}.log"
    config.stash[PROGRESS_KEY] = tail = ProgressTail(path, lambda line: reporter.write_line(line))
    tail.start()


def pytest_sessionfinish(session):
    tail = session.config.stash.get(PROGRESS_KEY, None)
    if tail is not None:
        tail.stop()


def pytest_collection_modifyitems(config, items):
    """Latency cases need pytest-benchmark, which switches itself off under xdist: skip them there, with the
    command that runs them, instead of timing nothing."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.disabled:
        return
    skip = pytest.mark.skip(reason="latency runs in its own serial pass (pytest-benchmark is off under xdist "
                                   "and --benchmark-disable): pytest -n 0 -m latency")
    for item in items:
        if item.get_closest_marker("latency"):
            item.add_marker(skip)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Tool versions, thread count and CPU flags in every saved benchmark: pytest-benchmark warns when a
    comparison's machine_info differs, so another toolchain or machine is visible as such."""
    from converters.latency import machine_info as convsuite_machine_info

    machine_info["convsuite"] = convsuite_machine_info(config.getoption(opt.LATENCY_THREADS))
