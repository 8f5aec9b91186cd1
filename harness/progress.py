"""Live progress on the controller: conversion and training steps can take minutes while xdist workers
print nothing, so the controller tails the run's progress file (written by converters.pipeline) and shows
each step's start and end as it happens."""
from __future__ import annotations

import threading
from pathlib import Path

POLL_S = 2.0


class ProgressTail:
    def __init__(self, path: Path, write):
        self.path, self.write, self.offset = path, write, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="convsuite-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=POLL_S * 2)
        self._drain()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self._drain()

    def _drain(self) -> None:
        try:
            with open(self.path) as f:
                f.seek(self.offset)
                lines = f.readlines()
                self.offset = f.tell()
        except OSError:
            return
        for line in lines:
            self.write(f"[convsuite] {line.rstrip()}")
