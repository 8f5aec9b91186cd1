"""pytest wiring for the conformance suite: options, markers, the case matrix, shared fixtures and the
end-of-run summary. Holds no numbers and no conversion logic (see models/, converters/, compare/)."""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
OPT_UPDATE_GOLDEN = "--update-golden"
OPT_CACHE = "--artifact-cache"
OPT_TIMEOUT = "--convert-timeout"
OPT_MEMORY = "--convert-memory-gb"
OPT_BUDGETS = "--budgets"
OPT_KNOWN_FAILURES = "--known-failures"
OPT_WEIGHTS = "--weights"
OPT_CALIBRATION = "--calibration-mode"
OPT_REPORT_DIR = "--report-dir"
OPT_GOLDEN_DIR = "--golden-dir"
OPT_USER_DATA = "--user-data"
OPT_USER_MODEL = "--user-model"
OPT_USER_CHECKPOINT = "--user-checkpoint"
OPT_LATENCY_THREADS = "--latency-threads"
OPT_LATENCY_UNOPTIMIZED = "--latency-unoptimized"
OPT_REPORT_BASELINE = "--report-baseline"
INI_WEIGHTS = "convsuite_weights"
ENV_CACHE = "CONVSUITE_CACHE_DIR"
ENV_RUN_ID = "CONVSUITE_RUN_ID"
RESULT_PROPERTY = "convsuite_result"
SHORT_RUN = 20  # runs with at most this many result rows print every row in the terminal summary

MARKERS = {
    "parity": "converted model vs stored PyTorch golden outputs",
    "accuracy": "converted model's accuracy on a labelled test split vs PyTorch's",
    "drift": "live PyTorch vs the stored golden outputs",
    "architecture": "parameter count and MACs vs the published figures",
    "selftest": "tests of the harness itself",
    "latency": "pytest-benchmark latency cases; a serial pass of their own: pytest -n 0 -m latency",
    "slow": "heavy models (ResNet-50); CI's quick profile deselects them with -m 'not slow'",
    "onnx": "onnxruntime cases",
    "tflite": "TFLite (onnx2tf) cases",
    "pytorch": "PyTorch eager cases",
}


def pytest_addoption(parser):
    group = parser.getgroup("convsuite", "model-conversion conformance suite")
    group.addoption(OPT_UPDATE_GOLDEN, action="store_true",
                    help="regenerate golden/ outputs of the selected models from live PyTorch (never implicit)")
    group.addoption(OPT_GOLDEN_DIR, default=str(ROOT / "golden"), metavar="DIR",
                    help="where golden outputs are read and (with --update-golden) written (default golden/)")
    group.addoption(OPT_CACHE, metavar="DIR", default=os.environ.get(ENV_CACHE, str(ROOT / ".convsuite-cache")),
                    help=f"artifact cache directory, shared by xdist workers and later runs "
                         f"(default: ${ENV_CACHE} or .convsuite-cache/ in the project)")
    group.addoption(OPT_TIMEOUT, type=float, default=900, metavar="SECONDS",
                    help="wall-clock limit of one conversion step (default 900)")
    group.addoption(OPT_MEMORY, type=float, default=10, metavar="GB",
                    help="memory ceiling of one conversion step's process tree (default 10)")
    group.addoption(OPT_BUDGETS, default=str(ROOT / "budgets.toml"), metavar="FILE",
                    help="parity/accuracy budgets (default budgets.toml)")
    group.addoption(OPT_KNOWN_FAILURES, default=str(ROOT / "known_failures.toml"), metavar="FILE",
                    help="declared known failures, run as strict xfails (default known_failures.toml)")
    group.addoption(OPT_WEIGHTS, action="append", default=[], metavar="MODEL=CHECKPOINT",
                    help="use a checkpoint (state_dict .pth, loaded weights-only, or .safetensors) for MODEL; "
                         f"repeatable; also settable as the `{INI_WEIGHTS}` ini option")
    group.addoption(OPT_CALIBRATION, default="natural", choices=("natural", "wrong_scale", "wrong_data"),
                    help="calibration data for integer quantization; the wrong_* modes exist to prove that "
                         "a mis-calibrated conversion is caught (default natural)")
    group.addoption(OPT_REPORT_DIR, default=None, metavar="DIR",
                    help="write the conformance report (Markdown, HTML, JSON, plots) to DIR at the end of the run")
    group.addoption(OPT_USER_DATA, metavar="DIR", default=None,
                    help="run the accuracy cases on your labelled image folder (one sub-folder per class) "
                         f"instead of digits; needs {OPT_USER_MODEL}")
    group.addoption(OPT_USER_MODEL, metavar="NAME", default=None,
                    help=f"registered architecture for {OPT_USER_DATA}; its class count is the model's own "
                         f"(1000) unless {OPT_USER_CHECKPOINT} says otherwise by its classifier shape")
    group.addoption(OPT_USER_CHECKPOINT, metavar="FILE", default=None,
                    help=f"your weights for {OPT_USER_MODEL} (state_dict .pth loaded weights-only, or .safetensors)")
    group.addoption(OPT_REPORT_BASELINE, metavar="REPORT_JSON", default=None,
                    help=f"a previous run's report.json: the report of this run ({OPT_REPORT_DIR}) then lists what "
                         "regressed and what improved since (parity, accuracy, latency beyond noise)")
    group.addoption(OPT_LATENCY_THREADS, type=int, default=1, metavar="N",
                    help="threads of every runtime in the latency cases, recorded with each result (default 1)")
    group.addoption(OPT_LATENCY_UNOPTIMIZED, action="store_true",
                    help="test-only: time slower kernels (onnxruntime without layout optimizations, TFLite "
                         "without XNNPACK, PyTorch without oneDNN) to prove the benchmark gate trips")
    parser.addini(INI_WEIGHTS, type="linelist", default=[],
                  help="MODEL=CHECKPOINT lines: checkpoints to use instead of the registered weights")


def pytest_configure(config):
    from converters.isolate import NETWORK_ENV, deny_network

    if os.environ.get(NETWORK_ENV):  # the no-network self-test: conversion children inherit it too
        deny_network()
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if not getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        # No workers, so nothing is distributed: say so, or pytest-benchmark (configured after this hook)
        # sees addopts' --dist loadgroup and switches itself off.
        config.option.dist = "no"
    if not hasattr(config, "workerinput"):  # controller: one run id shared by every xdist worker
        os.environ.setdefault(ENV_RUN_ID, uuid.uuid4().hex)
    baseline = config.getoption(OPT_REPORT_BASELINE)
    if baseline and not hasattr(config, "workerinput"):
        from report.files import load_report

        if not config.getoption(OPT_REPORT_DIR):
            raise pytest.UsageError(f"{OPT_REPORT_BASELINE} compares into a report: add {OPT_REPORT_DIR} DIR")
        try:
            load_report(Path(baseline))
        except ValueError as exc:
            raise pytest.UsageError(f"{OPT_REPORT_BASELINE}: {exc}") from None
    config.pluginmanager.register(ResultCollector(config), "convsuite-results")


# --- the matrix ---------------------------------------------------------------------------------------------

def weight_overrides(config) -> dict[str, str]:
    """MODEL -> checkpoint path, from the ini option and then the command line (which wins)."""
    import models

    out = {}
    for line in list(config.getini(INI_WEIGHTS)) + list(config.getoption(OPT_WEIGHTS)):
        name, sep, path = line.partition("=")
        if not sep or not path:
            raise pytest.UsageError(f"{OPT_WEIGHTS} expects MODEL=CHECKPOINT, got {line!r}")
        if name.strip() not in models.names():
            raise pytest.UsageError(f"{OPT_WEIGHTS}: unknown model {name!r}; registered: {', '.join(models.names())}")
        out[name.strip()] = str(Path(path.strip()).expanduser().resolve())
    return out


def natural_subjects(config):
    """Every registered model at its published configuration (with user checkpoints applied)."""
    import models

    overrides = weight_overrides(config)
    return [models.Subject.of(name, {"kind": "checkpoint", "path": overrides[name]} if name in overrides else None)
            for name in models.names()]


def accuracy_subjects(config):
    """The user's folder subject when --user-data is given, else every architecture trained on digits."""
    if config.getoption(OPT_USER_DATA):
        return [user_subject(config)]
    return digits_subjects(config)


def user_subject(config):
    import models
    from models.weights import load_state_dict

    name, data = config.getoption(OPT_USER_MODEL), Path(config.getoption(OPT_USER_DATA)).resolve()
    if name not in models.names():
        raise pytest.UsageError(f"{OPT_USER_DATA} needs {OPT_USER_MODEL} NAME, one of: {', '.join(models.names())}")
    if not data.is_dir():
        raise pytest.UsageError(f"{OPT_USER_DATA} {data}: not a directory")
    checkpoint, weights, classes = config.getoption(OPT_USER_CHECKPOINT), None, None
    if checkpoint:
        checkpoint = str(Path(checkpoint).expanduser().resolve())
        weights = {"kind": "checkpoint", "path": checkpoint}
        classifier = [v for k, v in load_state_dict(checkpoint).items() if k.endswith(".weight") and v.ndim == 2]
        classes = classifier[-1].shape[0] if classifier else None
    return models.Subject.of(name, weights, id=f"{name}_user", data=f"folder:{data}",
                             num_classes=None if classes in (None, models.get(name).arch.num_classes) else classes)


def digits_subjects(config):
    """Every registered architecture with a 10-class head at 32x32, trained on digits by the suite."""
    import models
    from models.digits import SIZE
    from models.weights import SeededInit, weights_to_spec

    seeded = weights_to_spec(SeededInit())  # trained from scratch, even where the registry has a checkpoint
    return [models.Subject.of(name, seeded, id=f"{name}_digits", num_classes=10, input_size=SIZE, data="digits")
            for name in models.names()]


def _marks(config, case_id: str, kind: str, entry_marks, fmt: str | None = None, group: str | None = None):
    marks = [getattr(pytest.mark, kind)] + [getattr(pytest.mark, m) for m in entry_marks]
    if group:  # with --dist loadgroup, one worker converts a model while the others convert other models
        marks.append(pytest.mark.xdist_group(group))
    if fmt:
        marks.append(getattr(pytest.mark, fmt))
    known = config._convsuite_known_failures.lookup(case_id, kind) if kind in ("parity", "accuracy") else None
    if known:
        marks.append(pytest.mark.xfail(reason=f"known failure: {known.reason}", strict=True))
    return marks


def pytest_generate_tests(metafunc):
    from converters.pipeline import cases_for

    config = metafunc.config
    _load_matrix_data(config)
    if "parity_case" in metafunc.fixturenames:
        params = [pytest.param(c, id=c.id, marks=_marks(config, c.id, "parity", c.subject.entry.marks, c.format,
                                                        group=c.subject.id))
                  for c in cases_for(natural_subjects(config))]
        metafunc.parametrize("parity_case", params)
    if "accuracy_case" in metafunc.fixturenames:
        params = [pytest.param(c, id=c.id, marks=_marks(config, c.id, "accuracy", c.subject.entry.marks, c.format,
                                                        group=c.subject.id))
                  for c in cases_for(accuracy_subjects(config))]
        metafunc.parametrize("accuracy_case", params)
    if "latency_case" in metafunc.fixturenames:
        params = [pytest.param(c, id=c.id, marks=_marks(config, c.id, "latency", c.subject.entry.marks, c.format))
                  for c in cases_for(natural_subjects(config), reference=True)]
        metafunc.parametrize("latency_case", params)
    if "subject" in metafunc.fixturenames:
        kind = next(m.name for m in metafunc.definition.iter_markers() if m.name in ("drift", "architecture", "accuracy"))
        # the trained-model floor applies to the suite's own digits training only
        subjects = ([] if config.getoption(OPT_USER_DATA) else digits_subjects(config)) if kind == "accuracy" \
            else natural_subjects(config)
        params = [pytest.param(s, id=s.id, marks=_marks(config, s.id, kind, s.entry.marks, group=s.id))
                  for s in subjects]
        metafunc.parametrize("subject", params)


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

    machine_info["convsuite"] = convsuite_machine_info(config.getoption(OPT_LATENCY_THREADS))


def _load_matrix_data(config):
    """Load budgets and known failures once, and check that every override names a real case."""
    if hasattr(config, "_convsuite_budgets"):
        return
    from compare.budgets import BudgetError, Budgets
    from compare.known_failures import KnownFailureError, KnownFailures
    from converters.pipeline import cases_for

    try:
        budgets = Budgets.load(config.getoption(OPT_BUDGETS))
        known = KnownFailures.load(config.getoption(OPT_KNOWN_FAILURES))
        parity_ids = [c.id for c in cases_for(natural_subjects(config))]
        accuracy_ids = [c.id for c in cases_for(digits_subjects(config))]
        if config.getoption(OPT_USER_DATA):
            accuracy_ids += [c.id for c in cases_for([user_subject(config)])]
        budgets.validate_ids(parity_ids + accuracy_ids)
        known.validate_ids({"parity": parity_ids, "accuracy": accuracy_ids})
    except (BudgetError, KnownFailureError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config._convsuite_budgets, config._convsuite_known_failures = budgets, known


# --- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def budgets(pytestconfig):
    _load_matrix_data(pytestconfig)
    return pytestconfig._convsuite_budgets


@pytest.fixture(scope="session")
def pipeline(pytestconfig):
    from converters.cache import ArtifactCache
    from converters.pipeline import Pipeline

    return Pipeline(ArtifactCache(pytestconfig.getoption(OPT_CACHE)),
                    timeout=pytestconfig.getoption(OPT_TIMEOUT), memory_gb=pytestconfig.getoption(OPT_MEMORY),
                    run_id=os.environ.get(ENV_RUN_ID, ""), calibration=pytestconfig.getoption(OPT_CALIBRATION))


@pytest.fixture(scope="session")
def golden_store(pytestconfig):
    """golden_store(subject) -> Golden; regenerates from live PyTorch only under --update-golden."""
    from compare import golden
    from converters.pytorch import reference_outputs
    from models import datasets
    from models.images import array_digest

    root, update, done = Path(pytestconfig.getoption(OPT_GOLDEN_DIR)), pytestconfig.getoption(OPT_UPDATE_GOLDEN), {}

    def get(subject):
        if subject.id in done:
            return done[subject.id]
        inputs = datasets.parity_inputs(subject)
        identity, digest = subject.identity(), array_digest(inputs)
        if update:
            import torch

            manifest = {"model": subject.id, "identity": identity, "inputs": datasets.parity_recipe(subject),
                        "inputs_sha256": digest, "torch": torch.__version__}
            done[subject.id] = golden.save(root, subject.id, reference_outputs(subject.build(), inputs), manifest)
        else:
            done[subject.id] = golden.load(root, subject.id, identity, digest)
        return done[subject.id]

    return get


@dataclass(frozen=True)
class LatencySettings:
    threads: int
    optimized: bool
    max_time_s: float  # pytest-benchmark's --benchmark-max-time and --benchmark-min-rounds, honoured
    min_rounds: int


@pytest.fixture(scope="session")
def latency_settings(pytestconfig):
    return LatencySettings(threads=pytestconfig.getoption(OPT_LATENCY_THREADS),
                           optimized=not pytestconfig.getoption(OPT_LATENCY_UNOPTIMIZED),
                           max_time_s=float(pytestconfig.getoption("benchmark_max_time")),
                           min_rounds=int(pytestconfig.getoption("benchmark_min_rounds")))


@pytest.fixture
def record_result(record_property):
    """record_result(**fields): a result row that travels to the controller on the test report."""

    def record(**fields):
        record_property(RESULT_PROPERTY, json.dumps(fields, default=float))

    return record


# --- results: collected on the controller only ---------------------------------------------------------------

class ResultCollector:
    def __init__(self, config):
        self.config = config
        self.rows: list[dict] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        if report.when != "call" and not (report.when == "setup" and report.failed):
            return
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                row = json.loads(value)
                row["outcome"] = "xfail" if hasattr(report, "wasxfail") and report.skipped else report.outcome
                if row["outcome"] == "xfail":
                    row["known_failure"] = report.wasxfail.removeprefix("known failure: ")
                self.rows.append(row)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter):
        if hasattr(self.config, "workerinput") or not self.rows:
            return
        from report.matrix import with_bounds
        from report.tables import LINE_KINDS, terminal_table

        terminalreporter.write_sep("=", "convsuite summary")
        for row in sorted((r for r in self.rows if r["kind"] in LINE_KINDS), key=lambda r: (r["kind"], r["case"])):
            terminalreporter.write_line(row["line"])
        matrix = with_bounds([r for r in self.rows if r["kind"] not in LINE_KINDS])
        if matrix:
            terminalreporter.write_line(terminal_table(matrix, every_row_up_to=SHORT_RUN))
        report_dir = self.config.getoption(OPT_REPORT_DIR)
        if report_dir:
            from report import write_report

            baseline = self.config.getoption(OPT_REPORT_BASELINE)
            paths = write_report(self.rows, Path(report_dir), Path(baseline) if baseline else None)
            terminalreporter.write_line(f"conformance report: {', '.join(str(p) for p in paths)}")
