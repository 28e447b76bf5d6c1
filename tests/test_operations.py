"""Operations: the gRPC health service and the Prometheus endpoint."""

from __future__ import annotations

import datetime as dt
import urllib.request
import warnings
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from models import affine_model
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import blindai
from blindai.server.launcher import LocalServer
from blindai.server.metrics import ServerMetrics

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: An input value that must never appear in the metrics.
MARKER = 8675.3095


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[LocalServer]:
    with LocalServer(["--simulation", "--metrics-port", "0"]) as server:
        yield server


def _health_channel(host_pem: bytes, port: int) -> grpc.Channel:
    options = [("grpc.ssl_target_name_override", "blindai-srv")]
    credentials = grpc.ssl_channel_credentials(host_pem)
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials, options)


def _scrape(server: LocalServer) -> str:
    url = f"http://127.0.0.1:{server.info['metrics_port']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        return response.read().decode()


def test_health_check_answers_serving(metrics_server):
    pem = metrics_server.host_certificate.read_bytes()
    with _health_channel(pem, metrics_server.untrusted_port) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "securedexchange.Exchange", "untrusted.Attestation"):
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=10
            )
            assert reply.status == SERVING, service


def test_metrics_count_calls_and_hold_no_content(metrics_server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blindai.SimulationModeWarning)
        client = blindai.connect("127.0.0.1", simulation=True, **metrics_server.ports)
    with client:
        upload = client.upload_model(affine_model(4, batch=1), shape=(1, 4))
        client.run_model([MARKER, 1.0, 2.0, 3.0], sign=True)
        with pytest.raises(ConnectionError):
            client.run_model([MARKER] * 5)
    text = _scrape(metrics_server)

    # Our client sends inputs this small through the unary RunModelUnary.
    exchange = 'service="securedexchange.Exchange"'
    run = 'method="RunModelUnary"'
    assert f'blindai_rpc_requests_total{{code="OK",{run},{exchange}}} 1.0' in text
    assert f'code="INVALID_ARGUMENT",{run},{exchange}}} 1.0' in text
    assert f'code="OK",method="SendModel",{exchange}}} 1.0' in text
    assert f'blindai_rpc_errors_total{{error="INVALID_ARGUMENT",{run}}} 1.0' in text
    assert f"blindai_rpc_duration_seconds_count{{{run}}} 2.0" in text
    assert 'blindai_rpc_request_bytes_count{method="SendModel"} 1.0' in text
    assert "blindai_simulation_mode 1.0" in text
    for secret in (
        str(MARKER),
        repr(MARKER),
        upload.model_hash.hex(),
        client.client_info.uid,
        "127.0.0.1",
    ):
        assert secret not in text


def test_health_goes_not_serving_at_shutdown(tmp_path):
    from blindai.server.app import start
    from blindai.server.config import ServerConfig

    config = ServerConfig(
        simulation=True,
        untrusted_port=0,
        attested_port=0,
        state_dir=tmp_path,
        grace_period=1,
    )
    running = start(config)
    pem = (tmp_path / "host_server.pem").read_bytes()
    channel = _health_channel(pem, running.untrusted_port)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        updates = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=20)
        assert next(updates).status == SERVING
        running.health.shutting_down()  # what stop() does first
        assert next(updates).status == NOT_SERVING
    finally:
        channel.close()
        running.stop(1)
    assert running.metrics is None


def test_attestation_gauges_a_platform_can_set():
    metrics = ServerMetrics("sgx")
    expires = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    metrics.attestation.record_refresh(
        tcb_status="SWHardeningNeeded",
        advisory_ids=["INTEL-SA-00615"],
        collateral_expires=expires,
        refreshed_at=expires - dt.timedelta(days=30),
    )
    metrics.attestation.record_refresh(
        tcb_status="UpToDate", advisory_ids=[], collateral_expires=expires
    )
    metrics.attestation.record_failure(TimeoutError("pccs.internal timed out"))
    text = generate_latest(metrics.registry).decode()
    assert 'blindai_attestation_tcb_status{status="UpToDate"} 1.0' in text
    assert "SWHardeningNeeded" not in text and "INTEL-SA-00615" not in text
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    expiry = samples["blindai_attestation_collateral_expiry_timestamp_seconds"]
    assert expiry == expires.timestamp()
    assert samples["blindai_attestation_last_refresh_timestamp_seconds"] > 1.7e9
    assert (
        'blindai_attestation_refresh_failures_total{error="TimeoutError"} 1.0' in text
    )
    assert "pccs.internal" not in text
    assert "blindai_simulation_mode 0.0" in text


def test_attestation_timestamps_are_absent_until_a_refresh():
    """A 0 would read as "expired in 1970": an alert on the expiry fired on
    every simulation server and on any platform yet to refresh."""
    metrics = ServerMetrics("simulation")
    text = generate_latest(metrics.registry).decode()
    for name in (
        "blindai_attestation_collateral_expiry_timestamp_seconds",
        "blindai_attestation_last_refresh_timestamp_seconds",
    ):
        assert name not in text
    metrics.attestation.record_refresh(
        tcb_status="UpToDate",
        advisory_ids=[],
        collateral_expires=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    text = generate_latest(metrics.registry).decode()
    assert "blindai_attestation_collateral_expiry_timestamp_seconds 1.8" in text


def test_metrics_port_is_checked():
    from blindai.server.config import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--simulation", "--metrics-port", "70000"])
    assert parse_args(["--simulation"]).metrics_port is None
