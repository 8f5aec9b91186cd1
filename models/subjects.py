"""The subjects a run has: every registered model at its published configuration (natural images), every
architecture trained on digits, or one architecture scored on a user's labelled image folder."""
from __future__ import annotations

from pathlib import Path

from models.digits import SIZE as DIGITS_SIZE
from models.registry import get, names
from models.subject import Subject
from models.weights import Checkpoint, Shipped, Trained, classifier_classes


class SubjectError(ValueError):
    """A subject option that cannot work; the message says what to do."""


def natural(checkpoints: dict[str, str] | None = None) -> list[Subject]:
    """Every registered model, with a user checkpoint where one is given (MODEL -> path)."""
    checkpoints = checkpoints or {}
    unknown = sorted(set(checkpoints) - set(names()))
    if unknown:
        raise SubjectError(f"unknown model(s) {unknown} for a checkpoint; registered: {', '.join(names())}")
    return [Subject.of(name, Checkpoint(path=str(Path(checkpoints[name]).expanduser().resolve()))
                       if name in checkpoints else None) for name in names()]


def digits() -> list[Subject]:
    """Every architecture with a 10-class head at 32x32, trained on digits by the suite's recipe
    (models.training) from the seeded init: the shipped weights, or trained in the run where
    CONVSUITE_DIGITS_WEIGHTS asks for it. Held-out models are weight variants of a zoo architecture, so they
    have no digits variant of their own."""
    from models.training import weights_mode

    mode = weights_mode()
    return [Subject.of(name, Shipped(f"{name}_digits") if mode == "shipped" else Trained("digits"),
                       id=f"{name}_digits", num_classes=10, input_size=DIGITS_SIZE, data="digits")
            for name in names() if not get(name).held_out and get(name).arch is not None] + variants()


def variants() -> list[Subject]:
    """The pruned, distilled and QAT variants of a digits model (models.variants), shipped weights."""
    from models import variants as made

    return made.subjects()


def user_folder(model: str, folder: str, checkpoint: str | None = None) -> Subject:
    """`model` scored on a labelled image folder (models.folder), with the user's weights if given."""
    if model not in names():
        raise SubjectError(f"--user-data needs --user-model NAME, one of: {', '.join(names())}")
    if get(model).arch is None:
        raise SubjectError(f"--user-model {model} is a models.model registration: give its labelled folder as "
                           "`labels=DIR` in the registration instead")
    data = Path(folder).expanduser().resolve()
    if not data.is_dir():
        raise SubjectError(f"--user-data {data}: not a directory")
    weights, classes = None, None
    if checkpoint:
        weights = Checkpoint(path=str(Path(checkpoint).expanduser().resolve()))
        classes = classifier_classes(weights.path)
    return Subject.of(model, weights, id=f"{model}_user", data=f"folder:{data}",
                      num_classes=None if classes in (None, get(model).arch.num_classes) else classes)


def labelled_user_models() -> list[Subject]:
    """Every models.model registration that names a labelled folder (`labels=`), scored on it."""
    return [Subject.of(name, id=f"{name}_labelled", data=f"folder:{get(name).user.labels}")
            for name in names() if get(name).user is not None and get(name).user.labels]
