"""Wiring: keys, platform, the two gRPC servers, signals and shutdown."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from blindai.pb import securedexchange_pb2_grpc, untrusted_pb2_grpc
from blindai.server.config import MIB, ServerConfig, check_paths
from blindai.server.errors import StartupError
from blindai.server.exchange import ExchangeService
from blindai.server.keys import (
    EnclaveIdentity,
    TlsIdentity,
    load_or_create_host_identity,
)
from blindai.server.metrics import Health, ServerMetrics, attach_attestation_gauges
from blindai.server.models import ModelStore, terminate_runs
from blindai.server.untrusted import AttestationService, Platform, SimulationPlatform
from blindai.server.upload import remove_stale_uploads

log = logging.getLogger(__name__)

#: Largest single gRPC message accepted. Totals (model, input) are enforced by the
#: handlers; a message only needs to hold one chunk.
MAX_MESSAGE = 8 * MIB

#: Calls admitted per port (running or waiting) for each worker thread. At 4, the
#: 64 callers of the load test were sometimes refused on a busy machine: gRPC
#: counts a finished call until it is retired, a little after its reply.
CALLS_PER_WORKER = 8

SIMULATION_BANNER = (
    "SIMULATION MODE: this server runs outside any enclave and cannot prove what "
    "it runs. Models and inputs are visible to this machine's owner. Never use it "
    "with real data."
)


def make_platform(config: ServerConfig, identity: EnclaveIdentity) -> Platform:
    """The platform the configuration asks for; raises :class:`StartupError`."""
    if config.simulation:
        return SimulationPlatform()
    from blindai.server.sgx import start_sgx_platform

    return start_sgx_platform(config, identity.tls.cert_der)


@dataclass
class RunningServer:
    """The two gRPC servers and the ports they are bound to."""

    untrusted: grpc.Server
    attested: grpc.Server
    untrusted_port: int
    attested_port: int
    platform: Platform
    health: Health | None = None
    metrics: ServerMetrics | None = None
    metrics_port: int | None = None

    def stop(self, grace: float) -> None:
        if self.health is not None:
            self.health.shutting_down()
        events = [self.attested.stop(grace), self.untrusted.stop(grace)]
        deadline = time.monotonic() + grace
        for event in events:
            event.wait(max(0.0, deadline - time.monotonic()))
        stopped = terminate_runs()
        if stopped:
            log.warning(
                "stopped %d inference(s) still running after the grace period", stopped
            )
        for event in events:
            event.wait(5)
        _close_platform(self.platform)
        if self.metrics is not None:
            self.metrics.close()


def _close_platform(platform: Platform) -> None:
    close = getattr(platform, "close", None)
    if close is not None:
        close()


def _server(
    config: ServerConfig,
    tls: TlsIdentity,
    interceptors: list[grpc.ServerInterceptor] | None = None,
) -> tuple[grpc.Server, object]:
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="rpc"
        ),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
        ],
        # TODO: gRPC refuses calls past this limit before any interceptor can
        # count or log them (docs/operations.md says so). Our own limit needs a
        # refusal that does not wait for a worker thread of this pool.
        maximum_concurrent_rpcs=config.workers * CALLS_PER_WORKER,
        interceptors=interceptors,
    )
    credentials = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
    return server, credentials


def _bind(server: grpc.Server, creds: object, host: str, port: int) -> int:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_secure_port(address, creds)  # type: ignore[arg-type]
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {address}: {exc}") from None
    if bound == 0:
        raise StartupError(
            f"cannot listen on {address} (in use, or not an address of this machine)"
        )
    return bound


def start(config: ServerConfig) -> RunningServer:
    """Create the keys, the platform and both servers, and start serving."""
    check_paths(config)
    if config.model_dir is not None:
        removed = remove_stale_uploads(config.model_dir)
        if removed:
            log.warning(
                "removed %d upload(s) left in --model-dir %s by a server that "
                "stopped mid-upload",
                removed,
                config.model_dir,
            )
    identity = EnclaveIdentity.generate()
    # The platform first: a server that cannot run leaves no state behind.
    platform = make_platform(config, identity)
    try:
        host_tls = load_or_create_host_identity(config.state_dir)
    except BaseException:
        _close_platform(platform)
        raise
    if config.simulation:
        # After every check that can refuse the start: a refusal is the last line.
        log.warning(SIMULATION_BANNER)
    store = ModelStore()
    metrics = ServerMetrics(platform.mode) if config.metrics_port is not None else None
    attach_attestation_gauges(platform, metrics)
    interceptors = [metrics.interceptor()] if metrics is not None else []

    untrusted, u_creds = _server(config, host_tls, interceptors)
    untrusted_pb2_grpc.add_AttestationServicer_to_server(
        AttestationService(platform, identity.tls.cert_der), untrusted
    )
    health = Health(untrusted)
    attested, a_creds = _server(config, identity.tls, interceptors)
    securedexchange_pb2_grpc.add_ExchangeServicer_to_server(
        ExchangeService(config, identity, store), attested
    )
    u_port = _bind(untrusted, u_creds, config.host, config.untrusted_port)
    a_port = _bind(attested, a_creds, config.host, config.attested_port)
    m_port = None
    if metrics is not None and config.metrics_port is not None:
        m_port = metrics.serve(config.host, config.metrics_port)
    untrusted.start()
    attested.start()
    health.serving()
    log.info(
        "serving (%s mode): untrusted port %s:%d, attested port %s:%d; host "
        "certificate %s",
        platform.mode,
        config.host,
        u_port,
        config.host,
        a_port,
        config.state_dir / "host_server.pem",
    )
    running = RunningServer(
        untrusted, attested, u_port, a_port, platform, health, metrics, m_port
    )
    if config.ready_file is not None:
        try:
            _write_ready_file(
                config.ready_file,
                config,
                u_port,
                a_port,
                platform.mode,
                metrics_port=m_port,
            )
        except OSError as exc:
            # Checked before listening, but the disk can still refuse it.
            running.stop(0)
            raise StartupError(
                f"--ready-file {config.ready_file}: {exc.strerror or exc}"
            ) from exc
    return running


def _write_ready_file(
    path: Path,
    config: ServerConfig,
    u_port: int,
    a_port: int,
    mode: str,
    metrics_port: int | None = None,
) -> None:
    info = {
        "pid": os.getpid(),
        "host": config.host,
        "untrusted_port": u_port,
        "attested_port": a_port,
        "mode": mode,
        "metrics_port": metrics_port,
        "host_certificate": str((config.state_dir / "host_server.pem").resolve()),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)


def serve(config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then finish calls in flight and return."""
    running = start(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info(
            "received %s: stopping (grace period %.0f s)",
            signal.Signals(signum).name,
            config.grace_period,
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    running.stop(config.grace_period)
    log.info("stopped")
