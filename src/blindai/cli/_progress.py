"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import threading
import time
from typing import TextIO

_WIDTH = 30
_MIB = 1024 * 1024


class ProgressBar:
    """Callable as ``bar(sent_bytes, total_bytes)``; :meth:`close` ends the line.

    It may be called from another thread (gRPC sends from its own), so drawing
    is serialised, and throttled to a few redraws a second.
    """

    def __init__(self, label: str, stream: TextIO, interval: float = 0.1) -> None:
        self._label = label
        self._stream = stream
        self._interval = interval
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            if sent < total and now - self._last_draw < self._interval:
                return
            self._last_draw = now
            self._stream.write("\r" + render(self._label, sent, total))
            self._stream.flush()
            self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self._drawn:
                self._stream.write("\n")
                self._stream.flush()
                self._drawn = False


def render(label: str, sent: int, total: int) -> str:
    """``label [#######       ]  48%  1.2/2.5 MiB``"""
    fraction = 1.0 if total <= 0 else min(sent / total, 1.0)
    filled = int(fraction * _WIDTH)
    bar = "#" * filled + " " * (_WIDTH - filled)
    return f"{label} [{bar}] {fraction:4.0%}  {sent / _MIB:.1f}/{total / _MIB:.1f} MiB"


def progress_bar(
    label: str, stream: TextIO, enabled: bool = True
) -> ProgressBar | None:
    """A bar on ``stream`` when it is a terminal and ``enabled``; else ``None``."""
    if not enabled or not stream.isatty():
        return None
    return ProgressBar(label, stream)
