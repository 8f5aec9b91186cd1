"""Shipped weights: every subject whose verdicts must not depend on the CPU loads float16 files verified by
sha256 (the distilled zoo and the digits models), a damaged file is refused with what to do, and the digits
weights are trained in a run only when a measurement asks for it."""
from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.selftest


def test_every_digits_subject_ships_its_weights(monkeypatch):
    from models import subjects
    from models.weights import MANIFEST, Shipped

    monkeypatch.delenv("CONVSUITE_DIGITS_WEIGHTS", raising=False)
    manifest = json.loads(MANIFEST.read_text())
    for subject in subjects.digits():
        assert isinstance(subject.weights, Shipped), subject.id
        entry = manifest[subject.weights.name]
        assert entry["recipe"]["task"] == "digits" and entry["recipe"]["storage"] == "float16"
        assert subject.weights.identity()["sha256"] == entry["sha256"]  # resolve() re-hashes the file


def test_train_modes_switch_to_training_and_an_unknown_mode_says_which_exist(monkeypatch):
    from models import subjects
    from models.weights import Shipped, Trained

    monkeypatch.setenv("CONVSUITE_DIGITS_WEIGHTS", "train-native")
    # the zoo's digits models train; the pruned and distilled variants are made from the shipped baseline
    assert all(isinstance(s.weights, Trained) for s in subjects.digits() if not s.variant)
    assert all(isinstance(s.weights, Shipped) for s in subjects.digits() if s.variant)
    assert "native" in json.dumps(subjects.digits()[0].weights.identity())
    monkeypatch.setenv("CONVSUITE_DIGITS_WEIGHTS", "trained")
    with pytest.raises(ValueError, match="shipped, train, train-native"):
        subjects.digits()


def test_shipped_weights_load_as_the_float16_file_says(monkeypatch):
    import torch

    from models import subjects
    from models.weights import load_state_dict

    monkeypatch.delenv("CONVSUITE_DIGITS_WEIGHTS", raising=False)
    subject = next(s for s in subjects.digits() if s.model == "mobilenet_v3_small_minimal")
    net = subject.build()
    stored = load_state_dict(subject.weights.resolve()[0])
    for key, value in net.state_dict().items():
        assert stored[key].dtype == (torch.float16 if value.is_floating_point() and "running_" not in key
                                     else value.dtype), key
        assert torch.equal(value, stored[key].to(value.dtype)), key


def test_a_damaged_or_missing_shipped_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    from models import weights

    name = "mobilenet_v3_small_minimal_digits"
    shutil.copy(weights.MANIFEST, tmp_path / weights.MANIFEST.name)
    data = (weights.CHECKPOINTS / f"{name}.safetensors").read_bytes()
    (tmp_path / f"{name}.safetensors").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    monkeypatch.setattr(weights, "CHECKPOINTS", tmp_path)
    monkeypatch.setattr(weights, "MANIFEST", tmp_path / weights.MANIFEST.name)
    weights.file_sha256.cache_clear()
    with pytest.raises(weights.CheckpointError, match="does not match the sha256.*restore it with git"):
        weights.Shipped(name).resolve()
    with pytest.raises(weights.CheckpointError, match=r"python -m models.training resnet34"):
        weights.Shipped("resnet34_digits").resolve()
    weights.file_sha256.cache_clear()
