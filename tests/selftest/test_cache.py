"""The artifact cache under real concurrency: several processes, killed writers, corrupt entries."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from converters.cache import ArtifactCache, CacheError, make_key

pytestmark = pytest.mark.selftest
ROOT = Path(__file__).resolve().parents[2]
KEY = make_key({"test": "artifact"})

# A child that asks the cache for KEY; its build sleeps, then records that it ran.
WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from converters.cache import ArtifactCache
    root, key, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
    def build(tmp):
        with open(Path(root) / "builds.log", "a") as f:
            f.write(f"{os.getpid()}\\n")
        (tmp / "half.bin").write_bytes(b"x" * 1000)
        time.sleep(sleep)
        (tmp / "artifact.bin").write_bytes(b"payload")
    hit = ArtifactCache(root).get_or_build("thing", key, build)
    print((hit.path / "artifact.bin").read_text(), hit.built)
""")


def _spawn(root, sleep=0.5):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root), KEY, str(sleep)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_many_processes_build_once(tmp_path):
    procs = [_spawn(tmp_path) for _ in range(6)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert all(o[0].startswith("payload") for o in outs)
    assert len((tmp_path / "builds.log").read_text().split()) == 1
    assert sum(o[0].strip().endswith("True") for o in outs) == 1


def test_a_writer_killed_mid_build_leaves_nothing_trusted(tmp_path):
    p = _spawn(tmp_path, sleep=120)
    deadline = time.time() + 120  # generous: CI runs this beside conversions on two cores
    while not (tmp_path / "builds.log").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "builds.log").exists(), "the writer never started building"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    cache = ArtifactCache(tmp_path)
    assert not cache.is_complete(cache.entry_dir("thing", KEY))
    # the next run builds it properly (the dead writer's lock is released with its process)
    q = _spawn(tmp_path, sleep=0)
    assert q.communicate(timeout=60)[0].startswith("payload")
    assert len((tmp_path / "builds.log").read_text().split()) == 2


def test_corrupt_entry_is_detected_quarantined_and_rebuilt(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def build(tmp):
        calls.append(1)
        (tmp / "a.bin").write_bytes(b"good bytes")

    entry = cache.get_or_build("thing", KEY, build).path
    (entry / "a.bin").write_bytes(b"evil bytes")  # same size, different content
    fresh = ArtifactCache(tmp_path)  # a later run: nothing verified in memory
    hit = fresh.get_or_build("thing", KEY, build)
    assert hit.built and len(calls) == 2
    assert (hit.path / "a.bin").read_bytes() == b"good bytes"
    assert list((tmp_path / "corrupt").iterdir()), "the corrupt entry is kept aside for inspection"


def test_missing_manifest_means_incomplete(tmp_path):
    cache = ArtifactCache(tmp_path)
    entry = cache.entry_dir("thing", KEY)
    entry.mkdir(parents=True)
    (entry / "a.bin").write_bytes(b"no manifest")
    assert not cache.is_complete(entry)


def test_manifest_cannot_point_outside_the_entry(tmp_path):
    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_build("thing", KEY, lambda tmp: (tmp / "a.bin").write_bytes(b"a")).path
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    manifest = json.loads((entry / "MANIFEST.json").read_text())
    manifest["files"]["../../secret.txt"] = {"size": 1, "sha256": "0"}
    (entry / "MANIFEST.json").write_text(json.dumps(manifest))
    assert not ArtifactCache(tmp_path).is_complete(entry)


@pytest.mark.parametrize("kind, key", [("../etc", KEY), ("thing", "../../x"), ("thing", "ABC")])
def test_names_cannot_escape_the_cache(tmp_path, kind, key):
    with pytest.raises(CacheError):
        ArtifactCache(tmp_path).entry_dir(kind, key)
    with pytest.raises(CacheError):
        ArtifactCache(tmp_path).file("thing", KEY, "../../outside")


def test_a_failed_build_publishes_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(tmp):
        (tmp / "partial.bin").write_bytes(b"p")
        raise RuntimeError("converter exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        cache.get_or_build("thing", KEY, build)
    assert not cache.entry_dir("thing", KEY).exists()
    assert not any((tmp_path / "tmp").iterdir())


def test_keys_cover_every_field():
    assert make_key({"a": 1, "b": 2}) == make_key({"b": 2, "a": 1})
    assert make_key({"a": 1}) != make_key({"a": 2})


def test_prune_removes_what_no_run_used_and_keeps_what_one_did(tmp_path, capsys):
    """`python -m converters.cache prune` goes by when an entry was last *used* (a hit marks it), not when
    it was built; the housekeeping of old runs goes too; --dry-run removes nothing."""
    from converters.cache import MANIFEST, main

    root = tmp_path / "cache"
    cache = ArtifactCache(root)
    write = lambda tmp: (tmp / "model.bin").write_bytes(b"x" * 2**20)  # noqa: E731
    keys = {name: make_key({"test": name}) for name in ("unused", "used")}
    entries = {name: cache.get_or_build("onnx", key, write).path for name, key in keys.items()}
    (root / "failed").mkdir()
    (root / "failed" / "onnx-old.log").write_text("an old failure")
    month_ago = time.time() - 30 * 86400
    for path in (*(entry / MANIFEST for entry in entries.values()), root / "failed" / "onnx-old.log"):
        os.utime(path, (month_ago, month_ago))

    def refuse(tmp):
        raise AssertionError("a complete entry was built again")
    ArtifactCache(root).get_or_build("onnx", keys["used"], refuse)  # a later run's hit

    assert main(["prune", str(root), "--unused-days", "14", "--dry-run"]) == 0
    assert all(entry.exists() for entry in entries.values())
    assert main(["prune", str(root), "--unused-days", "14"]) == 0
    out = capsys.readouterr().out
    assert not entries["unused"].exists() and not (root / "failed" / "onnx-old.log").exists()
    assert entries["used"].exists() and "freed 1.0 MiB" in out
    assert main(["usage", str(root)]) == 0
    assert "onnx" in capsys.readouterr().out
