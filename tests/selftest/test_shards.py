"""Beyond one machine: pytest-split groups run as separate processes at the same time against one artifact
cache (as CI jobs share one), each writing its own report; merged (python -m report.merge) they give the
report a single run writes: the same cases, outcomes and measurements."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.selftest.conftest import ROOT, child_pytest

pytestmark = pytest.mark.selftest
SELECT = ("-n", "0", "-m", "parity", "-k", "mobilenet_v3_small_minimal and (onnx or tflite-fp32 or tflite-int8)")
SHARDS = 3


def _rows(report_dir):
    rows = json.loads((report_dir / "report.json").read_text())["results"]
    return {(r["kind"], r["case"]): {k: r.get(k) for k in ("outcome", "metrics", "reference_metrics")} for r in rows}


def test_shards_merge_into_the_report_of_one_run(tmp_path):
    from report.merge import merge

    cache = str(tmp_path / "cache")
    shards = []
    for group in range(1, SHARDS + 1):
        cmd, env = child_pytest(cache, *SELECT, f"--splits={SHARDS}", f"--group={group}",
                                f"--report-dir={tmp_path / f'shard{group}'}")
        shards.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True))
    outs = [p.communicate(timeout=1800)[0] for p in shards]
    # exit 1 is a case outside its budget: this test compares reports, whatever the verdicts are
    assert all(p.returncode in (0, 1) and "conformance report:" in o for p, o in zip(shards, outs)), \
        "\n".join(o[-2000:] for o in outs)
    merge([tmp_path / f"shard{g}" for g in range(1, SHARDS + 1)], tmp_path / "merged")

    cmd, env = child_pytest(cache, *SELECT, f"--report-dir={tmp_path / 'single'}")
    single = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert single.returncode in (0, 1) and "conformance report:" in single.stdout, single.stdout[-2000:]
    merged, one = _rows(tmp_path / "merged"), _rows(tmp_path / "single")
    assert len(one) == 5 and merged == one
    # every artifact was built once, by whichever shard needed it first
    assert len(list((tmp_path / "cache" / "tflite").iterdir())) == 1
