"""A stand-in for Gramine's ``/dev/attestation`` pseudo-directory (DCAP flavour).

Gramine exposes ``attestation_type`` ("dcap"), ``user_report_data`` (write 64
bytes) and ``quote`` (reading it produces a quote over what was last written).
A plain directory cannot react to a read, so ``quote`` here is a named pipe (FIFO)
served by a thread: each time a reader opens it, the thread reads the current
``user_report_data``, writes a freshly signed quote and closes its end (the reader
sees end-of-file).

Why a FIFO and not a polled regular file: a reader that writes the report data and
reads ``quote`` at once would race a polling thread and could get a stale quote;
with a FIFO the quote is made after the reader has opened it, hence after it wrote
the report data. To never hand a stale quote to the *next* reader, the thread waits
for the previous reader to close before accepting another (it watches the FIFO with
Linux inotify through ctypes; without inotify it pauses 50 ms).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import threading
import time
from pathlib import Path

from .platform import SgxPlatform
from .quote import ReportFields

_IN_CLOSE_NOWRITE = 0x10
_WAIT_FOR_CLOSE = 5.0


class _CloseWatcher:
    """Signals when some reader closes a file (inotify IN_CLOSE_NOWRITE)."""

    def __init__(self, path: Path) -> None:
        self.fd = -1
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if (
                fd >= 0
                and libc.inotify_add_watch(fd, os.fsencode(path), _IN_CLOSE_NOWRITE)
                >= 0
            ):
                self.fd = fd
            elif fd >= 0:
                os.close(fd)
        except (OSError, AttributeError):
            self.fd = -1

    @property
    def available(self) -> bool:
        return self.fd >= 0

    def drain(self) -> None:
        """Forget events seen so far."""
        while select.select([self.fd], [], [], 0)[0]:
            try:
                os.read(self.fd, 4096)
            except BlockingIOError:
                return

    def wait(self, timeout: float) -> bool:
        """Wait for one close event; False on timeout."""
        ready = select.select([self.fd], [], [], timeout)[0]
        if ready:
            self.drain()
        return bool(ready)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FakeAttestationDir:
    """A directory at ``path`` that answers quote reads like Gramine's DCAP device.

    Use as a context manager (or :meth:`start`/:meth:`stop`). ``enclave`` gives
    the report fields of the quotes (MRENCLAVE...); ``attestation_type`` lets tests
    imitate a non-DCAP Gramine ("none", "epid"). ``quotes_served`` counts answers.
    """

    def __init__(
        self,
        path: Path | str,
        platform: SgxPlatform | None = None,
        enclave: ReportFields | None = None,
        *,
        attestation_type: str = "dcap",
    ) -> None:
        self.path = Path(path)
        self.platform = platform or SgxPlatform()
        self.enclave = enclave or ReportFields()
        self.attestation_type = attestation_type
        self.quotes_served = 0
        self.last_report_data: bytes | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: _CloseWatcher | None = None

    @property
    def quote_path(self) -> Path:
        return self.path / "quote"

    @property
    def report_data_path(self) -> Path:
        return self.path / "user_report_data"

    def start(self) -> FakeAttestationDir:
        """Create the files and start serving quotes."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "attestation_type").write_text(self.attestation_type)
        self.report_data_path.write_bytes(bytes(64))
        os.mkfifo(self.quote_path)
        self._watcher = _CloseWatcher(self.quote_path)
        self._thread = threading.Thread(
            target=self._serve, name="fake-attestation-dir", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a reader blocked on ``quote`` gets end-of-file."""
        self._stopping.set()
        if self._thread is not None:
            self._unblock_writer()
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                raise RuntimeError("the fake attestation thread did not stop in 5 s")
        if self._watcher is not None:
            self._watcher.close()

    def __enter__(self) -> FakeAttestationDir:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping.is_set():
            if self._watcher is not None and self._watcher.available:
                self._watcher.drain()
            fd = os.open(self.quote_path, os.O_WRONLY)  # waits for a reader
            try:
                if self._stopping.is_set():
                    return
                self._answer(fd)
            finally:
                os.close(fd)
            self._wait_reader_gone()

    def _answer(self, fd: int) -> None:
        report_data = self.report_data_path.read_bytes()[:64].ljust(64, b"\x00")
        quote = self.platform.make_quote(report_data, enclave=self.enclave)
        try:
            view = memoryview(quote)
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            return  # the reader left early
        self.last_report_data = report_data
        self.quotes_served += 1

    def _wait_reader_gone(self) -> None:
        watcher = self._watcher
        if watcher is not None and watcher.available:
            watcher.wait(_WAIT_FOR_CLOSE)
            return
        # Without inotify, give the reader time to close (probing the FIFO with
        # an open of our own would hand a waiting reader an empty quote).
        time.sleep(0.05)

    def _unblock_writer(self) -> None:
        try:
            fd = os.open(self.quote_path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        time.sleep(0.05)
        os.close(fd)
