"""The unary run ("unary-run-v1"): ``RunModelUnary`` takes the whole input in
one ``RunModelRequest`` and answers exactly as the streamed ``RunModel`` does.

Our client uses it when the server advertises it and the input fits in
``UNARY_LIMIT`` bytes; published 0.3 clients keep streaming ``RunModel``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cbor2
import grpc
import numpy as np
import pytest
from models import affine_model
from onnx import TensorProto, helper, numpy_helper
from support import connect_sim, exchange_stub

from blindai import RunModelResponse
from blindai import client as client_module
from blindai.pb import securedexchange_pb2 as pb
from blindai.pb.securedexchange_pb2_grpc import ExchangeStub
from blindai.server.launcher import LocalServer

N = 6
#: The 0.3 client's chunk size.
LEGACY_CHUNK = 32 * 1024
#: The metadata by which a streamed run accepts replies over 4 MiB.
LARGE = (client_module.LARGE_REPLY_METADATA,)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(["--simulation", "--max-input-size", str(1024 * 1024)]) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    with connect_sim(server) as c:
        c.upload_model(affine_model(n=N, scale=3.0, bias=0.5), shape=(1, N))
        yield c


@pytest.fixture(scope="module")
def stub(server):
    stub, channel = exchange_stub(server)
    yield stub
    channel.close()


class RecordingStub:
    """Forwards to a real stub and records which methods were called."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.called: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.called.append(name)
        return getattr(self.real, name)


@pytest.fixture
def recorded(client):
    real = client._stub
    client._stub = RecordingStub(real)
    yield client._stub
    client._stub = real


def _run_fields(reply: Any) -> pb.RunModelPayload:
    payload = pb.Payload.FromString(reply.payload)
    return payload.run_model_payload


def _legacy_stream(data: bytes, sign: bool) -> Iterator[pb.RunModelRequest]:
    """Requests as the 0.3 client sends them: 32 KiB chunks, fields on each."""
    for start in range(0, len(data), LEGACY_CHUNK):
        yield pb.RunModelRequest(input=data[start : start + LEGACY_CHUNK], sign=sign)


def test_server_advertises_the_unary_run(client):
    assert client_module.UNARY_CAPABILITY in client.server_info.capabilities


@pytest.mark.parametrize("as_array", [False, True], ids=["list", "numpy"])
def test_small_input_goes_unary_and_its_proof_validates(client, recorded, as_array):
    x = np.linspace(-1, 1, N, dtype=np.float32).reshape(1, N)
    data = x if as_array else x.ravel().tolist()
    response = client.run_model(data, sign=True)
    assert recorded.called == ["RunModelUnary"]
    np.testing.assert_allclose(response.output, (x * 3 + 0.5).ravel(), rtol=1e-6)
    response.validate(
        data,
        enclave_signing_key=client.enclave_signing_key,
        allow_simulation_mode=True,
    )


def test_input_over_the_unary_limit_is_streamed(client, recorded, monkeypatch):
    monkeypatch.setattr(client_module, "UNARY_LIMIT", 8)
    response = client.run_model([1.0] * N, sign=True)
    assert recorded.called == ["RunModel"]
    assert response.output == [3.5] * N


def test_server_without_the_capability_gets_the_stream(client, recorded):
    saved = list(client.server_info.capabilities)
    del client.server_info.capabilities[:]
    try:
        client.run_model([1.0] * N)
    finally:
        client.server_info.capabilities.extend(saved)
    assert recorded.called == ["RunModel"]


def test_unary_and_streamed_answers_commit_to_the_same_things(client, stub):
    data = cbor2.dumps([0.25 * i for i in range(N)])
    unary = stub.RunModelUnary(pb.RunModelRequest(input=data, sign=True), timeout=30)
    streamed = stub.RunModel(_legacy_stream(data, sign=True), timeout=30)
    assert _run_fields(unary) == _run_fields(streamed)
    for reply in (unary, streamed):
        response = RunModelResponse()
        response.payload, response.signature = reply.payload, reply.signature
        response.validate(
            [0.25 * i for i in range(N)],
            enclave_signing_key=client.enclave_signing_key,
            allow_simulation_mode=True,
        )


@contextmanager
def wide_model(client: Any, count: int) -> Iterator[bytes]:
    """An affine model of ``count`` inputs for the block; yields an input."""
    client.upload_model(affine_model(n=count, scale=3.0, bias=0.5), shape=(1, count))
    try:
        yield cbor2.dumps([float(i) for i in range(count)])
    finally:
        client.upload_model(affine_model(n=N, scale=3.0, bias=0.5), shape=(1, N))


def test_a_legacy_stream_of_many_chunks_still_runs(client, stub):
    # 10,000 doubles are 90 KB of CBOR: three 0.3-sized chunks.
    with wide_model(client, 10_000) as data:
        reply = stub.RunModel(_legacy_stream(data, sign=False), timeout=30)
    assert cbor2.loads(_run_fields(reply).output)[:2] == [0.5, 3.5]


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.RunModelRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.RunModelRequest(input=cbor2.dumps([1.0] * (N + 1))),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.RunModelRequest(input=b"\x00" * (1024 * 1024 + 1)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
        (
            pb.RunModelRequest(input=b"x", tensor_data=b"\x00" * 4),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
    ids=["empty", "wrong-count", "over-input-limit", "tensor-bytes-without-tensor"],
)
def test_unary_refusals_match_the_stream(client, stub, request_, code):
    for call in (
        lambda: stub.RunModelUnary(request_, timeout=30),
        lambda: stub.RunModel(iter([request_]), timeout=30),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == code


def tile_model(n: int, repeats: int) -> bytes:
    """y = x repeated ``repeats`` times along its second axis ([1, n] floats)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n * repeats])
    times = numpy_helper.from_array(np.array([1, repeats], dtype=np.int64), "r")
    node = helper.make_node("Tile", ["x", "r"], ["y"])
    graph = helper.make_graph([node], "tile", [x], [y], [times])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_only_streamed_runs_keep_the_legacy_reply_limit(server):
    # 500,000 doubles of output: 4.5 MB of CBOR, over a 0.3 client's 4 MiB.
    with connect_sim(server) as c:
        c.upload_model(tile_model(1000, 500), shape=(1, 1000))
        big = ExchangeStub(c._channel)  # receives replies of any size
        data = cbor2.dumps([1.0] * 1000)
        with pytest.raises(grpc.RpcError) as info:
            big.RunModel(_legacy_stream(data, sign=False), timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "0.3 client" in info.value.details()
        request = pb.RunModelRequest(input=data)
        for reply in (
            big.RunModel(iter([request]), timeout=30, metadata=LARGE),
            big.RunModelUnary(request, timeout=30),
        ):
            assert len(_run_fields(reply).output) > 4 * 1024 * 1024
        assert len(c.run_model([1.0] * 1000).output) == 500_000


def test_replies_are_stamped_with_the_current_time(client):
    """The payload header's ``issued_at`` is the server's clock at the reply,
    to the second or better (seconds and nanoseconds both set)."""
    import datetime as dt

    client.upload_model(affine_model(n=N), shape=(1, N))
    before = dt.datetime.now(dt.UTC)
    response = client.run_model([0.5] * N)
    after = dt.datetime.now(dt.UTC)
    stamp = pb.Payload.FromString(response.payload).header.issued_at
    assert 0 <= stamp.nanos < 1_000_000_000
    issued = response.issued_at
    assert issued is not None
    slack = dt.timedelta(seconds=1)
    assert before - slack <= issued <= after + slack
