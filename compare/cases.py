"""The matrix vocabulary, in one place: precisions, case ids (built and parsed), test kinds, outcomes, and
the typed result row every test records and every report renders."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum


@dataclass(frozen=True)
class Precision:
    """What a precision computes in. `activations` is the activation storage type ("float" for float and
    weight-only schemes); `weights` is the stored weight type."""

    name: str
    weights: str
    activations: str
    dynamic: bool = False  # activations quantized per call from their observed range

    @property
    def quantized(self) -> bool:
        return self.weights.startswith("int") or self.activations.startswith("int")

    @property
    def float_compute(self) -> bool:
        """Float arithmetic end to end: the fp32 compute-bound latency floor applies."""
        return not self.quantized


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("fp32", "float32", "float"),
    Precision("fp16", "float16", "float"),
    Precision("dynamic_int8", "int8", "float", dynamic=True),
    Precision("int8", "int8", "int8"),
    Precision("full_int8", "int8", "int8"),  # int8 input and output tensors as well
    Precision("int16x8", "int8", "int16"),
)}


def register_precision(precision: Precision) -> None:
    """A format plug-in may declare a precision of its own (budgets then need a table for it)."""
    known = PRECISIONS.get(precision.name)
    if known is not None and known != precision:
        raise ValueError(f"precision {precision.name!r} is already declared differently: {known}")
    PRECISIONS[precision.name] = precision


def precision(name: str) -> Precision:
    try:
        return PRECISIONS[name]
    except KeyError:
        raise KeyError(f"unknown precision {name!r}; known: {', '.join(PRECISIONS)}") from None


class Kind(str, Enum):
    """What a result row measured."""

    PARITY = "parity"  # converted model vs stored golden outputs (natural images)
    ACCURACY = "accuracy"  # a trained model, converted, on its labelled test split
    TRAINING = "training"  # a trained model reaches its accuracy floor in PyTorch
    DRIFT = "drift"  # live PyTorch vs stored golden outputs
    ARCHITECTURE = "architecture"  # parameters and MACs vs published figures
    LATENCY = "latency"
    SPARSITY = "sparsity"  # a pruned model's sparsity (or removed channels) in the artifact's stored weights
    DETECTION = "detection"  # a deliberately broken conversion, and what caught it
    QAT = "qat"  # a QAT model's learned activation scales in the artifact


# rows that are one line of text
LINE_KINDS = (Kind.ARCHITECTURE.value, Kind.DETECTION.value, Kind.SPARSITY.value, Kind.QAT.value)


class Outcome(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    KNOWN = "known"  # a declared known failure, within its pinned range

    @property
    def label(self) -> str:
        return {"passed": "pass", "failed": "FAIL", "known": "known"}[self.value]

    @classmethod
    def of_report(cls, report) -> "Outcome":
        """The outcome of a pytest TestReport (an xfail is a known failure)."""
        if getattr(report, "wasxfail", None) is not None and report.skipped:
            return cls.KNOWN
        return cls.FAILED if report.failed else cls.PASSED


ID_SEPARATOR = "-"


def check_name(name: str, what: str) -> str:
    """Model, format and precision names may not contain the id separator or '@' (xdist's loadgroup
    splits on it) or spaces: ids must read like what a person types after -k."""
    if not name or any(c in name for c in (ID_SEPARATOR, "@", " ")):
        raise ValueError(f"{what} name {name!r} may not be empty or contain '-', '@' or spaces "
                         f"(they split test ids)")
    return name


@dataclass(frozen=True, order=True)
class CaseId:
    subject: str
    format: str
    precision: str

    def __str__(self) -> str:
        return ID_SEPARATOR.join((self.subject, self.format, self.precision))

    @classmethod
    def parse(cls, text: str) -> "CaseId":
        parts = text.rsplit(ID_SEPARATOR, 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{text!r} is not a case id (<subject>-<format>-<precision>)")
        return cls(*parts)

    @property
    def column(self) -> str:
        """The report's matrix column: format-precision."""
        return f"{self.format}{ID_SEPARATOR}{self.precision}"


@dataclass
class ResultRow:
    """One test's result, recorded on the worker, sent to the controller on the test report, written to
    report.json and read back by the report. `metrics` compares against the golden (or PyTorch) outputs;
    `reference_metrics` against the simulated-quantization reference of the same artifact."""

    case: str
    kind: str
    subject: str = ""
    arch: str = ""  # the registered architecture, or a variant's subject id (the report's matrix row)
    population: str = ""  # "natural", "digits" or "user": which inputs the subject runs on
    format: str | None = None
    precision: str | None = None
    outcome: str | None = None
    metrics: dict = field(default_factory=dict)
    reference_metrics: dict = field(default_factory=dict)
    broken: dict = field(default_factory=dict)  # SNR dB of broken references against the same expected outputs
    accuracy: float | None = None
    reference_accuracy: float | None = None
    accuracy_drop: float | None = None
    lost: int | None = None  # labelled images PyTorch got right and the conversion got wrong
    gained: int | None = None  # and the reverse
    images: int | None = None
    latency_ms: float | None = None
    latency_q1_ms: float | None = None
    latency_q3_ms: float | None = None
    latency_min_ms: float | None = None
    rounds: int | None = None
    threads: int | None = None
    optimized: bool | None = None
    macs: int | None = None
    peak_gflops: float | None = None
    bound_ms: float | None = None
    size_bytes: int | None = None
    weights_sha256: str | None = None  # of the PyTorch weights this subject ran with (identical on every CPU?)
    error: str | None = None
    known_failure: str | None = None
    line: str | None = None
    carried_from: str | None = None
    diagnosis: dict | None = None
    # a models.model registration's outputs: {name: {"kind", metrics..., "broken": {kind: metrics}}}
    outputs: dict | None = None
    # a classifier's top-1 class per input (parity inputs or the labelled split, in order), the artifact's and
    # PyTorch's: report.crosspath compares the paths of one subject and precision sample by sample
    top1: list | None = None
    reference_top1: list | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, {}, "")}, default=float,
                          sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "ResultRow":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"result row has unknown fields {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "ResultRow":
        return cls.from_dict(json.loads(text))

    @property
    def column(self) -> str | None:
        return f"{self.format}{ID_SEPARATOR}{self.precision}" if self.format and self.precision else None

    def value(self, name: str):
        """A metric by name, from the golden comparison first, then the row's own fields."""
        if name in self.metrics:
            return self.metrics[name]
        return getattr(self, name, None)
