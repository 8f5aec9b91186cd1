"""The model registry: one decorator registers an architecture, `names()` lists them in stable sorted
order (every xdist worker must collect the same list), `get(name)` returns the entry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from compare.cases import check_name
from models.builder import Architecture


@dataclass(frozen=True)
class Published:
    """The reference figures a registered table is checked against (224x224, 1000 classes).

    params: exact trainable-parameter count as PyTorch counts it.
    macs_m: conv + linear multiply-accumulates in millions, to one decimal, as counted over the reference
            definition. `note` gives the paper's / README's own figure and why it differs, if it does.
    """

    params: int
    macs_m: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class PhotoClass:
    """A shipped photo whose ImageNet class a person would name: any of `classes` counts as right."""

    photo: str
    classes: tuple[int, ...]
    label: str
    # Why converted models need only stay inside `classes` here instead of keeping PyTorch's exact top-1;
    # empty (the default) means the exact top-1 must survive conversion.
    ambiguous: str = ""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    arch: Architecture
    published: Published
    weights: object  # a models.weights source; default seeded init
    marks: tuple[str, ...] = ()  # pytest markers every case of this model carries (e.g. "slow")
    photo_classes: tuple[PhotoClass, ...] = field(default=())  # what pretrained weights must recognize
    # Why this model is kept out of budget derivation (scripts/derive_budgets.py), if it is: a real-weight
    # model the budgets were not fitted to, whose correct conversions must still pass.
    held_out: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str | None = None, *, published: Published, weights=None, marks=(), photo_classes=(),
             held_out: str = ""):
    """Register the Architecture returned by the decorated function under `name` (default: its name)."""

    def decorate(fn: Callable[[], Architecture]):
        from models.weights import SeededInit

        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} registered twice")
        check_name(key, "model")
        _REGISTRY[key] = ModelEntry(key, fn(), published, weights or SeededInit(), tuple(marks),
                                    tuple(photo_classes), held_out)
        return fn

    return decorate


def _ensure_loaded():
    import models.zoo  # noqa: F401  (registration happens on import)


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no model named {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None
