"""Outputs as data: a model's named outputs (models.api.Output), each judged by the metrics of its kind.

Every runtime's outputs travel packed, one row per sample (converters.pack); `unpack` splits a row back into
the named outputs by the shapes PyTorch gives them (recorded in the golden manifest). Per kind:

    classification  cosine (mean, worst sample), SNR, max abs error, top-1 agreement
    generic         cosine (mean, worst sample), SNR, max abs error, and the SNR of the input-dependent part
                    (compare.metrics.variation_snr_db: a constant-dominated output, a detector's anchors, has
                    a high plain SNR even when it ignores its input; this one measures such an output 0 dB)
    dense           the generic metrics, plus per-pixel arg-max agreement over the class axis (1) and the
                    mean IoU of the two arg-max maps over the classes either map contains
    scores          the generic metrics, plus detection agreement: per sample, the Jaccard index of the
                    foreground (anchor, class) pairs scoring at least SCORE_THRESHOLD (column 0 is background)
                    in PyTorch and in the conversion
    boxes           SNR and cosine, plus box IoU: the mean IoU of each converted box with PyTorch's, over
                    PyTorch's TOP_K most confident anchors (by the named scores output)

Pure numpy: arrays are (N, ...) with the batch first."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare.metrics import broken_outputs, parity_metrics, variation_snr_db

TOP_K = 20
SCORE_THRESHOLD = 0.5


class OutputShapeError(ValueError):
    """Packed outputs that do not fit the declared outputs' shapes; the message names the output."""


@dataclass(frozen=True)
class Slot:
    name: str
    kind: str
    shape: tuple[int, ...]  # per sample
    scores: str = ""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def as_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape),
                **({"scores": self.scores} if self.scores else {})}

    @classmethod
    def from_json(cls, data: dict) -> "Slot":
        return cls(data["name"], data["kind"], tuple(data["shape"]), data.get("scores", ""))


def unpack(packed: np.ndarray, layout: list[Slot], what: str = "outputs") -> dict[str, np.ndarray]:
    """Packed rows (N, total) -> {name: (N, *shape)} in declared order."""
    packed = np.asarray(packed)
    total = sum(s.size for s in layout)
    if packed.ndim != 2 or packed.shape[1] != total:
        sizes = ", ".join(f"{s.name} {s.shape} = {s.size}" for s in layout)
        raise OutputShapeError(f"{what}: {packed.shape[1] if packed.ndim == 2 else packed.shape} values per sample, "
                               f"but the declared outputs hold {total} ({sizes}): an output changed its shape "
                               "(or was dropped) in this path")
    out, start = {}, 0
    for s in layout:
        out[s.name] = packed[:, start:start + s.size].reshape(len(packed), *s.shape)
        start += s.size
    return out


def _generic(reference, actual) -> dict:
    return {**{k: v for k, v in parity_metrics(reference, actual).items() if k != "top1_agreement"},
            "variation_snr_db": variation_snr_db(reference, actual)}


def pixel_metrics(reference, actual) -> dict:
    """Arg-max maps over axis 1: per-pixel agreement, and the mean IoU over classes either map contains."""
    r, a = np.asarray(reference).argmax(1), np.asarray(actual).argmax(1)
    classes = np.union1d(np.unique(r), np.unique(a))
    ious = [np.sum((r == c) & (a == c)) / np.sum((r == c) | (a == c)) for c in classes]
    return {"pixel_agreement": float(np.mean(r == a)), "miou": float(np.mean(ious))}


def detection_agreement(reference, actual, threshold: float = SCORE_THRESHOLD) -> float:
    """Per sample, the Jaccard index of the two sets of detections {(anchor, class): score >= threshold}
    (foreground classes; a sample where neither detects anything counts 1), averaged: the decision a
    deployed detector takes before NMS. A threshold, not a ranking: quantized scores tie (a uint8 softmax
    has 256 levels), and a ranking breaks ties arbitrarily."""
    r = np.asarray(reference)[:, :, 1:] >= threshold
    a = np.asarray(actual)[:, :, 1:] >= threshold
    inter = (r & a).reshape(len(r), -1).sum(1)
    union = (r | a).reshape(len(r), -1).sum(1)
    value = float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))
    return value if np.isfinite(np.asarray(actual)).all() else float("nan")


def box_iou(reference_boxes, actual_boxes, reference_scores, k: int = TOP_K) -> float:
    """Mean IoU of converted against PyTorch boxes (x1 y1 x2 y2) over PyTorch's k most confident anchors."""
    rb, ab = np.asarray(reference_boxes, np.float64), np.asarray(actual_boxes, np.float64)
    confidence = np.asarray(reference_scores)[:, :, 1:].max(-1)
    ious = []
    for n in range(len(rb)):
        top = np.argsort(-confidence[n], kind="stable")[:k]
        r, a = rb[n, top], ab[n, top]
        lo, hi = np.maximum(r[:, :2], a[:, :2]), np.minimum(r[:, 2:], a[:, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        area = lambda b: np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)  # noqa: E731
        union = area(r) + area(a) - inter
        ious.append(np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0))
    value = float(np.mean(ious))
    return value if np.isfinite(ab).all() else float("nan")


def output_metrics(layout: list[Slot], expected: dict, actual: dict) -> dict[str, dict]:
    """{output name: {"kind": kind, metric: value}} for every declared output."""
    out = {}
    for s in layout:
        r, a = expected[s.name], actual[s.name]
        if s.kind == "classification":
            m = parity_metrics(r, a)
        else:
            m = _generic(r, a)
        if s.kind == "dense":
            m.update(pixel_metrics(r, a))
        elif s.kind == "scores":
            m["detection_agreement"] = detection_agreement(r, a)
        elif s.kind == "boxes":
            m["box_iou"] = box_iou(r, a, expected[s.scores])
        out[s.name] = {"kind": s.kind, **m}
    return out


def broken_metrics(layout: list[Slot], expected: dict) -> dict[str, dict]:
    """Each output's kind metrics against the broken references of compare.metrics.broken_outputs (every
    output of a sample made input-independent, or stale, together): what a budget must fail."""
    out: dict = {s.name: {} for s in layout}
    names = [s.name for s in layout]
    per_output = {n: broken_outputs(expected[n]) for n in names}
    for kind in ("input_independent", "stale"):
        broken = {n: per_output[n][kind] for n in names}
        for name, m in output_metrics(layout, expected, broken).items():
            out[name][kind] = {k: v for k, v in m.items() if k != "kind"}
    return out

