"""The client's side of failures: typed exceptions, deadlines, bad replies.

Every failed call raises a :class:`blindai.errors.CallError` subclass, which is
also the built-in :class:`ConnectionError` that 0.3 code catches, and names
whose fault it is; every call has a deadline; replies that do not parse are
refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import grpc
import pytest
from robust_support import connect, reference_model, sim_server, slow_model

import blindai
from blindai import client as client_module
from blindai.errors import (
    BlindAiError,
    CallError,
    DeadlineExceededError,
    RequestRejectedError,
    ResourceLimitError,
    ServerFailureError,
    ServerUnavailableError,
    SignatureError,
)
from blindai.pb import securedexchange_pb2 as pb


@pytest.fixture(scope="module")
def server() -> Iterator:
    with sim_server("--max-input-size", "4096", "--run-timeout", "1") as s:
        yield s


@pytest.fixture
def client(server) -> Iterator:
    with connect(server) as c:
        yield c


def check(err: CallError, kind: type, code: grpc.StatusCode, fault: str) -> None:
    assert isinstance(err, kind) and type(err).__name__ == kind.__name__
    assert isinstance(err, ConnectionError) and isinstance(err, BlindAiError)
    assert err.code == code and err.details and err.fault == fault
    assert code.name in str(err)


def test_run_before_upload_is_a_rejected_request():
    with sim_server() as server, connect(server) as c:
        with pytest.raises(ConnectionError) as info:  # how 0.3 code catches it
            c.run_model([1.0, 2.0, 3.0, 4.0])
    check(
        info.value, RequestRejectedError, grpc.StatusCode.FAILED_PRECONDITION, "input"
    )
    assert "no model" in info.value.details


def test_refused_model_and_input(client):
    with pytest.raises(RequestRejectedError) as info:
        client.upload_model(b"not a model")
    check(info.value, RequestRejectedError, grpc.StatusCode.INVALID_ARGUMENT, "input")
    client.upload_model(reference_model(), shape=(1, 4))
    with pytest.raises(RequestRejectedError) as info:
        client.run_model([1.0, 2.0, 3.0])
    assert "3 elements" in info.value.details


def test_input_over_the_limit(client):
    client.upload_model(reference_model(), shape=(1, 4))
    with pytest.raises(ResourceLimitError) as info:
        client.run_model([1.5] * 1000)
    check(info.value, ResourceLimitError, grpc.StatusCode.RESOURCE_EXHAUSTED, "input")


def test_server_run_limit(client):
    client.upload_model(slow_model(), shape=(1, 1))
    with pytest.raises(DeadlineExceededError) as info:
        client.run_model([1.5e8])
    check(
        info.value, DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED, "server"
    )


def test_client_deadline(client):
    client.upload_model(slow_model(), shape=(1, 1))
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        client.run_model([1.5e8], timeout=0.3)
    assert time.monotonic() - started < 0.9  # the client's limit, not the server's
    assert client.run_model([3.0]).output == [3.0]


def test_server_gone():
    with sim_server() as server:
        c = connect(server)
        c.upload_model(reference_model(), shape=(1, 4))
        server.stop()
        with pytest.raises(ServerUnavailableError) as info:
            c.run_model([1.0, 2.0, 3.0, 4.0], timeout=5)
        c.close_connection()
    check(info.value, ServerUnavailableError, grpc.StatusCode.UNAVAILABLE, "network")


def test_nothing_listening():
    with sim_server() as server:
        ports = server.ports
    with (
        pytest.raises(ServerUnavailableError),
        pytest.warns(blindai.SimulationModeWarning),
    ):
        blindai.BlindAiClient().connect_server(
            "127.0.0.1", simulation=True, certificate=None, timeout=2, **ports
        )


def test_reply_over_the_client_limit(server, monkeypatch):
    monkeypatch.setattr(client_module, "MAX_REPLY", 16)
    with connect(server) as c:
        with pytest.raises(CallError) as info:
            c.upload_model(reference_model(), shape=(1, 4))
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The server sent too much: its fault, not the request's.
    assert isinstance(info.value, ServerFailureError)
    assert info.value.fault == "server" and "larger than" in str(info.value)


# --- with a stand-in stub: defaults and malformed replies ---------------------------


class RecordingStub:
    """Answers every call with ``reply`` and records the deadline it was given."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.timeouts: list[float | None] = []

    def _answer(
        self, requests: Iterator, timeout: float | None = None, metadata: object = None
    ) -> object:
        list(requests)
        self.timeouts.append(timeout)
        return self.reply

    SendModel = RunModel = _answer


def fake_client(reply: object) -> tuple[blindai.BlindAiClient, RecordingStub]:
    c = blindai.BlindAiClient()
    stub = RecordingStub(reply)
    c._stub = stub  # type: ignore[assignment]
    return c, stub


def upload_reply(model_hash: bytes) -> pb.SendModelReply:
    payload = pb.Payload(send_model_payload=pb.SendModelPayload(model_hash=model_hash))
    return pb.SendModelReply(payload=payload.SerializeToString())


def test_every_call_has_a_deadline_by_default():
    import hashlib

    model = b"m" * (3 * 1024 * 1024)
    c, stub = fake_client(upload_reply(hashlib.sha256(model).digest()))
    c.upload_model(model)
    assert stub.timeouts == [pytest.approx(client_module.UPLOAD_TIMEOUT + 3)]
    output = pb.RunModelPayload(output=b"\x81\x01")
    c, stub = fake_client(
        SimpleNamespace(
            payload=pb.Payload(run_model_payload=output).SerializeToString(),
            signature=b"",
        )
    )
    c.run_model([1])
    assert stub.timeouts == [client_module.RUN_TIMEOUT]


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x05abc"])
def test_upload_reply_that_does_not_parse(payload):
    c, _ = fake_client(pb.SendModelReply(payload=payload))
    with pytest.raises(SignatureError):
        c.upload_model(b"model")


def test_upload_reply_naming_another_model():
    c, _ = fake_client(upload_reply(b"\x01" * 32))
    with pytest.raises(SignatureError, match="reports model 0101"):
        c.upload_model(b"model")


@pytest.mark.parametrize("output", [b"", b"\xa1\x01\x02", b"\x9f", b"\x63abc"])
def test_run_reply_whose_output_is_not_a_list(output):
    payload = pb.Payload(run_model_payload=pb.RunModelPayload(output=output))
    c, _ = fake_client(pb.RunModelReply(payload=payload.SerializeToString()))
    with pytest.raises(SignatureError):
        c.run_model([1.0])


def test_run_reply_that_does_not_parse():
    c, _ = fake_client(pb.RunModelReply(payload=b"\xff\xff"))
    with pytest.raises(SignatureError):
        c.run_model([1.0])
