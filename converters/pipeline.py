"""The artifact chain of one subject, every link cached under a content-addressed key:

    weights (safetensors) -> onnx fp32 -> onnx int8 / onnx dynamic_int8
                                       -> onnx2tf (SavedModel + all TFLite variants)

A key covers what changes the artifact: the subject's identity, the code of the package that builds it,
the step's options, the keys of its inputs and the versions of the tools involved. Steps run isolated
(converters.isolate); a failed step is remembered for the rest of the run so its cases fail fast.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from converters import onnxrt, pytorch, tflite
from converters.cache import ArtifactCache, make_key
from converters.isolate import ROOT, ConversionError, LOG_NAME, log_tail, run_step

FORMATS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "int8", "dynamic_int8"),
    "tflite": ("fp32", "fp16", "dynamic_int8", "int8", "full_int8", "int16x8"),
}
TOOLS = ("torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "tf_keras", "ai-edge-litert", "numpy")
CALIBRATION_COUNT = 32


@dataclass(frozen=True)
class Case:
    subject: object  # models.Subject
    format: str
    precision: str

    @property
    def id(self) -> str:
        return f"{self.subject.id}-{self.format}-{self.precision}"


def cases_for(subjects, reference: bool = False) -> list[Case]:
    """Every subject x format x precision, in stable sorted order (xdist workers must agree); with
    reference=True also each subject's PyTorch eager row (`<subject>-pytorch-fp32`, the latency reference)."""
    out = [Case(s, fmt, p) for s in subjects for fmt, precisions in FORMATS.items() for p in precisions]
    out += [Case(s, "pytorch", "fp32") for s in subjects] if reference else []
    return sorted(out, key=lambda c: c.id)


@lru_cache(maxsize=None)
def tool_versions() -> dict[str, str]:
    versions = {}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


# The sources each kind of artifact depends on: a change to one of them re-keys (rebuilds) the artifact.
NETWORK_CODE = ("models/blocks.py", "models/builder.py", "models/registry.py", "models/zoo.py",
                "models/weights.py", "models/images.py", "models/subject.py")
TRAINING_CODE = NETWORK_CODE + ("models/training.py", "models/digits.py")
DATA_CODE = ("models/images.py", "models/datasets.py", "models/digits.py")


@lru_cache(maxsize=None)
def code_digest(files: tuple[str, ...]) -> str:
    """Hash of the named source files."""
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode())
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()[:16]


class Pipeline:
    def __init__(self, cache: ArtifactCache, *, timeout: float = 900, memory_gb: float = 10,
                 run_id: str = "", calibration: str = "natural"):
        self.cache = cache
        self.timeout, self.memory_gb = timeout, memory_gb
        self.run_id = run_id
        self.calibration_mode = calibration  # "natural", or a deliberately wrong set for self-tests
        self._failures: dict[str, ConversionError] = {}

    # --- the chain --------------------------------------------------------------------------------------
    def trained(self, subject):
        """A digits subject with its weights: trained once (isolated, cached), then a checkpoint subject."""
        from dataclasses import replace

        from models.training import RECIPE, TRAINED_FILE

        if subject.data != "digits" or dict(subject.weights or ()).get("kind") == "checkpoint":
            return subject  # nothing to train, or already trained
        from models import digits

        payload = {"identity": subject.identity(), "recipe": RECIPE, "split": [digits.SPLIT_SEED, digits.SPLITS],
                   "torch": tool_versions()["torch"]}
        entry = self._step("train_digits", subject, payload, {"recipe": RECIPE}, deps={})
        return replace(subject, weights=tuple(sorted({"kind": "checkpoint", "path": str(entry / TRAINED_FILE)}.items())))

    def weights(self, subject) -> Path:
        return self._step("weights", subject, {}, {}, deps={}) / pytorch.WEIGHTS_FILE

    def onnx(self, subject, precision: str = "fp32") -> Path:
        if precision == "fp32":
            weights = self.weights(subject)
            params = {"weights_file": str(weights), "input_size": subject.arch().input.size}
            return self._step("onnx", subject, {"opset": onnxrt.OPSET}, params,
                              deps={"weights": weights}) / onnxrt.ONNX_FILE
        fp32 = self.onnx(subject)
        params = {"onnx_file": str(fp32)}
        deps = {"onnx": fp32}
        if precision == "int8":
            params["calibration_file"] = str(self.calibration(subject))
            deps["calibration"] = Path(params["calibration_file"])
        step = {"int8": "onnx_int8", "dynamic_int8": "onnx_dynamic_int8"}[precision]
        return self._step(step, subject, {}, params, deps=deps) / onnxrt.ONNX_FILE

    def tflite(self, subject, precision: str) -> Path:
        fp32, calib = self.onnx(subject), self.calibration(subject)
        entry = self._step("tflite", subject, {"quant_type": "per-channel"},
                           {"onnx_file": str(fp32), "calibration_file": str(calib)},
                           deps={"onnx": fp32, "calibration": calib})
        return entry / tflite.SAVED_MODEL_DIR / tflite.PRECISION_FILES[precision]

    def artifact(self, case: Case) -> Path:
        if case.format == "pytorch":  # the reference: its weights file
            return self.weights(case.subject)
        if case.format == "onnx":
            return self.onnx(case.subject, case.precision)
        if case.format == "tflite":
            return self.tflite(case.subject, case.precision)
        raise ValueError(f"unknown format {case.format!r}; known: {', '.join(FORMATS)}")

    def calibration(self, subject) -> Path:
        """Calibration inputs (NCHW float32 .npy), disjoint from the parity inputs; built in-process."""
        from models import datasets

        recipe = datasets.calibration_recipe(subject, CALIBRATION_COUNT, self.calibration_mode)
        key = make_key({"recipe": recipe, "code": code_digest(DATA_CODE)})

        def build(tmp: Path) -> None:
            np.save(tmp / "calibration.npy", datasets.calibration_set(subject, CALIBRATION_COUNT,
                                                                      self.calibration_mode))

        return self.cache.get_or_build("calibration", key, build, {"recipe": recipe}).path / "calibration.npy"

    # --- runners ----------------------------------------------------------------------------------------
    def runner(self, case: Case, threads: int, optimized: bool = True):
        if case.format == "pytorch":
            net = pytorch.load(case.subject.to_params(), self.artifact(case))
            return pytorch.TorchRunner(net, threads, optimized)
        runner = onnxrt.OrtRunner if case.format == "onnx" else tflite.TFLiteRunner
        return runner(self.artifact(case), threads, optimized)

    # --- one cached, isolated step ----------------------------------------------------------------------
    def _step(self, step: str, subject, options: dict, params: dict, deps: dict[str, Path]) -> Path:
        payload = {"step": step, "subject": subject.identity(), "options": options,
                   "deps": {k: _entry_key(p) for k, p in deps.items()},
                   "code": code_digest(STEP_CODE[step]), "tools": tool_versions()}
        key = make_key(payload)
        if key in self._failures:
            raise self._failures[key]
        failed_dir = self.cache.root / "failed"
        record = failed_dir / f"{step}-{key}.json"

        def build(tmp: Path) -> None:
            if self.run_id and record.is_file():
                previous = json.loads(record.read_text())
                if previous.get("run_id") == self.run_id:  # another worker already failed this run
                    raise ConversionError(step, previous["reason"] + " (earlier in this run)",
                                          Path(previous["log"]), previous["tail"])
            try:
                run_step(step, {"subject": subject.to_params(), **params}, tmp, timeout=self.timeout,
                         memory_gb=self.memory_gb)
            except ConversionError as exc:
                failed_dir.mkdir(parents=True, exist_ok=True)
                log = failed_dir / f"{step}-{key}.log"
                if (tmp / LOG_NAME).is_file():
                    os.replace(tmp / LOG_NAME, log)
                exc.log_path = log
                record.write_text(json.dumps({"run_id": self.run_id, "reason": exc.reason, "log": str(log),
                                              "tail": log_tail(log)}))
                raise

        try:
            return self.cache.get_or_build(step, key, build, {"subject": subject.id, "payload": payload}).path
        except ConversionError as exc:
            self._failures[key] = exc
            raise


STEP_CODE = {
    "weights": NETWORK_CODE + ("converters/pytorch.py",),
    "train_digits": TRAINING_CODE,
    "onnx": ("converters/onnxrt.py", "converters/pytorch.py"),
    "onnx_int8": ("converters/onnxrt.py",),
    "onnx_dynamic_int8": ("converters/onnxrt.py",),
    "tflite": ("converters/tflite.py",),
}


def _entry_key(path: Path) -> str:
    """The cache key of the entry a dependency file lives in (its directory name under <kind>/)."""
    for parent in [path, *path.parents]:
        if (parent / "MANIFEST.json").is_file():
            return parent.name
    raise ValueError(f"{path} is not inside a cache entry")

