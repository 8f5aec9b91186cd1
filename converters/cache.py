"""Content-addressed artifact cache, safe to share between xdist workers and concurrent runs.

The xdist recipe: a key that covers everything that changes the artifact, a file lock per key, a build
into a temporary directory, and an atomic rename. An entry is a directory holding the built files plus
MANIFEST.json (sha256 and size of every file); an entry whose files do not match its manifest is
corrupt, moved aside and rebuilt, never used. Nothing read from the cache is executed or unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from filelock import FileLock

MANIFEST = "MANIFEST.json"
_KEY_RE = re.compile(r"^[0-9a-f]{16,64}$")
_KIND_RE = re.compile(r"^[a-z0-9_]+$")


class CacheError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def make_key(payload: dict) -> str:
    """The content address of an artifact: sha256 over its canonical JSON description."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class Hit:
    path: Path
    built: bool  # True when this call built the entry, False on a cache hit
    seconds: float


class ArtifactCache:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self._verified: set[Path] = set()
        self._used: set[Path] = set()

    def entry_dir(self, kind: str, key: str) -> Path:
        """Where an entry lives. kind and key are validated so no name can escape the cache root."""
        if not _KIND_RE.match(kind) or not _KEY_RE.match(key):
            raise CacheError(f"invalid cache kind/key {kind!r}/{key!r}")
        path = (self.root / kind / key).resolve()
        if self.root not in path.parents:
            raise CacheError(f"cache path {path} escapes the cache root {self.root}")
        return path

    def file(self, kind: str, key: str, name: str) -> Path:
        """A file inside a complete entry; `name` may not leave the entry directory."""
        entry = self.entry_dir(kind, key)
        path = (entry / name).resolve()
        if entry not in path.parents:
            raise CacheError(f"{name!r} escapes cache entry {entry}")
        return path

    def is_complete(self, entry: Path) -> bool:
        """True when the manifest exists and every listed file has its recorded size and sha256."""
        if entry in self._verified:
            return True
        manifest_path = entry / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text())
            for rel, meta in manifest["files"].items():
                f = (entry / rel).resolve()
                if entry.resolve() not in f.parents or f.stat().st_size != meta["size"] \
                        or sha256_file(f) != meta["sha256"]:
                    return False
        except (OSError, ValueError, KeyError, TypeError):
            return False
        self._verified.add(entry)
        return True

    def get_or_build(self, kind: str, key: str, build: Callable[[Path], None], meta: dict | None = None) -> Hit:
        """Return the complete entry for (kind, key), building it once under the key's lock if needed.

        `build(tmp_dir)` writes the artifact files into tmp_dir; if it raises, nothing is published and
        its temporary directory is removed (the exception propagates).
        """
        start = time.perf_counter()
        entry = self.entry_dir(kind, key)
        if self.is_complete(entry):
            self._mark_used(entry)
            return Hit(entry, False, time.perf_counter() - start)
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / f"{kind}-{key}.lock")):
            if self.is_complete(entry):  # another worker built it while we waited
                self._mark_used(entry)
                return Hit(entry, False, time.perf_counter() - start)
            if entry.exists():
                self._quarantine(entry)
            tmp = self.root / "tmp" / f"{kind}-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            try:
                build(tmp)
                self._write_manifest(tmp, kind, key, meta or {})
                for f in tmp.rglob("*"):  # published entries are read-only: a tool that writes into an
                    if f.is_file():       # input it was handed fails loudly instead of corrupting the cache
                        f.chmod(0o444)
                entry.parent.mkdir(parents=True, exist_ok=True)
                os.rename(tmp, entry)  # atomic on one filesystem: the entry appears complete or not at all
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        self._verified.add(entry)
        return Hit(entry, True, time.perf_counter() - start)

    def _mark_used(self, entry: Path) -> None:
        """The manifest's mtime is when the entry was last used (once per process): `prune` keeps what
        recent runs used. A read-only cache (a restored CI cache) just keeps its times."""
        if entry not in self._used:
            self._used.add(entry)
            try:
                os.utime(entry / MANIFEST)
            except OSError:
                pass

    def _write_manifest(self, tmp: Path, kind: str, key: str, meta: dict) -> None:
        files = {}
        for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
            files[str(f.relative_to(tmp))] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
        manifest = {"kind": kind, "key": key, "created": time.time(), "meta": meta, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))

    def _quarantine(self, entry: Path) -> None:
        """Move an incomplete or corrupt entry out of the way (kept for inspection, never read again)."""
        bad = self.root / "corrupt" / f"{entry.parent.name}-{entry.name}-{uuid.uuid4().hex[:8]}"
        bad.parent.mkdir(parents=True, exist_ok=True)
        os.rename(entry, bad)
        self._verified.discard(entry)


# --- housekeeping: python -m converters.cache usage|prune ------------------------------------------------
# Beside the entries (<kind>/<key>/), the cache root holds build scratch (tmp/), quarantined entries
# (corrupt/), failure logs and records (failed/), run progress logs (progress/) and lock files (locks/).


def _size(path: Path) -> int:
    """Bytes under `path`, each hard-linked file once (the savedmodel entry shares the tflite entry's)."""
    seen, total = set(), 0
    for f in [path] if path.is_file() else path.rglob("*"):
        try:
            st = f.lstat()
        except OSError:
            continue
        if f.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _last_used(path: Path) -> float:
    """An entry's manifest mtime (when it was last used); for anything else, its own newest mtime."""
    try:
        return (path / MANIFEST).stat().st_mtime
    except OSError:
        pass
    try:
        return max([path.stat().st_mtime, *(f.stat().st_mtime for f in path.rglob("*"))])
    except OSError:
        return 0.0


def stale(root: Path, days: float, now: float | None = None) -> list[Path]:
    """What `prune` removes: entries not used for `days` days, and the housekeeping left by runs that long
    ago (build scratch, quarantined entries, failure logs, progress logs). Lock files stay (a lock that
    goes while held would let two builders in)."""
    cutoff = (time.time() if now is None else now) - days * 86400
    found = []
    for kind in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "locks"):
        for item in sorted(kind.iterdir()):
            if _last_used(item) < cutoff:
                found.append(item)
    return found


def usage(root: Path) -> list[tuple[str, int, int]]:
    """(kind, entries, bytes) for each directory of the cache, largest first."""
    rows = [(d.name, sum(1 for _ in d.iterdir()), _size(d)) for d in root.iterdir() if d.is_dir()]
    return sorted(rows, key=lambda row: -row[2])


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m converters.cache",
                                     description="What the artifact cache holds; pruning what runs no longer use.")
    parser.add_argument("command", choices=("usage", "prune"),
                        help="usage: entries and size per kind, and the free space; prune: remove entries not used "
                             "for --unused-days days and the housekeeping of runs that old")
    parser.add_argument("cache", nargs="?", default=os.environ.get("CONVSUITE_CACHE_DIR",
                                                                  str(Path(__file__).resolve().parent.parent
                                                                      / ".convsuite-cache")),
                        help="the cache directory (default: $CONVSUITE_CACHE_DIR or .convsuite-cache/)")
    parser.add_argument("--unused-days", type=float, default=14, metavar="DAYS",
                        help="prune: what no run used for this many days (default 14; 0 removes everything)")
    parser.add_argument("--dry-run", action="store_true", help="prune: list what would go, remove nothing")
    args = parser.parse_args(argv)
    root = Path(args.cache).expanduser().resolve()
    if not root.is_dir():
        parser.error(f"no cache at {root}")
    if args.command == "usage":
        rows = usage(root)
        for kind, count, size in rows:
            print(f"{kind:32s} {count:6d} {size / 2**20:10.1f} MiB")
        free = shutil.disk_usage(root).free  # the total counts a hard-linked file once, the kinds each
        print(f"{'total':32s} {sum(r[1] for r in rows):6d} {_size(root) / 2**20:10.1f} MiB"
              f"   ({free / 2**30:.1f} GiB free at {root})")
        return 0
    gone = 0
    for item in stale(root, args.unused_days):
        size = _size(item)
        gone += size
        print(f"{'would remove' if args.dry_run else 'removing'} {item.relative_to(root)} ({size / 2**20:.1f} MiB)")
        if args.dry_run:
            continue
        if item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink()
    print(f"{'would free' if args.dry_run else 'freed'} {gone / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # `usage | head`: the reader left; the Python docs' recipe, no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1)
