"""Cancelling calls whose client stops sending.

A worker thread reads a client's stream and blocks until the next message comes.
A client that opens a stream and then sends nothing would hold that thread, and
for an upload an upload slot, for as long as its connection lives: a handful of
such clients would stop the server for everyone. One watchdog thread cancels
every stream that has been silent for longer than the idle limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import grpc

from blindai.server.models import RequestError

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Stream:
    """A watched stream: when it last delivered a message, and its call."""

    __slots__ = ("context", "last_seen", "cancelled")

    def __init__(self, context: Any) -> None:
        self.context = context
        self.last_seen = time.monotonic()
        self.cancelled = False


class StreamWatchdog:
    """Cancels streams idle for more than ``idle_timeout`` seconds."""

    def __init__(self, idle_timeout: float) -> None:
        self._idle = idle_timeout
        self._tick = min(1.0, idle_timeout / 4)
        self._lock = threading.Lock()
        self._streams: set[_Stream] = set()
        self._thread: threading.Thread | None = None

    def watch(self, requests: Iterator[T], context: Any) -> Iterator[T]:
        """Yield ``requests``; a stream cancelled for idleness, or by its
        client, ends in a :class:`RequestError` that says so."""
        stream = _Stream(context)
        self._add(stream)
        try:
            for request in requests:
                stream.last_seen = time.monotonic()
                yield request
        except grpc.RpcError:
            raise self._ended(stream) from None
        finally:
            with self._lock:
                self._streams.discard(stream)
        # A cancelled stream may also just stop: not an upload cut short.
        if stream.cancelled or not context.is_active():
            raise self._ended(stream)

    def _ended(self, stream: _Stream) -> RequestError:
        """Why a stream's call ended: CANCELLED, as its client sees it."""
        if stream.cancelled:
            return RequestError(
                grpc.StatusCode.CANCELLED,
                f"the client sent nothing for {self._idle:g} s",
            )
        return RequestError(grpc.StatusCode.CANCELLED, "the client cancelled the call")

    def _add(self, stream: _Stream) -> None:
        with self._lock:
            self._streams.add(stream)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name="stream-watchdog"
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self._tick)
            limit = time.monotonic() - self._idle
            with self._lock:
                idle = [
                    s for s in self._streams if s.last_seen < limit and not s.cancelled
                ]
                for stream in idle:
                    stream.cancelled = True
            for stream in idle:
                log.info("cancelled a stream idle for more than %g s", self._idle)
                stream.context.cancel()
