"""The model registry: `names()` lists the models in stable sorted order (every xdist worker must collect
the same list), `get(name)` returns the entry. Two front ends fill it through `add`: `register` for the zoo's
table grammar (an Architecture: variants of class count and input size, the digits population) and
`models.model` (models.api) for any nn.Module, from the zoo or from a user's file (`load_file`,
`pytest --models-from`)."""
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
    arch: Architecture | None  # the zoo's table grammar; None for a models.model registration
    published: Published | None  # the architecture test runs only where given
    weights: object  # a models.weights source; default seeded init
    marks: tuple[str, ...] = ()  # pytest markers every case of this model carries (e.g. "slow")
    photo_classes: tuple[PhotoClass, ...] = field(default=())  # what pretrained weights must recognize
    # Why this model is kept out of budget derivation (scripts/derive_budgets.py), if it is: a real-weight
    # model the budgets were not fitted to, whose correct conversions must still pass.
    held_out: str = ""
    user: object = None  # models.api.UserModel: a factory, its input and named outputs

    @property
    def outputs(self) -> tuple:
        from models.api import Output

        return self.user.outputs if self.user else (Output("logits", "classification"),)


_REGISTRY: dict[str, ModelEntry] = {}


class RegistryError(ValueError):
    """A model file that cannot be used; the message names the file and what to fix."""


def add(key: str, *, arch: Architecture | None = None, user=None, published: Published | None = None,
        weights=None, marks=(), photo_classes=(), held_out: str = "") -> ModelEntry:
    """The one way into the registry (both front ends)."""
    from models.weights import Checkpoint, FactoryWeights, SeededInit

    if key in _REGISTRY:
        raise ValueError(f"model {key!r} registered twice")
    check_name(key, "model")
    if weights is None:
        weights = (SeededInit() if arch is not None else Checkpoint(path=user.checkpoint) if user.checkpoint
                   else FactoryWeights())
    entry = ModelEntry(key, arch, published, weights, tuple(marks), tuple(photo_classes), held_out, user)
    _REGISTRY[key] = entry
    return entry


def register(name: str | None = None, *, published: Published, weights=None, marks=(), photo_classes=(),
             held_out: str = ""):
    """Register the Architecture returned by the decorated function under `name` (default: its name)."""

    def decorate(fn: Callable[[], Architecture]):
        add(name or fn.__name__, arch=fn(), published=published, weights=weights, marks=marks,
            photo_classes=photo_classes, held_out=held_out)
        return fn

    return decorate


def _ensure_loaded():
    import models.zoo  # noqa: F401  (registration happens on import)


_FILES: dict[str, list[str]] = {}


def load_file(spec: str) -> list[str]:
    """Import a Python file (or an importable module name) that registers models with `models.model`;
    returns the names it registered. Loading the same file twice is a no-op."""
    import importlib
    import importlib.util
    import sys
    import traceback
    from pathlib import Path

    _ensure_loaded()
    path = Path(spec).expanduser()
    key = str(path.resolve()) if path.suffix == ".py" or path.exists() else spec
    if key in _FILES:
        return _FILES[key]
    before = set(_REGISTRY)
    try:
        if path.suffix == ".py" or path.exists():
            if not path.is_file():
                raise RegistryError(f"--models-from {spec}: no such file (give a .py file or an importable "
                                    "module name)")
            module_name = f"convsuite_models_{path.stem}"
            mod_spec = importlib.util.spec_from_file_location(module_name, path.resolve())
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[module_name] = module
            mod_spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(spec)
            except ModuleNotFoundError as exc:
                if exc.name and spec.startswith(exc.name):
                    raise RegistryError(f"--models-from {spec}: no such file or importable module") from None
                raise
    except RegistryError:
        raise
    except Exception as exc:  # the user's file: say which and where
        for name in set(_REGISTRY) - before:
            _REGISTRY.pop(name)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise RegistryError(f"--models-from {spec}: importing it raised {type(exc).__name__}: {exc} "
                            f"({Path(where.filename).name}:{where.lineno})") from None
    added = sorted(set(_REGISTRY) - before)
    if not added:
        raise RegistryError(f"--models-from {spec}: it registered no model; decorate a factory with "
                            "`@models.model(name, input=models.Input(...), outputs=[...])`")
    _FILES[key] = added
    return added


def is_registered(name: str) -> bool:
    _ensure_loaded()
    return name in _REGISTRY


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no model named {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None
