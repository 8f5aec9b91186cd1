"""Cache keys follow the code an artifact depends on, found from the imports (no hand-kept lists): a change
to the folder preprocessing re-keys (rebuilds) the calibration set made from a user's folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from converters import codehash

pytestmark = pytest.mark.selftest
ROOT = Path(__file__).resolve().parents[2]


def test_the_closure_finds_imports_inside_functions():
    files = codehash.closure(("models.datasets",))
    assert ROOT / "models" / "folder.py" in files  # imported lazily, inside datasets.labelled()
    assert ROOT / "models" / "digits.py" in files
    assert not any(p.is_relative_to(ROOT / "converters") for p in files)


def test_changed_folder_preprocessing_rebuilds_the_calibration_set(tmp_path, monkeypatch, user_folder):
    from converters.cache import ArtifactCache
    from converters.pipeline import Pipeline
    from models import subjects

    pipeline = Pipeline(ArtifactCache(tmp_path / "cache"))
    subject = subjects.user_folder("mobilenet_v3_small_minimal", str(user_folder))
    first = pipeline.calibration(subject)
    assert pipeline.calibration(subject) == first  # same code, same data: reused

    project = tmp_path / "project"
    for package in codehash.PACKAGES:
        if (ROOT / package).is_dir():
            shutil.copytree(ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    folder = project / "models" / "folder.py"
    folder.write_text(folder.read_text().replace("size * 256 / 224", "size * 288 / 224"))
    monkeypatch.setattr(codehash, "ROOT", project)
    codehash.digest.cache_clear()
    try:
        second = pipeline.calibration(subject)
    finally:
        codehash.digest.cache_clear()
    assert second != first and second.parent == first.parent
