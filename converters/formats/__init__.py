"""Format plug-ins: one module per format declares its build steps, the artifact of each precision and its
runner, and registers a Format; the pipeline walks this registry. Every module in this package is loaded;
a format from outside the project comes in with `--formats-from=FILE` and needs no other edit.

A runner has three methods: set_input(x NCHW float32), invoke() (the only timed call), get_output()."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from compare.cases import PRECISIONS, Precision, check_name, register_precision

CALIBRATION = "calibration"  # the calibration input set, a dependency any step may name


@dataclass(frozen=True)
class Step:
    """One cached, isolated build: `build(params, out_dir)` runs in a child process. `needs` names the
    upstream steps (or CALIBRATION) whose files it reads; `tools` the distributions whose versions key
    its artifact; `options` go into the key; `env` into the child's environment. `fresh_interpreter`: the
    env must be in place before torch is imported (kernel pinning), so the child is a new interpreter, not
    a fork of the preloaded step server (converters.isolate)."""

    name: str
    build: Callable[[dict, Path], None]
    needs: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    options: Mapping = field(default_factory=dict)
    env: Mapping = field(default_factory=dict)
    fresh_interpreter: bool = False


@dataclass(frozen=True)
class Format:
    """`artifacts`: precision -> (step, file in that step's entry). `runner(path, subject_params, threads,
    optimized)` runs one artifact. `references`: precision -> (step, file) of the artifact's simulated-
    quantization reference (the same quantization computed in float: what the artifact should compute),
    run by `reference_runner`. `requires`: modules that must import for the format to run here; where one
    is missing its cases are skipped, saying what to install."""

    name: str
    artifacts: Mapping[str, tuple[str, str]]
    runner: Callable
    steps: tuple[Step, ...] = ()
    references: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    reference_runner: Callable | None = None
    in_matrix: bool = True  # False for the PyTorch reference row (latency only)
    requires: tuple[str, ...] = ()
    install_hint: str = ""
    precisions_declared: tuple[Precision, ...] = ()
    # weights(path) -> [StoredTensor]: the artifact's stored constant tensors (compare.sparsity reads the
    # filters and matrices among them: is a pruned model's sparsity kept?). None: not inspected.
    weights: Callable | None = None
    # a subject that carries learned quantization (a QAT variant, models.qat): precision -> (step, file) of
    # the artifact that keeps it (its reference is the same file on float kernels, `reference_runner`).
    # A precision not listed quantizes the subject's float weights again, as for any other model
    qat_artifacts: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # scales(path) -> [float]: the artifact's per-tensor activation quantization scales (compare.qat: are
    # QAT's learned scales kept?). None: not inspected.
    scales: Callable | None = None
    # available() -> "" where the format can run here, else why not (a check beyond `requires`: a GPU, a
    # driver), asked after `requires` for every case: cache what is slow to find out.
    available: Callable[[], str] | None = None

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(self.artifacts)

    def artifact_of(self, precision: str, subject) -> tuple[str, str]:
        """(step, file) of the subject's artifact at `precision`: the learned-quantization one where the
        subject carries it and this format keeps it."""
        from models.qat import learned

        if precision in self.qat_artifacts and learned(subject):
            return self.qat_artifacts[precision]
        return self.artifacts[precision]

    def reference_of(self, precision: str, subject) -> tuple[str, str] | None:
        """(step, file) of the simulated reference of the subject's artifact at `precision`, or None."""
        from models.qat import learned

        if precision in self.qat_artifacts and learned(subject):  # the QDQ graph on float kernels, where a
            return self.qat_artifacts[precision] if self.reference_runner else None  # runner can do that
        return self.references.get(precision)

    def missing_requirements(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def unavailable(self) -> str:
        """Why this format's cases cannot run here ("" where they can): a module it requires is missing, or
        its own `available` check says no."""
        missing = self.missing_requirements()
        if missing:
            return (f"format {self.name} needs {', '.join(missing)}, not installed here"
                    f"{': ' + self.install_hint if self.install_hint else ''}")
        return self.available() if self.available else ""


_FORMATS: dict[str, Format] = {}
_STEPS: dict[str, Step] = {}
_LOADED = False


def register(fmt: Format) -> Format:
    """Add a format and its steps. Re-registering the same object (a module imported twice) is a no-op."""
    check_name(fmt.name, "format")
    if _FORMATS.get(fmt.name) is fmt:
        return fmt
    if fmt.name in _FORMATS:
        raise ValueError(f"format {fmt.name!r} registered twice")
    for p in fmt.precisions_declared:
        register_precision(p)
    for p in fmt.precisions:
        if p not in PRECISIONS:
            raise ValueError(f"format {fmt.name!r}: precision {p!r} is not known; declare it in "
                             f"precisions_declared (known: {', '.join(PRECISIONS)})")
    for step in fmt.steps:
        if step.name in _STEPS and _STEPS[step.name] is not step:
            raise ValueError(f"format {fmt.name!r}: step {step.name!r} is already declared by another format")
        _STEPS[step.name] = step
    for p, (step_name, _) in [*fmt.artifacts.items(), *fmt.references.items(), *fmt.qat_artifacts.items()]:
        if step_name not in _STEPS:
            raise ValueError(f"format {fmt.name!r}: precision {p} names unknown step {step_name!r}")
    _FORMATS[fmt.name] = fmt
    return fmt


def _load_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}")


def load_file(path: str | Path) -> list[str]:
    """Import a plug-in file from anywhere; returns the formats it registered."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"format plug-in {path} does not exist")
    _load_builtin()
    before = set(_FORMATS)
    spec = importlib.util.spec_from_file_location(f"convsuite_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return sorted(set(_FORMATS) - before)


def formats() -> list[Format]:
    """Every registered format: the built-in ones in their canonical order, then plug-ins by name."""
    _load_builtin()
    order = {"pytorch": 0, "onnx": 1, "tflite": 2}
    return sorted(_FORMATS.values(), key=lambda f: (order.get(f.name, 9), f.name))


def _lookup(table: dict, name: str, what: str):
    _load_builtin()
    if name not in table:
        raise KeyError(f"unknown {what} {name!r}; registered: {', '.join(sorted(table))}")
    return table[name]


def get(name: str) -> Format:
    return _lookup(_FORMATS, name, "format")


def step(name: str) -> Step:
    return _lookup(_STEPS, name, "build step")


def columns() -> list[str]:
    """format-precision in registry order (the report's matrix columns)."""
    return [f"{f.name}-{p}" for f in formats() for p in f.precisions]
