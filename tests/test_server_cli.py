"""Starting the server: refusal without an enclave, options, the host key."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import time

from blindai.server.config import parse_args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_refuses_to_start_without_simulation_or_enclave(tmp_path):
    ports = [_free_port(), _free_port()]
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "blindai.server",
            "--untrusted-port",
            str(ports[0]),
            "--attested-port",
            str(ports[1]),
            "--state-dir",
            str(tmp_path / "s"),
            "--attestation-dir",
            str(tmp_path / "no-such-dir"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert time.monotonic() - started < 30
    assert "--simulation" in proc.stderr
    assert "attestation" in proc.stderr
    assert not any(_listening(p) for p in ports)
    # A server that cannot run leaves nothing behind, not even its state.
    assert not (tmp_path / "s").exists()


def test_options_from_environment(monkeypatch):
    monkeypatch.setenv("BLINDAI_ATTESTED_PORT", "6001")
    monkeypatch.setenv("BLINDAI_SIMULATION", "1")
    monkeypatch.setenv("BLINDAI_MAX_INPUT_SIZE", "1234")
    config = parse_args(["--untrusted-port", "6002"])
    assert config.simulation and config.attested_port == 6001
    assert config.untrusted_port == 6002 and config.max_input_size == 1234


def test_defaults_match_the_documentation():
    config = parse_args([])
    assert (config.host, config.untrusted_port, config.attested_port) == (
        "127.0.0.1",
        50052,
        50051,
    )
    assert config.max_model_size == 500 * 1024 * 1024
    assert config.max_input_size == 100 * 1024 * 1024
    assert not config.simulation


def test_help_lists_environment_variables():
    proc = subprocess.run(
        [sys.executable, "-m", "blindai.server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "BLINDAI_" in proc.stdout and "--simulation" in proc.stdout


def test_host_key_is_private(sim_server):
    key = sim_server.state_dir / "host_server.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in sim_server.host_certificate.read_bytes()
    assert not list(sim_server.state_dir.glob("*enclave*"))


def test_inferences_are_bounded_by_default():
    """Published 0.3 clients send no deadline: the server must bound runs itself."""
    assert 0 < parse_args([]).run_timeout <= 600
