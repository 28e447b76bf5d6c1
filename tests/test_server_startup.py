"""Start-up refusals: bad paths and numbers end in one line and exit 2, never a
traceback, and before the server listens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blindai.server.config import (
    ServerConfig,
    check_paths,
    max_inference_threads,
    parse_args,
)
from blindai.server.errors import StartupError
from blindai.version import PROTOCOL_VERSION, __version__


def _server(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """``blindai-server ARGS`` on any free loopback ports, in simulation mode."""
    argv = ["--simulation", "--untrusted-port", "0", "--attested-port", "0", *args]
    command = [sys.executable, "-m", "blindai.server", *argv]
    if code is not None:
        command = [sys.executable, "-c", code, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("blindai-server: cannot start: "), proc.stderr
    for word in words:
        assert word in lines[-1]


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("not a directory")
    return path


def test_state_dir_that_is_a_file(tmp_path, afile):
    _refused(_server("--state-dir", str(afile)), "--state-dir", str(afile))


def test_state_dir_that_cannot_be_created(tmp_path):
    proc = _server("--state-dir", "/proc/nonexistent")
    _refused(proc, "/proc/nonexistent", "No such file or directory")


@pytest.mark.parametrize("where", ["missing-dir/p.json", "afile/x"])
def test_ready_file_in_no_directory(tmp_path, afile, where):
    ready = tmp_path / where
    proc = _server("--state-dir", str(tmp_path / "s"), "--ready-file", str(ready))
    _refused(proc, "--ready-file", str(ready.parent))
    assert not (tmp_path / "s").exists(), "refused before creating anything"


@pytest.mark.parametrize("where", ["missing-dir", "afile"])
def test_model_dir_that_is_no_directory(tmp_path, afile, where):
    model_dir = tmp_path / where
    proc = _server("--state-dir", str(tmp_path / "s"), "--model-dir", str(model_dir))
    _refused(proc, "--model-dir", str(model_dir))


def test_model_dir_not_writable(tmp_path, monkeypatch):
    # The suite may run as root, whom mode bits do not stop: ask os.access.
    monkeypatch.setattr("os.access", lambda path, mode: Path(path) != tmp_path)
    config = ServerConfig(state_dir=tmp_path / "s", model_dir=tmp_path)
    with pytest.raises(StartupError, match="--model-dir .* is not writable"):
        check_paths(config)


def test_ready_file_failure_after_listening_closes_the_ports(tmp_path, monkeypatch):
    import socket

    from blindai.server import app

    def refuse(path: Path, *args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app, "_write_ready_file", refuse)
    config = ServerConfig(
        simulation=True,
        untrusted_port=0,
        attested_port=0,
        state_dir=tmp_path / "s",
        ready_file=tmp_path / "ready.json",
    )
    ports = []
    real_bind = app._bind
    monkeypatch.setattr(
        app, "_bind", lambda *a: ports.append(real_bind(*a)) or ports[-1]
    )
    with pytest.raises(StartupError, match="No space left on device"):
        app.start(config)
    assert len(ports) == 2
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize(
    "option, value",
    [
        ("--grace-period", "-1"),
        ("--grace-period", "nan"),
        ("--run-timeout", "nan"),
        ("--run-timeout", "inf"),
        ("--run-timeout", "-0.5"),
        ("--idle-timeout", "inf"),
        ("--idle-timeout", "0"),
        ("--idle-timeout", "-inf"),
    ],
)
def test_float_options_must_be_finite_and_in_range(option, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--simulation", option, value])
    assert exit_.value.code == 2
    assert option in capsys.readouterr().err


def test_float_options_at_their_limits_are_accepted():
    config = parse_args(
        ["--grace-period", "0", "--run-timeout", "0", "--idle-timeout", "0.001"]
    )
    assert (config.grace_period, config.run_timeout) == (0.0, 0.0)


def test_inference_threads_are_bounded_by_the_cores(capsys):
    # 100,000 onnxruntime threads took ~20 GB and the server then ignored
    # SIGTERM while it made them.
    limit = max_inference_threads()
    assert parse_args(["--inference-threads", str(limit)]).inference_threads == limit
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--simulation", "--inference-threads", str(limit + 1)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--inference-threads" in err and f"at most {limit}" in err


def test_version():
    proc = subprocess.run(
        [sys.executable, "-m", "blindai.server", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == (
        f"blindai-server {__version__} (protocol {PROTOCOL_VERSION})"
    )


@pytest.mark.parametrize("module", ["onnxruntime", "prometheus_client"])
def test_client_only_install_says_what_is_missing(tmp_path, module):
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from blindai.server.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = _server("--state-dir", str(tmp_path / "s"), code=code)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        'blindai-server needs the server extra: pip install "blindai[server]"'
    )


def test_simulation_banner_is_logged_once_at_start(fresh_sim_server):
    """What the docs promise: the server warns once; the client, per connection."""
    import warnings

    import blindai

    for _ in range(2):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            client = blindai.connect(
                "127.0.0.1", simulation=True, **fresh_sim_server.ports
            )
        client.close_connection()
        assert any(w.category is blindai.SimulationModeWarning for w in seen)
    assert fresh_sim_server.log_text().count("SIMULATION MODE: this server") == 1


def _state_dir_with(tmp_path, cert_pem: bytes, key_pem: bytes):
    from blindai.server.keys import HOST_CERT_NAME, HOST_KEY_NAME

    tmp_path.mkdir()
    (tmp_path / HOST_CERT_NAME).write_bytes(cert_pem)
    key = tmp_path / HOST_KEY_NAME
    key.write_bytes(key_pem)
    key.chmod(0o600)
    return tmp_path


def test_a_damaged_host_certificate_or_key_is_named(tmp_path):
    from blindai.server.keys import load_or_create_host_identity

    good = load_or_create_host_identity(tmp_path / "good")
    cases = {
        "cert": (b"not a certificate", good.key_pem, "host_server.pem"),
        "key": (good.cert_pem, b"not a key", "host_server.key"),
    }
    for name, (cert_pem, key_pem, named) in cases.items():
        state = _state_dir_with(tmp_path / name, cert_pem, key_pem)
        with pytest.raises(StartupError, match=named):
            load_or_create_host_identity(state)


def test_a_host_key_of_another_certificate_is_refused(tmp_path):
    from blindai.server.keys import load_or_create_host_identity

    one = load_or_create_host_identity(tmp_path / "one")
    other = load_or_create_host_identity(tmp_path / "other")
    state = _state_dir_with(tmp_path / "mixed", one.cert_pem, other.key_pem)
    with pytest.raises(StartupError, match="does not match"):
        load_or_create_host_identity(state)


def test_a_refused_start_logs_no_simulation_banner_first(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "blindai.server",
            "--simulation",
            "--untrusted-port",
            "0",
            "--attested-port",
            "0",
            "--state-dir",
            str(blocker / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot start" in proc.stderr and "SIMULATION MODE" not in proc.stderr
