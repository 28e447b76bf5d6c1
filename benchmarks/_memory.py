"""A process tree's memory, read from /proc, sampled while something runs."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS), 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def files_bytes(directory: Path) -> int:
    """Bytes held by the files in ``directory`` (a tmpfs file is memory too):
    allocated blocks, not the size, since the server frees parts of a file."""
    total = 0
    for entry in os.scandir(directory):
        try:
            total += entry.stat().st_blocks * 512
        except OSError:
            continue
    return total


def footprint(pid: int, directory: Path) -> int:
    """Resident memory of the process tree plus the files it wrote."""
    return sum(rss_bytes(p) for p in tree(pid)) + files_bytes(directory)


class PeakSampler:
    """Samples :func:`footprint` every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, directory: Path, interval: float = 0.005) -> None:
        self._pid, self._dir, self._interval = pid, directory, interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, footprint(self._pid, self._dir))
            self._stop.wait(self._interval)
