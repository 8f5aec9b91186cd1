"""Every --models-from file (or ini `convsuite_models` entry) loads and registers models: a file that does
not exist, fails to import or registers nothing fails here, with what to fix, while the rest of the run
goes on (the models it did register, and every other file's, run their cases)."""
from __future__ import annotations

import pytest


@pytest.mark.architecture
def test_models_file_registers_models(models_file):
    spec, status, detail = models_file
    if status != "ok":
        pytest.fail(detail, pytrace=False)
    print(f"{spec}: registered {detail}")
