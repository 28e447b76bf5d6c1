"""Start a ``blindai-server`` process on free loopback ports and wait until it
serves: for demos, notebooks and tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any


class LocalServer:
    """A ``blindai-server`` child process; a context manager that stops it.

    >>> with LocalServer(["--simulation"]) as server:    # doctest: +SKIP
    ...     client.connect_server("127.0.0.1", simulation=True,
    ...                           **server.ports)
    """

    def __init__(
        self,
        args: list[str] | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="blindai-server-")
        tmp = Path(self._tmp.name)
        self.state_dir = Path(state_dir) if state_dir else tmp / "state"
        self.log_path = Path(log_file) if log_file else tmp / "server.log"
        self._ready = tmp / "ready.json"
        self._args = list(args or [])
        self._env = env
        self._timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._log: IO[bytes] | None = None

    @property
    def untrusted_port(self) -> int:
        return int(self.info["untrusted_port"])

    @property
    def attested_port(self) -> int:
        return int(self.info["attested_port"])

    @property
    def ports(self) -> dict[str, int]:
        """``untrusted_port`` and ``attested_port``, as ``connect_server`` takes."""
        return {
            "untrusted_port": self.untrusted_port,
            "attested_port": self.attested_port,
        }

    @property
    def host_certificate(self) -> Path:
        return self.state_dir / "host_server.pem"

    def start(self) -> LocalServer:
        command = [
            sys.executable,
            "-m",
            "blindai.server",
            "--host",
            "127.0.0.1",
            "--untrusted-port",
            "0",
            "--attested-port",
            "0",
            "--state-dir",
            str(self.state_dir),
            "--ready-file",
            str(self._ready),
            *self._args,
        ]
        env = dict(os.environ if self._env is None else self._env)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and args)
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + self._timeout
        while not self._ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"blindai-server exited with {self.process.returncode}: "
                    f"{self.log_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"blindai-server did not start within {self._timeout:.0f} s"
                )
            time.sleep(0.05)
        self.info = json.loads(self._ready.read_text())
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """Send SIGTERM, wait, and return the exit code (kill after ``timeout``)."""
        code = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        elif self.process is not None:
            code = self.process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()
