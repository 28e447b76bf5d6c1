"""Uploaded models on the server's side: refused when they name server files,
and never left behind in the model directory, whatever becomes of the upload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from robust_support import (
    assert_serves_reference,
    external_data_variants,
    model_requests,
    raw_stub,
    reference_model,
    refusal,
    sim_server,
    upload,
)

from blindai.pb import securedexchange_pb2 as pb

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def server(model_dir) -> Iterator:
    with sim_server(
        "--model-dir", str(model_dir), "--max-model-size", str(2 * MIB)
    ) as s:
        yield s


@pytest.fixture
def stub(server, model_dir) -> Iterator:
    with raw_stub(server) as stub:
        upload(stub, reference_model())
        yield stub
        assert_serves_reference(stub)
    assert_empty(model_dir)


def assert_empty(directory: Path, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while list(directory.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(directory.iterdir()) == []


VARIANTS = external_data_variants()


@pytest.mark.parametrize("model", VARIANTS.values(), ids=VARIANTS)
def test_model_naming_a_server_file(stub, model):
    code, details = refusal(upload, stub, model)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert "external data" in details


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""

    def varint(value: int) -> bytes:
        out = b""
        while value > 0x7F:
            out += bytes([value & 0x7F | 0x80])
            value >>= 7
        return out + bytes([value])

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested_model(depth: int) -> bytes:
    """ModelProto bytes of ``depth`` If nodes, each holding the next graph
    (written by hand: the protobuf library refuses to build such depth)."""
    graph = b""
    for _ in range(depth):
        attribute = _field(1, b"then_branch") + _field(6, graph) + b"\xa0\x01\x05"
        node = (
            _field(1, b"c") + _field(2, b"z") + _field(4, b"If") + _field(5, attribute)
        )
        graph = _field(1, node)
    return b"\x08\x08" + _field(7, graph)  # ir_version 8, graph


@pytest.mark.parametrize("depth", [70, 5000])
def test_subgraphs_nested_past_the_limit(stub, depth):
    code, details = refusal(upload, stub, nested_model(depth))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert "deeper" in details


@pytest.mark.parametrize("case", ["success", "not-onnx", "short", "long", "over-limit"])
def test_no_file_left_behind(stub, model_dir, case):
    model = reference_model()
    if case == "success":
        upload(stub, model)
    elif case == "not-onnx":
        refusal(upload, stub, b"\x08\x01" * 100)
    elif case == "short":
        refusal(upload, stub, model, length=len(model) + 100)
    elif case == "long":
        refusal(upload, stub, model, length=len(model) - 1, chunk=16)
    else:
        refusal(upload, stub, b"x" * (3 * MIB), length=MIB, chunk=MIB // 2)
    assert_empty(model_dir)


def test_no_file_left_by_a_cancelled_upload(stub, model_dir):
    release = threading.Event()

    def requests() -> Iterator[pb.SendModelRequest]:
        yield from model_requests(b"x" * 4096, length=MIB)
        release.wait(30)

    future = stub.SendModel.future(requests(), timeout=30)
    deadline = time.monotonic() + 5
    while not list(model_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(list(model_dir.iterdir())) == 1  # the upload is in its file
    future.cancel()
    release.set()
    assert_empty(model_dir)
