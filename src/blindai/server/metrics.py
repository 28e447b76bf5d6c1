"""Operations: the standard gRPC health service and Prometheus metrics.

Health (``grpc.health.v1.Health``) is served on the untrusted port: SERVING once
both ports serve, NOT_SERVING from the start of shutdown.

Metrics (``--metrics-port``) are served over plain HTTP on ``--host``. They hold
counts, durations, sizes, status codes, error classes and the platform's
attestation state; never content, model bytes, hashes, client identities or
peer addresses. The hardware platform sets the attestation gauges through
:class:`AttestationGauges` (see :func:`attach_attestation_gauges`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from blindai.server.errors import StartupError

log = logging.getLogger(__name__)

#: Services whose health the untrusted port reports ("" is the whole server).
HEALTH_SERVICES = ("", "untrusted.Attestation", "securedexchange.Exchange")

_SIZE_BUCKETS = tuple(float(4**n) for n in range(4, 16))  # 256 B .. 256 MiB
_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Health:
    """The health service's state, on the server it was added to."""

    def __init__(self, server: grpc.Server) -> None:
        from grpc_health.v1 import health_pb2_grpc

        self._servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        self._set(health_pb2.HealthCheckResponse.NOT_SERVING)

    def serving(self) -> None:
        """Report SERVING (both ports are up)."""
        self._set(health_pb2.HealthCheckResponse.SERVING)

    def shutting_down(self) -> None:
        """Report NOT_SERVING from now on (shutdown has started)."""
        self._servicer.enter_graceful_shutdown()

    def _set(self, status: Any) -> None:
        for service in HEALTH_SERVICES:
            self._servicer.set(service, status)


class AttestationGauges:
    """The attestation state a hardware platform reports; no secret in it.

    Call :meth:`record_refresh` after each successful fetch of collateral (and
    self-check of the quote), :meth:`record_failure` when one fails.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tcb_status = Gauge(
            "blindai_attestation_tcb_status",
            "1 for the platform's current TCB status (Intel's names), 0 otherwise",
            ["status"],
            registry=registry,
        )
        self.advisory = Gauge(
            "blindai_attestation_advisory",
            "1 for each security advisory ID listed for the platform's TCB",
            ["advisory_id"],
            registry=registry,
        )
        # Registered at the first refresh: until then they are absent, not 0
        # (which would read as "expired in 1970" to an alert).
        self._registry = registry
        self.collateral_expiry: Gauge | None = None
        self.last_refresh: Gauge | None = None
        self.failures = Counter(
            "blindai_attestation_refresh_failures_total",
            "failed refreshes of the attestation evidence, by error class",
            ["error"],
            registry=registry,
        )

    def record_refresh(
        self,
        *,
        tcb_status: str,
        advisory_ids: Iterable[str],
        collateral_expires: dt.datetime,
        refreshed_at: dt.datetime | None = None,
    ) -> None:
        """Publish the state after a successful refresh."""
        self.tcb_status.clear()
        self.tcb_status.labels(status=str(tcb_status)).set(1)
        self.advisory.clear()
        for advisory in advisory_ids:
            self.advisory.labels(advisory_id=advisory).set(1)
        if self.collateral_expiry is None or self.last_refresh is None:
            self.collateral_expiry = Gauge(
                "blindai_attestation_collateral_expiry_timestamp_seconds",
                "when the current collateral stops being valid (Unix time)",
                registry=self._registry,
            )
            self.last_refresh = Gauge(
                "blindai_attestation_last_refresh_timestamp_seconds",
                "last successful refresh of the attestation evidence (Unix time)",
                registry=self._registry,
            )
        self.collateral_expiry.set(collateral_expires.timestamp())
        when = refreshed_at or dt.datetime.now(dt.UTC)
        self.last_refresh.set(when.timestamp())

    def record_failure(self, error: BaseException | str) -> None:
        """Count a failed refresh by its error class (never its message)."""
        name = error if isinstance(error, str) else type(error).__name__
        self.failures.labels(error=name).inc()


class ServerMetrics:
    """The server's Prometheus metrics and their HTTP endpoint."""

    def __init__(self, mode: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "blindai_rpc_requests_total",
            "RPCs handled, by method and status code",
            ["service", "method", "code"],
            registry=r,
        )
        self.errors = Counter(
            "blindai_rpc_errors_total",
            "RPCs that did not succeed, by method and error class",
            ["method", "error"],
            registry=r,
        )
        self.latency = Histogram(
            "blindai_rpc_duration_seconds",
            "time spent handling an RPC",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_size = Histogram(
            "blindai_rpc_request_bytes",
            "serialised size of an RPC's request messages, summed over its stream",
            ["method"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.response_size = Histogram(
            "blindai_rpc_response_bytes",
            "serialised size of an RPC's reply",
            ["method"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        Gauge(
            "blindai_simulation_mode",
            "1 when the server runs in simulation mode (no enclave, no attestation)",
            registry=r,
        ).set(1 if mode == "simulation" else 0)
        self.attestation = AttestationGauges(r)
        self._http: Any = None

    def interceptor(self) -> grpc.ServerInterceptor:
        """A gRPC server interceptor recording every call into these metrics."""
        return MetricsInterceptor(self)

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port``; returns the bound port."""
        try:
            self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise StartupError(
                f"cannot serve metrics on {host}:{port}: {exc}"
            ) from None
        bound: int = self._http.server_port
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def record(
        self,
        full_method: str,
        code: grpc.StatusCode,
        error: str | None,
        seconds: float,
        request_bytes: int,
        response_bytes: int | None,
    ) -> None:
        """Record one finished RPC."""
        service, _, method = full_method.lstrip("/").rpartition("/")
        self.requests.labels(service=service, method=method, code=code.name).inc()
        self.latency.labels(method=method).observe(seconds)
        self.request_size.labels(method=method).observe(request_bytes)
        if response_bytes is not None:
            self.response_size.labels(method=method).observe(response_bytes)
        if error is not None:
            self.errors.labels(method=method, error=error).inc()


class MetricsInterceptor(grpc.ServerInterceptor):
    """Wraps unary and client-streaming handlers; others pass through."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.response_streaming:
            return handler
        method = handler_call_details.method
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap(method, handler.stream_unary, streaming=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(method, handler.unary_unary, streaming=False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(
        self, method: str, behavior: Callable[[Any, Any], Any], streaming: bool
    ) -> Callable[[Any, Any], Any]:
        def handle(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            counted = _Counted(request) if streaming else None
            error: str | None = None
            try:
                response = behavior(counted or request, context)
            except Exception as exc:
                # An abort sets the status first; anything else is a bug.
                code = _code(context) or grpc.StatusCode.UNKNOWN
                error = code.name if _code(context) else type(exc).__name__
                self._finish(method, code, error, started, request, counted, None)
                raise
            code = _code(context) or grpc.StatusCode.OK
            if code is not grpc.StatusCode.OK:
                error = code.name
            self._finish(method, code, error, started, request, counted, response)
            return response

        return handle

    def _finish(
        self,
        method: str,
        code: grpc.StatusCode,
        error: str | None,
        started: float,
        request: Any,
        counted: _Counted | None,
        response: Any,
    ) -> None:
        size = counted.bytes if counted is not None else _size(request)
        self._metrics.record(
            method,
            code,
            error,
            time.perf_counter() - started,
            size,
            None if response is None else _size(response),
        )


class _Counted:
    """A request stream that adds up its messages' serialised sizes."""

    def __init__(self, requests: Iterator[Any]) -> None:
        self._requests = requests
        self.bytes = 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        message = next(self._requests)
        self.bytes += _size(message)
        return message


def _size(message: Any) -> int:
    byte_size = getattr(message, "ByteSize", None)
    return int(byte_size()) if byte_size is not None else 0


def _code(context: Any) -> grpc.StatusCode | None:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else None


def attach_attestation_gauges(platform: Any, metrics: ServerMetrics | None) -> None:
    """Hand the gauges to a platform that reports its attestation state.

    A platform opts in with a ``set_attestation_gauges(gauges)`` method.
    """
    hook = getattr(platform, "set_attestation_gauges", None)
    if metrics is not None and hook is not None:
        hook(metrics.attestation)
