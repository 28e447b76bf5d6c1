"""Server configuration: command-line options, each also readable from the
environment (``BLINDAI_`` + the option's name in capitals, dashes as underscores).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

from blindai.server.errors import StartupError
from blindai.server.upload import default_model_dir
from blindai.version import PROTOCOL_VERSION, __version__

MIB = 1024 * 1024

_ENV_PREFIX = "BLINDAI_"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start; built by :func:`parse_args`."""

    simulation: bool = False
    host: str = "127.0.0.1"
    untrusted_port: int = 50052
    attested_port: int = 50051
    state_dir: Path = Path("~/.local/state/blindai").expanduser()
    max_model_size: int = 500 * MIB
    max_input_size: int = 100 * MIB
    log_level: str = "INFO"
    workers: int = 16
    max_concurrent_uploads: int = 2
    inference_threads: int = 0
    inference_spinning: bool = False
    run_timeout: float = 300.0
    ready_file: Path | None = None
    attestation_dir: Path = Path("/dev/attestation")
    pccs_url: str = "https://localhost:8081"
    pccs_ca: Path | None = None
    pccs_api_version: int = 3
    grace_period: float = 10.0
    idle_timeout: float = 30.0
    #: Where uploads are written while onnxruntime loads them: an in-memory
    #: tmpfs (under Gramine, an in-enclave tmpfs mount); None = hold in memory.
    model_dir: Path | None = default_model_dir()
    metrics_port: int | None = None


def _env(name: str, default: object) -> object:
    value = os.environ.get(_ENV_PREFIX + name.upper().replace("-", "_"))
    return default if value is None else value


def _env_flag(name: str) -> bool:
    value = os.environ.get(_ENV_PREFIX + name.upper().replace("-", "_"), "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _optional_path(value: str) -> Path | None:
    return None if value.strip().lower() in {"", "none"} else Path(value)


def build_parser() -> argparse.ArgumentParser:
    """The ``blindai-server`` argument parser."""
    d = ServerConfig()
    parser = argparse.ArgumentParser(
        prog="blindai-server",
        description=(
            "Confidential inference server speaking the BlindAI 0.3 protocol. "
            "Every option can also be set in the environment as BLINDAI_<NAME> "
            "(e.g. BLINDAI_ATTESTED_PORT=50051, BLINDAI_SIMULATION=1); the "
            "command line wins."
        ),
        epilog=(
            "examples:\n"
            "  blindai-server --simulation\n"
            "  blindai-server --simulation --untrusted-port 0 --attested-port 0 "
            "--ready-file ports.json\n"
            "  gramine-sgx blindai-server --pccs-url https://pccs.internal:8081"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--version",
        action="version",
        version=f"blindai-server {__version__} (protocol {PROTOCOL_VERSION})",
    )
    add(
        "--simulation",
        action="store_true",
        default=_env_flag("simulation"),
        help="run without an enclave and without attestation (development only: "
        "NOT SECURE). Without it the server needs an SGX enclave under Gramine.",
    )
    add(
        "--host",
        default=_env("host", d.host),
        help="address to listen on (default %(default)s)",
    )
    add(
        "--untrusted-port",
        type=int,
        default=_env("untrusted_port", d.untrusted_port),
        help="port of the attestation service (default %(default)s; 0 = any free)",
    )
    add(
        "--attested-port",
        type=int,
        default=_env("attested_port", d.attested_port),
        help="port of the model service (default %(default)s; 0 = any free)",
    )
    add(
        "--state-dir",
        type=Path,
        default=_env("state_dir", d.state_dir),
        help="where host_server.pem (the certificate clients pass as "
        "`certificate`) and its key are kept (default %(default)s)",
    )
    add(
        "--max-model-size",
        type=int,
        default=_env("max_model_size", d.max_model_size),
        help="largest model accepted, in bytes (default %(default)s)",
    )
    add(
        "--max-input-size",
        type=int,
        default=_env("max_input_size", d.max_input_size),
        help="largest input accepted, in bytes (default %(default)s)",
    )
    add(
        "--log-level",
        default=_env("log_level", d.log_level),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (default %(default)s); logs never hold model bytes, "
        "inputs, outputs or keys",
    )
    add(
        "--workers",
        type=int,
        default=_env("workers", d.workers),
        help="threads serving calls, per port: each call in progress (a stream "
        "being received, an inference) holds one; 8 x workers calls in all, "
        "running or waiting, and calls past those are refused with "
        "RESOURCE_EXHAUSTED by gRPC, unlogged (default %(default)s)",
    )
    add(
        "--max-concurrent-uploads",
        type=int,
        default=_env("max_concurrent_uploads", d.max_concurrent_uploads),
        help="uploads received at once, each reserving up to --max-model-size "
        "bytes; more are refused with RESOURCE_EXHAUSTED (default %(default)s)",
    )
    add(
        "--idle-timeout",
        type=float,
        default=_env("idle_timeout", d.idle_timeout),
        help="seconds a client may leave an upload or input stream without "
        "sending its next message before the call is cancelled, freeing its "
        "worker and upload slot (default %(default)s)",
    )
    add(
        "--inference-threads",
        type=int,
        default=_env("inference_threads", d.inference_threads),
        help="onnxruntime intra-op threads per inference (default 0 = one per "
        "core; at most 4 per core)",
    )
    add(
        "--inference-spinning",
        action="store_true",
        default=_env_flag("inference_spinning"),
        help="let idle onnxruntime threads busy-wait for work: lower latency "
        "for one call at a time, less throughput for many (default off)",
    )
    add(
        "--run-timeout",
        type=float,
        default=_env("run_timeout", d.run_timeout),
        help="seconds after which an inference is stopped, so that no model can "
        "hold a worker for ever (default %(default)s; 0 = no limit)",
    )
    add(
        "--ready-file",
        type=Path,
        default=_env("ready_file", None),
        help="write the bound ports as JSON to this file once serving",
    )
    add(
        "--attestation-dir",
        type=Path,
        default=_env("attestation_dir", d.attestation_dir),
        help="Gramine's attestation interface (default %(default)s)",
    )
    add(
        "--pccs-url",
        default=_env("pccs_url", d.pccs_url),
        help="provisioning certification caching service (default %(default)s)",
    )
    add(
        "--pccs-ca",
        type=Path,
        default=_env("pccs_ca", None),
        help="CA certificate (PEM) of a PCCS with a private CA",
    )
    add(
        "--pccs-api-version",
        type=int,
        choices=[3, 4],
        default=_env("pccs_api_version", d.pccs_api_version),
        help="PCS API version: 3 serves TCB info v2 (what published 0.3 clients "
        "read), 4 serves TCB info v3 (default %(default)s)",
    )
    add(
        "--grace-period",
        type=float,
        default=_env("grace_period", d.grace_period),
        help="seconds given to calls in flight on SIGTERM (default %(default)s)",
    )
    add(
        "--model-dir",
        type=_optional_path,
        default=_env("model_dir", d.model_dir),
        help="private in-memory directory (tmpfs) for uploads while onnxruntime "
        "loads them: a named pipe in simulation mode, a 0600 file in hardware "
        "mode, deleted once loaded; under Gramine it MUST be an in-enclave tmpfs "
        "mount, never host-visible storage. 'none' holds uploads in memory "
        "(default %(default)s)",
    )
    add(
        "--metrics-port",
        type=int,
        default=_env("metrics_port", None),
        help="serve Prometheus metrics over HTTP on --host at this port "
        "(default: off; 0 = any free port)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    """Parse the command line (and environment) into a :class:`ServerConfig`."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    config = ServerConfig(**{k: v for k, v in vars(ns).items()})
    problems = _check(config)
    if problems:
        parser.error("; ".join(problems))
    return config


def _check(config: ServerConfig) -> list[str]:
    problems = []
    for name in ("untrusted_port", "attested_port"):
        port = getattr(config, name)
        if not 0 <= port <= 65535:
            problems.append(f"--{name.replace('_', '-')} {port} is not a port")
    if config.metrics_port is not None and not 0 <= config.metrics_port <= 65535:
        problems.append(f"--metrics-port {config.metrics_port} is not a port")
    if config.untrusted_port == config.attested_port != 0:
        problems.append("the two ports must differ")
    for name in (
        "max_model_size",
        "max_input_size",
        "workers",
        "max_concurrent_uploads",
    ):
        if getattr(config, name) <= 0:
            problems.append(f"--{name.replace('_', '-')} must be positive")
    for name in (*_POSITIVE_FLOATS, *_NON_NEGATIVE_FLOATS):
        value = getattr(config, name)
        option = f"--{name.replace('_', '-')}"
        if not math.isfinite(value):
            problems.append(f"{option} {value} is not a finite number of seconds")
        elif name in _POSITIVE_FLOATS and value <= 0:
            problems.append(f"{option} must be positive")
        elif value < 0:
            problems.append(f"{option} cannot be negative")
    if config.inference_threads < 0:
        problems.append("--inference-threads cannot be negative")
    elif config.inference_threads > max_inference_threads():
        problems.append(
            f"--inference-threads {config.inference_threads}: at most "
            f"{max_inference_threads()} on this machine (4 per core, and never "
            "fewer than 16)"
        )
    return problems


def max_inference_threads() -> int:
    """The most ``--inference-threads`` allowed: 4 per core, at least 16. More
    only adds switching, and each thread reserves memory for its stack."""
    return max(16, 4 * (os.cpu_count() or 1))


#: Every float option is checked here. Infinity and NaN are refused: where "no
#: limit" makes sense, it is spelled 0.
_POSITIVE_FLOATS = ("idle_timeout",)
_NON_NEGATIVE_FLOATS = ("run_timeout", "grace_period")


def check_paths(config: ServerConfig) -> None:
    """Check the directories and files the server will write, before it listens.

    Raises :class:`StartupError` naming the option, the path and the problem.
    """
    if config.state_dir.exists() and not config.state_dir.is_dir():
        raise StartupError(f"--state-dir {config.state_dir} is not a directory")
    if config.model_dir is not None:
        _check_writable_dir("--model-dir", config.model_dir)
    if config.ready_file is not None:
        if config.ready_file.is_dir():
            raise StartupError(f"--ready-file {config.ready_file} is a directory")
        parent = config.ready_file.parent
        _check_writable_dir(f"--ready-file {config.ready_file}: its directory", parent)


def _check_writable_dir(option: str, path: Path) -> None:
    if not path.exists():
        raise StartupError(f"{option} {path} does not exist")
    if not path.is_dir():
        raise StartupError(f"{option} {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"{option} {path} is not writable by this user")
