"""Hostile and broken model uploads, sent to a real server process.

Each refusal must carry a status that names the problem (never UNKNOWN), a
message saying what was expected and what was found, and leave the model in
place serving as before.
"""

from __future__ import annotations

from collections.abc import Iterator

import cbor2
import grpc
import pytest
from robust_support import (
    assert_serves_reference,
    external_data_model,
    gather_model,
    identity_model,
    model_requests,
    output_of,
    raw_stub,
    reference_model,
    refusal,
    run,
    runtime_failure_model,
    sim_server,
    slow_model,
    upload,
)

from blindai.pb import securedexchange_pb2 as pb
from blindai.pb.securedexchange_pb2_grpc import ExchangeStub

MIB = 1024 * 1024
#: The limit the module's server runs with (small, to test around it cheaply).
LIMIT = 1 * MIB
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture(scope="module")
def server() -> Iterator:
    with sim_server("--max-model-size", str(LIMIT), "--run-timeout", "1") as s:
        yield s


@pytest.fixture
def stub(server) -> Iterator[ExchangeStub]:
    """A stub to a server serving the reference model; checks it still does."""
    with raw_stub(server) as stub:
        upload(stub, reference_model())
        yield stub
        assert_serves_reference(stub)


def send(stub: ExchangeStub, requests: list[pb.SendModelRequest]) -> None:
    stub.SendModel(iter(requests), timeout=30)


# --- what the bytes are --------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"\xff" * 100, b"garbage", b"\x08\x01" * 40],
    ids=["ff", "text", "protobuf-not-onnx"],
)
def test_bytes_that_are_not_onnx(stub, data):
    code, details = refusal(upload, stub, data)
    assert code == INVALID
    assert "ONNX" in details or "could not be loaded" in details


def test_model_that_onnxruntime_cannot_load(stub):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("NoSuchOperator", ["x"], ["y"])
    graph = helper.make_graph([node], "unknown-op", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    code, details = refusal(upload, stub, model.SerializeToString())
    assert code == INVALID and "could not be loaded" in details
    assert "NoSuchOperator" in details  # onnxruntime's reason reaches the client
    # ...but not where the server keeps its uploads.
    assert "/dev/shm" not in details and "blindai-upload" not in details


def test_empty_model_declared_empty(stub):
    code, details = refusal(upload, stub, b"")
    assert code == INVALID and "length of 0" in details


def test_empty_stream(stub):
    code, details = refusal(send, stub, [])
    assert code == INVALID and "empty" in details


def test_model_naming_a_file_on_the_server(stub):
    code, details = refusal(upload, stub, external_data_model())
    assert code == INVALID and "external data" in details


# --- declared length against what arrives ----------------------------------------


def test_declared_length_larger_than_what_arrives(stub):
    model = reference_model()
    code, details = refusal(upload, stub, model, length=len(model) + 1)
    assert code == INVALID
    assert f"after {len(model)} of the declared {len(model) + 1}" in details


def test_declared_length_smaller_than_what_arrives(stub):
    model = reference_model()
    code, details = refusal(upload, stub, model, length=len(model) - 1, chunk=7)
    assert code == INVALID and f"declared length of {len(model) - 1}" in details


# --- size limits come first ----------------------------------------------------------


def test_declared_length_at_the_limit_is_not_a_size_refusal(stub):
    code, details = refusal(upload, stub, b"x" * 10, length=LIMIT)
    assert code == INVALID and "ended after 10" in details


def test_declared_length_one_past_the_limit(stub):
    code, details = refusal(upload, stub, b"x" * 10, length=LIMIT + 1)
    assert code == EXHAUSTED
    assert str(LIMIT + 1) in details and str(LIMIT) in details


def test_declared_length_far_past_the_limit_reserves_nothing(stub):
    # 2**64 - 1 bytes could never be reserved: refused before any allocation.
    code, _ = refusal(upload, stub, b"x" * 10, length=2**64 - 1)
    assert code == EXHAUSTED


def test_running_total_past_the_limit_and_the_declared_length(stub):
    requests = model_requests(b"x" * (LIMIT + 1), length=LIMIT, chunk=256 * 1024)
    code, details = refusal(send, stub, requests)
    assert code == EXHAUSTED and str(LIMIT) in details


@pytest.mark.parametrize("declared", [0, 100])
def test_first_message_past_the_limit_with_a_wrong_declared_length(stub, declared):
    # Two things are wrong and both are seen on the first message; the size
    # limit is the one reported.
    requests = model_requests(b"x" * (LIMIT + 1), length=declared, chunk=2 * LIMIT)
    code, details = refusal(send, stub, requests)
    assert code == EXHAUSTED and str(LIMIT) in details


def test_over_the_limit_and_unknown_types(stub):
    requests = model_requests(b"x" * 10, length=LIMIT + 1, datum=9)
    code, _ = refusal(send, stub, requests)
    assert code == EXHAUSTED


def test_one_message_past_the_transport_limit(stub):
    requests = model_requests(b"x" * (9 * MIB), chunk=9 * MIB)
    code, _ = refusal(send, stub, requests)
    assert code == EXHAUSTED


# --- element types and shapes ----------------------------------------------------


@pytest.mark.parametrize("field", ["datum", "datum_output"])
@pytest.mark.parametrize("value", [6, 9, 2**31 - 1, -1])
def test_unknown_element_type(stub, field, value):
    # proto3 enums are open: any int32 arrives as it was sent.
    code, details = refusal(upload, stub, reference_model(), **{field: value})
    assert code == INVALID
    assert f"element type {value}" in details


@pytest.mark.parametrize("shape", [(1, -4), (0, 4), (-1, 4), (1, 0), (-(2**31), 4)])
def test_dimension_that_is_not_positive(stub, shape):
    code, details = refusal(upload, stub, reference_model(), shape=shape)
    assert code == INVALID and "not positive" in details


def test_too_many_dimensions(stub):
    code, details = refusal(upload, stub, identity_model(["d"] * 17), shape=(1,) * 17)
    assert code == INVALID and "17 dimensions" in details


@pytest.mark.parametrize("shape", [(2**31 - 1,) * 2, (2**31 - 1,) * 16, (65536, 65536)])
def test_element_count_no_input_could_reach(stub, shape):
    # The product overflows 64 bits for the 16-dimension shape; no input within
    # the server's input limit could ever hold that many elements.
    model = identity_model([f"d{i}" for i in range(len(shape))])
    code, details = refusal(upload, stub, model, shape=shape)
    assert code == grpc.StatusCode.OUT_OF_RANGE
    assert "elements" in details


# --- models that load, then fail ----------------------------------------------------


@pytest.fixture
def own_stub() -> Iterator[ExchangeStub]:
    """A server of the test's own, with a run time limit of 1 s."""
    with sim_server("--run-timeout", "1") as server, raw_stub(server) as stub:
        yield stub


def test_model_that_fails_at_run_time(own_stub):
    upload(own_stub, runtime_failure_model())
    code, details = refusal(run, own_stub, cbor2.dumps([1.0, 2.0, 3.0, 4.0]))
    assert code == INVALID and "failed on this input" in details
    upload(own_stub, reference_model())
    assert_serves_reference(own_stub)


def test_model_failing_on_a_hostile_index(own_stub):
    upload(own_stub, gather_model(), shape=(1, 1), datum=pb.I64)
    assert output_of(run(own_stub, cbor2.dumps([3]))) == [3.0]
    code, _ = refusal(run, own_stub, cbor2.dumps([10**6]))
    assert code == INVALID
    assert output_of(run(own_stub, cbor2.dumps([2]))) == [2.0]


def test_run_over_the_time_limit_is_stopped(own_stub):
    import time

    upload(own_stub, slow_model(), shape=(1, 1))
    assert output_of(run(own_stub, cbor2.dumps([10.0]))) == [10.0]
    started = time.monotonic()
    # About an hour of work if nothing stopped it.
    code, details = refusal(run, own_stub, cbor2.dumps([1.5e8]))
    elapsed = time.monotonic() - started
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "1 s" in details
    assert 0.9 < elapsed < 5
    # The worker is free again: a short run answers at once.
    assert output_of(run(own_stub, cbor2.dumps([5.0]))) == [5.0]
