"""How xdist hands out the matrix: one subject's cases to one worker (its `xdist_group`, under the
`--dist loadgroup` of pyproject.toml), so that worker builds the subject's conversions once, in order, while
the other workers convert other subjects; and the subjects with the most measured work first, so the run
does not end with one worker finishing a ResNet-50 while the others idle.

The measured work of a subject is the sum of its cases' times in `.test_durations` (a cold run's, the file
pytest-split reads; README "Beyond one machine"); a case not in it counts as the median case.

pytest 9.2 moved node ids to a structured form, and pytest-xdist 3.8 still groups by appending `@group` to
the old string field, so on pytest 9.2 every xdist_group mark is silently ignored (pytest-dev/pytest-xdist#1386):
the cases of one subject go round-robin to all workers, which then wait on each other's conversions. The
constraints pin pytest 9.1; a worker that finds its groups ignored says so.
"""
from __future__ import annotations

import json
import statistics
import warnings
from pathlib import Path

import pytest

DURATIONS_FILE = ".test_durations"


class GroupsIgnored(pytest.PytestWarning):
    """xdist_group marks that pytest-xdist did not apply (a pytest/pytest-xdist pair that does not group)."""


def load_durations(path: Path) -> dict[str, float]:
    """nodeid -> seconds from a pytest-split durations file; {} where there is none or it does not parse."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(data, list):  # pytest-split's older format: [[nodeid, seconds], ...]
        data = dict(data)
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def plain_id(nodeid: str) -> str:
    """The node id without the `@group` suffix pytest-xdist adds under loadgroup."""
    return nodeid.rsplit("@", 1)[0] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid


def _scheduler_class():
    from xdist.scheduler import LoadGroupScheduling

    class HeaviestFirst(LoadGroupScheduling):
        """LoadGroupScheduling that hands out the group with the most measured work left first (longest
        processing time first: with groups of very different sizes it keeps the tail short)."""

        def __init__(self, config, log=None, durations: dict[str, float] | None = None):
            super().__init__(config, log)
            self.durations = durations or {}
            self.default = statistics.median(self.durations.values()) if self.durations else 1.0
            self._costs: dict[str, float] = {}

        def cost(self, scope: str) -> float:
            if scope not in self._costs:
                self._costs[scope] = sum(self.durations.get(plain_id(n), self.default) for n in self.workqueue[scope])
            return self._costs[scope]

        def _assign_work_unit(self, node) -> None:
            heaviest = max(self.workqueue, key=self.cost)
            self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return HeaviestFirst


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # an xdist hook: optional where xdist is absent
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    return _scheduler_class()(config, log, load_durations(config.rootpath / DURATIONS_FILE))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """On an xdist worker under loadgroup: warn when pytest-xdist left the xdist_group marks unapplied."""
    if not getattr(config.option, "loadgroup", False):
        return
    ignored = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if ignored:
        import xdist

        warnings.warn(GroupsIgnored(
            f"pytest-xdist {xdist.__version__} ignored the xdist_group mark of {len(ignored)} tests under pytest "
            f"{pytest.__version__} (pytest-dev/pytest-xdist#1386): one subject's cases go to several workers, "
            "which wait on each other's conversions. Install the versions in constraints.txt "
            "(pip install -c constraints.txt pytest pytest-xdist)."))
