"""Helpers for self-tests that run the suite itself in a child pytest."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[2]

# No per-example deadline: CI shares two cores with conversions, and a timing assertion would be flaky.
settings.register_profile("convsuite", deadline=None, derandomize=True)
settings.load_profile("convsuite")


@pytest.fixture
def pytester_run(pytestconfig):
    """Run pytest on this project in a child process (sharing this run's artifact cache) and return its
    combined output; extra env vars via env=..., expected exit codes via ok=(...)."""

    def run(*args, env=None, ok=(0,), timeout=900):
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
               "--artifact-cache", pytestconfig.getoption("--artifact-cache"), *args]
        child_env = {**os.environ, **(env or {})}
        child_env.pop("CONVSUITE_RUN_ID", None)  # the child is a run of its own
        for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID",
                    "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"):
            child_env.pop(var, None)
        proc = subprocess.run(cmd, cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        assert proc.returncode in ok, f"exit {proc.returncode}:\n{out[-6000:]}"
        return out

    return run
