"""The suite's command-line options and ini settings: names as constants, one pytest_addoption group."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPDATE_GOLDEN = "--update-golden"
GOLDEN_DIR = "--golden-dir"
CACHE = "--artifact-cache"
TIMEOUT = "--convert-timeout"
MEMORY = "--convert-memory-gb"
BUDGETS = "--budgets"
KNOWN_FAILURES = "--known-failures"
WEIGHTS = "--weights"
CALIBRATION = "--calibration-mode"
REPORT_DIR = "--report-dir"
REPORT_BASELINE = "--report-baseline"
USER_DATA = "--user-data"
USER_MODEL = "--user-model"
USER_CHECKPOINT = "--user-checkpoint"
LATENCY_THREADS = "--latency-threads"
LATENCY_UNOPTIMIZED = "--latency-unoptimized"
LATENCY_SLOWDOWN = "--latency-slowdown"
FORMATS_FROM = "--formats-from"
MODELS_FROM = "--models-from"
DIAGNOSE = "--diagnose"
INI_WEIGHTS = "convsuite_weights"
INI_FORMATS = "convsuite_formats"
INI_MODELS = "convsuite_models"
ENV_CACHE = "CONVSUITE_CACHE_DIR"
ENV_RUN_ID = "CONVSUITE_RUN_ID"


def add_options(parser) -> None:
    group = parser.getgroup("convsuite", "model-conversion conformance suite")
    group.addoption(UPDATE_GOLDEN, action="store_true",
                    help="regenerate golden/ outputs of the selected models from live PyTorch (never implicit)")
    group.addoption(GOLDEN_DIR, default=str(ROOT / "golden"), metavar="DIR",
                    help="where golden outputs are read and (with --update-golden) written (default golden/)")
    group.addoption(CACHE, metavar="DIR", default=os.environ.get(ENV_CACHE, str(ROOT / ".convsuite-cache")),
                    help=f"artifact cache directory, shared by xdist workers and later runs "
                         f"(default: ${ENV_CACHE} or .convsuite-cache/ in the project)")
    group.addoption(TIMEOUT, type=float, default=900, metavar="SECONDS",
                    help="wall-clock limit of one conversion step (default 900)")
    group.addoption(MEMORY, type=float, default=10, metavar="GB",
                    help="memory ceiling of one conversion step's process tree (default 10)")
    group.addoption(BUDGETS, default=str(ROOT / "budgets.toml"), metavar="FILE",
                    help="parity/accuracy budgets (default budgets.toml, written by scripts/derive_budgets.py)")
    group.addoption(KNOWN_FAILURES, default=str(ROOT / "known_failures.toml"), metavar="FILE",
                    help="declared known failures with their pinned ranges (default known_failures.toml)")
    group.addoption(WEIGHTS, action="append", default=[], metavar="MODEL=CHECKPOINT",
                    help="use a checkpoint (state_dict .pth, loaded weights-only, or .safetensors) for MODEL; "
                         f"repeatable; also settable as the `{INI_WEIGHTS}` ini option")
    group.addoption(FORMATS_FROM, action="append", default=[], metavar="FILE",
                    help="load a format plug-in (a Python file that registers a converters.formats.Format); "
                         f"repeatable; also settable as the `{INI_FORMATS}` ini option")
    group.addoption(MODELS_FROM, action="append", default=[], metavar="FILE",
                    help="load your models: a Python file (or importable module) that registers them with "
                         "`@models.model(name, input=models.Input(...), outputs=[models.Output(...)])`; they join "
                         f"the matrix (goldens: --update-golden -k NAME); repeatable; also the `{INI_MODELS}` "
                         "ini option")
    group.addoption(CALIBRATION, default="natural", choices=("natural", "wrong_scale", "wrong_data"),
                    help="calibration data for integer quantization; the wrong_* modes exist to prove that "
                         "a mis-calibrated conversion is caught (default natural)")
    group.addoption(DIAGNOSE, default="failing", choices=("failing", "all", "mitigate", "off"),
                    help="localize parity cases layer by layer, named by PyTorch module (onnxruntime and "
                         "TFLite artifacts; diagnose/): failing and known-failure cases (default), all, or off; "
                         "mitigate: the "
                         "failing ones plus the onnxruntime quantization levers measured (minutes a case); "
                         "recorded in report.json as `diagnosis` and shown in the report, never changing a verdict")
    group.addoption(REPORT_DIR, default=None, metavar="DIR",
                    help="write the conformance report (Markdown, HTML, JSON, plots) to DIR at the end of the run")
    group.addoption(REPORT_BASELINE, metavar="REPORT_JSON", default=None,
                    help=f"a previous run's report.json: the report of this run ({REPORT_DIR}) then lists what "
                         "regressed and what improved since (parity, accuracy, latency beyond noise)")
    group.addoption(USER_DATA, metavar="DIR", default=None,
                    help="run the accuracy cases on your labelled image folder (one sub-folder per class) "
                         f"instead of digits; needs {USER_MODEL}")
    group.addoption(USER_MODEL, metavar="NAME", default=None,
                    help=f"registered architecture for {USER_DATA}; its class count is the model's own "
                         f"(1000) unless {USER_CHECKPOINT} says otherwise by its classifier shape")
    group.addoption(USER_CHECKPOINT, metavar="FILE", default=None,
                    help=f"your weights for {USER_MODEL} (state_dict .pth loaded weights-only, or .safetensors)")
    group.addoption(LATENCY_THREADS, type=int, default=1, metavar="N",
                    help="threads of every runtime in the latency cases, recorded with each result (default 1)")
    group.addoption(LATENCY_UNOPTIMIZED, action="store_true",
                    help="test-only: time slower kernels (onnxruntime without layout optimizations, TFLite "
                         "without XNNPACK, PyTorch without oneDNN) to prove the benchmark gate trips")
    group.addoption(LATENCY_SLOWDOWN, type=float, default=1.0, metavar="FACTOR",
                    help="test-only: make every timed call FACTOR times slower by spinning after it, to measure "
                         "what the latency gate catches (benchmarks/latency_gate.py)")
    parser.addini(INI_WEIGHTS, type="linelist", default=[],
                  help="MODEL=CHECKPOINT lines: checkpoints to use instead of the registered weights")
    parser.addini(INI_FORMATS, type="linelist", default=[], help="format plug-in files to load")
    parser.addini(INI_MODELS, type="linelist", default=[], help="model files (models.model registrations) to load")
