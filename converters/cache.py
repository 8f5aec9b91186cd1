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
            return Hit(entry, False, time.perf_counter() - start)
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / f"{kind}-{key}.lock")):
            if self.is_complete(entry):  # another worker built it while we waited
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
