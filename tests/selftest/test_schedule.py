"""How xdist hands out the matrix (harness.schedule): each xdist_group on one worker, the group with the most
measured work (.test_durations) first; and a worker that finds its groups ignored says so."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest

from tests.selftest.conftest import ROOT

pytestmark = pytest.mark.selftest

TESTS = '''
import pytest

@pytest.mark.parametrize("i", range(3))
@pytest.mark.xdist_group("light")
def test_light(i):
    pass

@pytest.mark.parametrize("i", range(3))
@pytest.mark.xdist_group("heavy")
def test_heavy(i):
    pass

@pytest.mark.parametrize("i", range(3))
@pytest.mark.xdist_group("middle")
def test_middle(i):
    pass
'''
SECONDS = {"light": 1.0, "middle": 5.0, "heavy": 30.0}


def _run(tmp_path, workers: int) -> list[tuple[str, str]]:
    (tmp_path / "test_groups.py").write_text(TESTS)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ("harness.schedule",)\n')
    (tmp_path / ".test_durations").write_text(json.dumps(
        {f"test_groups.py::test_{g}[{i}]": s for g, s in SECONDS.items() for i in range(3)}))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v",
                          "-n", str(workers), "--dist", "loadgroup"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    # "[gw0] [ 11%] PASSED test_groups.py::test_heavy[0]@heavy"
    return re.findall(r"^\[(gw\d+)\] .*PASSED test_groups\.py::test_\w+\[\d\]@(\w+)", out.stdout, re.M)


def test_one_worker_runs_the_heaviest_group_first(tmp_path):
    ran = _run(tmp_path, 1)
    assert [group for _, group in ran] == ["heavy"] * 3 + ["middle"] * 3 + ["light"] * 3


def test_each_group_stays_on_one_worker(tmp_path):
    ran = _run(tmp_path, 2)
    assert len(ran) == 9
    workers = {}
    for worker, group in ran:
        workers.setdefault(group, set()).add(worker)
    assert all(len(w) == 1 for w in workers.values()), workers


def test_a_worker_whose_groups_were_ignored_warns():
    from harness.schedule import GroupsIgnored, pytest_collection_modifyitems

    config = SimpleNamespace(option=SimpleNamespace(loadgroup=True))
    item = SimpleNamespace(nodeid="tests/test_parity.py::test_parity[resnet50-onnx-fp32]",
                           get_closest_marker=lambda name: name == "xdist_group" or None)
    with pytest.warns(GroupsIgnored, match="pytest-xdist#1386"):
        pytest_collection_modifyitems(config, [item])
    grouped = SimpleNamespace(nodeid=item.nodeid + "@resnet50", get_closest_marker=item.get_closest_marker)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pytest_collection_modifyitems(config, [grouped])
