"""Helpers for self-tests that run the suite itself in a child pytest."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[2]

# No per-example deadline: CI shares two cores with conversions, and a timing assertion would be flaky.
settings.register_profile("convsuite", deadline=None, derandomize=True)
settings.load_profile("convsuite")


def child_pytest(cache: str, *args, env=None) -> tuple[list[str], dict]:
    """The command and environment of a child pytest run on this project, sharing the artifact cache."""
    # -c/--rootdir pin the project: otherwise pytest, which does not know our options before it has
    # loaded conftest.py, takes option values for paths and guesses rootdir from their common parent.
    cmd = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
           "-p", "no:cacheprovider", f"--artifact-cache={cache}", *_joined(args)]
    child_env = {**os.environ, **(env or {})}
    child_env.pop("CONVSUITE_RUN_ID", None)  # the child is a run of its own
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID",
                "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"):
        child_env.pop(var, None)
    return cmd, child_env


@pytest.fixture
def pytester_run(pytestconfig):
    """Run pytest on this project in a child process (sharing this run's artifact cache) and return its
    combined output; extra env vars via env=..., expected exit codes via ok=(...)."""

    def run(*args, env=None, ok=(0,), timeout=900):
        cmd, child_env = child_pytest(pytestconfig.getoption("--artifact-cache"), *args, env=env)
        proc = subprocess.run(cmd, cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        assert proc.returncode in ok, f"exit {proc.returncode}:\n{out[-6000:]}"
        return out

    return run


def _joined(args):
    """("--opt", "value") -> "--opt=value": before conftest.py is loaded pytest does not know our options
    and would take a bare value for a path argument, and then load conftests relative to that path."""
    out, i = [], 0
    while i < len(args):
        if args[i].startswith("--") and "=" not in args[i] and i + 1 < len(args) and not args[i + 1].startswith("-"):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


CLASSES = {"285": "chelsea", "967": "coffee", "657": "rocket", "698": "china"}


@pytest.fixture
def user_folder(tmp_path):
    from PIL import Image

    from models import images

    rng = np.random.Generator(np.random.PCG64(images.STREAM_SEEDS["userdata"]))
    for label, photo in CLASSES.items():
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(5):
            crop = images._crop(rng, images.load_photo(photo), 256)
            Image.fromarray(np.ascontiguousarray(crop)).save(tmp_path / "data" / label / f"{i}.png")
    return tmp_path / "data"


