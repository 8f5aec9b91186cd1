"""The artifact chain of one subject, walked from the format registry (converters.formats). Every step is
cached under a content-addressed key and runs isolated (converters.isolate):

    key = step + subject identity + code the step imports (converters.codehash) + options
          + the *content* of its inputs + the versions of its tools

Keying inputs by content, not by their own keys, means a code change that rebuilds an input byte for byte
the same rebuilds nothing downstream. A failed step is remembered for the rest of the run, so the cases
that need it fail fast with the first failure's log.
"""
from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from converters import codehash, formats
from converters.cache import MANIFEST, ArtifactCache, make_key
from converters.formats import CALIBRATION
from converters.isolate import LOG_NAME, ConversionError, run_step

CALIBRATION_COUNT = 32


@dataclass(frozen=True)
class Case:
    """One matrix case: a subject (models.Subject) in one format at one precision."""

    subject: object
    format: str
    precision: str

    @property
    def id(self) -> str:
        from compare.cases import CaseId

        return str(CaseId(self.subject.id, self.format, self.precision))


@lru_cache(maxsize=None)
def tool_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def tool_versions() -> dict[str, str]:
    """Versions of every tool any registered step depends on (machine info and the report)."""
    names = sorted({t for f in formats.formats() for s in f.steps for t in s.tools})
    return {name: tool_version(name) for name in names}


def content_key(entry: Path) -> str:
    """What a cache entry holds, as a key: its files' names and sha256 (from its manifest)."""
    files = json.loads((entry / MANIFEST).read_text())["files"]
    return make_key({name: meta["sha256"] for name, meta in files.items()})


class Pipeline:
    def __init__(self, cache: ArtifactCache, *, timeout: float = 900, memory_gb: float = 10, run_id: str = "",
                 calibration: str = "natural", plugin_files: tuple[str, ...] = ()):
        self.cache = cache
        self.timeout, self.memory_gb = timeout, memory_gb
        self.run_id = run_id
        self.calibration_mode = calibration  # "natural", or a deliberately wrong set for self-tests
        self.plugin_files = tuple(plugin_files)  # format plug-ins the conversion children must load too
        self._failures: dict[str, ConversionError] = {}

    # --- what tests ask for ------------------------------------------------------------------------------
    def artifact(self, case: Case) -> Path:
        step_name, relative = formats.get(case.format).artifact_of(case.precision, case.subject)
        return self.entry(step_name, case.subject) / relative

    def artifact_size(self, case: Case) -> int:
        """Bytes on disk of the case's artifact: every file of a directory (a SavedModel), or a file with the
        files beside it that share its stem (OpenVINO's model.xml and the weights in model.bin)."""
        path = self.artifact(case)
        files = path.rglob("*") if path.is_dir() else path.parent.glob(f"{glob.escape(path.stem)}.*")
        return sum(f.stat().st_size for f in files if f.is_file())

    def runner(self, case: Case, threads: int, optimized: bool = True):
        fmt = formats.get(case.format)
        return fmt.runner(self.artifact(case), case.subject.to_params(), threads, optimized)

    def outputs(self, case: Case, inputs: np.ndarray) -> np.ndarray:
        """The artifact's outputs on `inputs` (batch 1, one thread), run once per artifact content, inputs,
        runtime versions and CPU (with any oneDNN ISA cap: under ONEDNN_MAX_CPU_ISA=AVX2 PyTorch and
        OpenVINO run AVX2's kernels): the same artifact on the same CPU computes the same outputs, so a warm run
        re-judges them without running the model again."""
        step_name, relative = formats.get(case.format).artifact_of(case.precision, case.subject)
        return self._run_once(case, step_name, relative, inputs, reference=False)

    def simulated_outputs(self, case: Case, inputs: np.ndarray) -> tuple[np.ndarray | None, dict]:
        """The simulated reference's outputs (cached like `outputs`) and its static checks, or (None, {}) where the
        format has none or its step wrote why none stands for this artifact (an "unavailable" reason)."""
        fmt = formats.get(case.format)
        if fmt.reference_of(case.precision, case.subject) is None:
            return None, {}
        step_name, relative = fmt.reference_of(case.precision, case.subject)
        checks = (self.entry(step_name, case.subject) / relative).with_suffix(".json")
        written = json.loads(checks.read_text()) if checks.is_file() else {}
        if "unavailable" in written:  # the step found no simulation that stands for this artifact
            return None, {}
        static = {k: v for k, v in written.items() if isinstance(v, (int, float))}
        return self._run_once(case, step_name, relative, inputs, reference=True), static

    def _run_once(self, case: Case, step_name: str, relative: str, inputs: np.ndarray, reference: bool):
        from converters import latency, predict
        from models.images import array_digest

        fmt, entry = formats.get(case.format), self.entry(step_name, case.subject)
        tools = sorted({t for s in fmt.steps for t in s.tools})
        key = make_key({"artifact": content_key(entry), "file": relative, "inputs": array_digest(inputs),
                        "reference": reference, "format": case.format,
                        "code": codehash.function_digest(fmt.reference_runner if reference else fmt.runner),
                        "tools": {t: tool_version(t) for t in tools},
                        "cpu": latency.kernel_identity()})

        def build(tmp: Path) -> None:
            make = fmt.reference_runner if reference else fmt.runner
            np.save(tmp / "outputs.npy", predict(make(entry / relative, case.subject.to_params(), 1), inputs))

        return np.load(self.cache.get_or_build("outputs", key, build, {"case": case.id}).path / "outputs.npy")

    def torch_model(self, subject):
        """The subject's PyTorch network with its built weights (trained once, if it is trained)."""
        from converters.torch_weights import WEIGHTS_FILE, load

        return load(subject.to_params(), self.entry("weights", subject) / WEIGHTS_FILE)

    def weights_sha256(self, subject) -> str:
        """sha256 of the subject's built weights file (from its cache manifest)."""
        from converters.torch_weights import WEIGHTS_FILE

        entry = self.entry("weights", subject)
        return json.loads((entry / MANIFEST).read_text())["files"][WEIGHTS_FILE]["sha256"]

    def reference_outputs(self, subject, inputs: np.ndarray) -> np.ndarray:
        """PyTorch's outputs for `inputs`, computed once per weights, inputs, model code and torch version
        (a warm run recomputes nothing; a model-code change recomputes them, which is what drift tests)."""
        from converters.torch_weights import load, reference_outputs
        from models.images import array_digest

        weights = self.entry("weights", subject)
        key = make_key({"weights": content_key(weights), "inputs": array_digest(inputs),
                        "code": codehash.function_digest(load), "torch": tool_version("torch"),
                        **({"model_code": subject.code_digest()} if subject.user else {})})

        def build(tmp: Path) -> None:
            np.save(tmp / "outputs.npy", reference_outputs(self.torch_model(subject), inputs,
                                                           shapes=subject.sample_shapes()))

        hit = self.cache.get_or_build("reference_outputs", key, build, {"subject": subject.id})
        return np.load(hit.path / "outputs.npy")

    def learned_quantization(self, case: Case) -> bool:
        """Does the case's artifact carry its subject's learned quantization (a QAT variant on a path that
        keeps it: Format.qat_artifacts)?"""
        from models.qat import learned

        return learned(case.subject) and case.precision in formats.get(case.format).qat_artifacts

    def expected_outputs(self, case: Case, inputs: np.ndarray) -> np.ndarray:
        """What the case's artifact should compute: PyTorch's outputs, or, where the artifact carries a QAT
        model's learned quantization, the learned fake-quantized network's (what QAT trained; its float
        weights alone are a different model). Cached like `reference_outputs`."""
        if not self.learned_quantization(case):
            return self.reference_outputs(case.subject, inputs)
        from converters.torch_weights import reference_outputs
        from models import qat
        from models.images import array_digest

        subject = case.subject
        key = make_key({"weights": content_key(self.entry("weights", subject)), "inputs": array_digest(inputs),
                        "qat": subject.weights_source().identity(), "torch": tool_version("torch"),
                        "code": codehash.digest(("models.qat", "converters.torch_weights"))})

        def build(tmp: Path) -> None:
            net = qat.quantized_network(self.torch_model(subject), qat.shipped_state(subject),
                                        subject.input_shapes(1)[0])
            np.save(tmp / "outputs.npy", reference_outputs(net, inputs))

        hit = self.cache.get_or_build("reference_outputs", key, build, {"subject": subject.id, "qat": True})
        return np.load(hit.path / "outputs.npy")

    # --- the chain ----------------------------------------------------------------------------------------
    def entry(self, step_name: str, subject) -> Path:
        """The cache entry of one step for one subject, building its inputs first."""
        step = formats.step(step_name)
        deps = {name: self.calibration(subject) if name == CALIBRATION else self.entry(name, subject)
                for name in step.needs}
        payload = {"step": step.name, "subject": subject.identity(), "options": dict(step.options),
                   **({"model_code": subject.code_digest()} if subject.user else {}),
                   "deps": {name: content_key(path) for name, path in deps.items()},
                   "code": codehash.function_digest(step.build),
                   "tools": {t: tool_version(t) for t in step.tools}}
        params = {"subject": subject.to_params(), "deps": {k: str(v) for k, v in deps.items()},
                  "options": dict(step.options), "plugins": list(self.plugin_files)}
        return self._build(step, subject, payload, params)

    def calibration(self, subject) -> Path:
        """Calibration inputs (NCHW float32 .npy), disjoint from the parity inputs; built in-process."""
        from converters.onnx_names import CALIBRATION_FILE
        from models import datasets

        recipe = datasets.calibration_recipe(subject, CALIBRATION_COUNT, self.calibration_mode)
        key = make_key({"recipe": recipe, "code": codehash.digest(("models.datasets",))})

        def build(tmp: Path) -> None:
            np.save(tmp / CALIBRATION_FILE, datasets.calibration_set(subject, CALIBRATION_COUNT,
                                                                     self.calibration_mode))

        return self.cache.get_or_build(CALIBRATION, key, build, {"recipe": recipe}).path

    # --- one cached, isolated step ------------------------------------------------------------------------
    def progress(self, line: str) -> None:
        """One line of this run's progress (build steps started and finished), for the controller to show
        while workers are busy: <cache>/progress/<run id>.log (harness.progress tails it)."""
        if not self.run_id:
            return
        path = self.cache.root / "progress" / f"{self.run_id}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        try:
            with open(path, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {worker} {line}\n")
        except OSError:  # a full disk: the build's own error says so, a progress line must not hide it
            pass

    def _build(self, step, subject, payload: dict, params: dict) -> Path:
        key = make_key(payload)
        if key in self._failures:
            raise self._failures[key]
        failed_dir = self.cache.root / "failed"
        record = failed_dir / f"{step.name}-{key}.json"

        def build(tmp: Path) -> None:
            if self.run_id and record.is_file():
                try:
                    previous = json.loads(record.read_text())
                except (OSError, ValueError):  # cut short by a full disk: build again
                    previous = {}
                if previous.get("run_id") == self.run_id:  # another worker already failed this run
                    raise ConversionError(step.name, previous["reason"] + " (earlier in this run)",
                                          Path(previous["log"]), previous["tail"])
            started = time.monotonic()
            self.progress(f"{step.name} {subject.id}: started")
            try:
                run_step(step.name, params, tmp, timeout=self.timeout, memory_gb=self.memory_gb, env=step.env,
                         on_progress=lambda line: self.progress(f"{step.name} {subject.id}: {line}"),
                         fresh_interpreter=step.fresh_interpreter)
                self.progress(f"{step.name} {subject.id}: built in {time.monotonic() - started:.0f} s")
            except ConversionError as exc:
                self.progress(f"{step.name} {subject.id}: FAILED after {time.monotonic() - started:.0f} s")
                log = failed_dir / f"{step.name}-{key}.log"
                try:  # keep the log (a rename) and the record; on a full disk the error still goes up
                    failed_dir.mkdir(parents=True, exist_ok=True)
                    if (tmp / LOG_NAME).is_file():
                        os.replace(tmp / LOG_NAME, log)
                        exc.log_path = log
                    record.write_text(json.dumps({"run_id": self.run_id, "reason": exc.reason, "log": str(log),
                                                  "tail": exc.tail}))
                except OSError:
                    pass
                raise

        try:
            return self.cache.get_or_build(step.name, key, build, {"subject": subject.id, "payload": payload}).path
        except ConversionError as exc:
            self._failures[key] = exc
            raise
