"""Hostile and malformed inputs, sent to a real server process.

An input must be exactly one definite-length CBOR array of numbers: the bytes the
0.3 client's ``cbor2.dumps`` produces for a flat list. Anything else is refused
with INVALID_ARGUMENT (or RESOURCE_EXHAUSTED past the size limit), and the model
in place keeps serving.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import cbor2
import grpc
import pytest
from robust_support import (
    REFERENCE_INPUT,
    assert_serves_reference,
    output_of,
    raw_stub,
    reference_model,
    refusal,
    run,
    sim_server,
    upload,
)

from blindai.pb import securedexchange_pb2 as pb
from blindai.pb.securedexchange_pb2_grpc import ExchangeStub

LIMIT = 64 * 1024
INVALID = grpc.StatusCode.INVALID_ARGUMENT
GOOD = cbor2.dumps(REFERENCE_INPUT)
F1 = b"\xfb" + struct.pack(">d", 1.0)  # one 8-byte float, as cbor2 writes it


@pytest.fixture(scope="module")
def server() -> Iterator:
    with sim_server("--max-input-size", str(LIMIT)) as s:
        yield s


@pytest.fixture
def stub(server) -> Iterator[ExchangeStub]:
    with raw_stub(server) as stub:
        upload(stub, reference_model())
        yield stub
        assert_serves_reference(stub)


def test_run_before_any_upload():
    with sim_server() as server, raw_stub(server) as stub:
        code, details = refusal(run, stub, GOOD)
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "no model" in details
        upload(stub, reference_model())
        assert_serves_reference(stub)


@pytest.mark.parametrize("values", [[1.0] * 3, [1.0] * 5, []])
def test_wrong_element_count(stub, values):
    code, details = refusal(run, stub, cbor2.dumps(values))
    assert code == INVALID
    assert f"{len(values)} elements" in details and "[1, 4]" in details


def test_empty_input(stub):
    code, details = refusal(run, stub, b"")
    assert code == INVALID and "empty" in details


def test_empty_stream(stub):
    code, details = refusal(stub.RunModel, iter([]), timeout=30)
    assert code == INVALID and "empty" in details


# --- not CBOR, or CBOR of something else ------------------------------------------


NOT_ONE_FLAT_LIST = {
    "not-cbor": b"\xff\xfe\xfd",
    "truncated": GOOD[:-3],
    "map": cbor2.dumps({"a": 1.0}),
    "string": cbor2.dumps("1.0 2.0 3.0 4.0"),
    "bytes": cbor2.dumps(b"\x00" * 16),
    "number": cbor2.dumps(1.0),
    "nested": cbor2.dumps([[1.0, 2.0], [3.0, 4.0]]),
    "string-element": cbor2.dumps([1.0, "2", 3.0, 4.0]),
    "booleans": cbor2.dumps([True, False, True, False]),
    "null-element": cbor2.dumps([1.0, None, 3.0, 4.0]),
    "undefined-element": b"\x84" + F1 + b"\xf7" + F1 + F1,
    "simple-value": b"\x84" + F1 + b"\xf0" + F1 + F1,
    "tagged-list": b"\xd8\x1c" + GOOD,  # tag 28 (shareable) around the list
    "tagged-element": b"\x84\xc1" + F1 + F1 + F1 + F1,  # tag 1 (epoch time)
    "bignum-element": b"\x84\xc2\x41\x01" + F1 + F1 + F1,  # tag 2 (bignum 1)
    "indefinite-list": b"\x9f" + F1 * 4 + b"\xff",
    "trailing-byte": GOOD + b"\x00",
    "trailing-list": GOOD + GOOD,
    "break-without-start": b"\x84" + F1 * 3 + b"\xff",
}


@pytest.mark.parametrize("raw", NOT_ONE_FLAT_LIST.values(), ids=NOT_ONE_FLAT_LIST)
def test_not_one_flat_list_of_numbers(stub, raw):
    code, details = refusal(run, stub, raw)
    assert code == INVALID, details
    assert "CBOR" in details or "element" in details or "number" in details


def test_smaller_float_widths_are_numbers(stub):
    # Other encoders write floats in their shortest exact width; they are numbers.
    half_one, single_two = b"\xf9\x3c\x00", b"\xfa" + struct.pack(">f", 2.0)
    raw = b"\x84" + half_one + single_two + F1 + b"\x01"
    assert output_of(run(stub, raw)) == [3.0, 5.0, 3.0, 3.0]


# --- headers that lie, deep nesting, size -------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"\x9a\xff\xff\xff\xff",
        b"\x9b" + b"\xff" * 8,
        b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00",
    ],
)
def test_header_claiming_a_huge_array(stub, header):
    code, details = refusal(run, stub, header + F1 * 4)
    assert code == INVALID, details


def test_deep_nesting(stub):
    code, _ = refusal(run, stub, b"\x81" * 50_000 + b"\x01")
    assert code == INVALID


def test_deep_indefinite_nesting(stub):
    code, _ = refusal(run, stub, b"\x9f" * 50_000)
    assert code == INVALID


def test_input_at_the_size_limit_is_not_a_size_refusal(stub):
    raw = b"\x84" + F1 * 4
    raw = raw + b"\x00" * (LIMIT - len(raw))  # trailing bytes: wrong, not too big
    code, _ = refusal(run, stub, raw)
    assert code == INVALID


def test_input_one_byte_past_the_size_limit(stub):
    raw = b"\x84" + F1 * 4
    raw = raw + b"\x00" * (LIMIT + 1 - len(raw))
    code, details = refusal(run, stub, raw, chunk=4096)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and str(LIMIT) in details


def test_input_far_past_the_size_limit_in_one_message(stub):
    code, _ = refusal(run, stub, b"\x9b" + b"\x00" * (2 * 1024 * 1024))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_sign_flag_on_a_refused_input_changes_nothing(stub):
    requests = [pb.RunModelRequest(input=GOOD + b"\x00", sign=True)]
    code, _ = refusal(stub.RunModel, iter(requests), timeout=30)
    assert code == INVALID


# --- numbers that do not fit the model's float type ----------------------------------


@pytest.mark.parametrize("value", [1e39, -1e39, 2.0**128, 1.7976931348623157e308])
def test_double_beyond_f32_range_is_refused_not_made_infinite(stub, value):
    code, details = refusal(run, stub, cbor2.dumps([value, 1.0, 2.0, 3.0]))
    assert code == INVALID and "F32" in details and "element 0" in details


def test_explicit_infinities_and_nan_are_numbers(stub):
    reply = run(stub, cbor2.dumps([float("inf"), float("-inf"), float("nan"), 3.4e38]))
    out = output_of(reply)
    assert out[0] == float("inf") and out[1] == float("-inf") and out[2] != out[2]


def test_f64_tensor_beyond_f32_range_is_refused(stub):
    import numpy as np

    values = np.array([1e39, 1.0, 2.0, 3.0], dtype="<f8")
    request = pb.RunModelRequest(
        tensor=pb.TensorInfo(datum=pb.F64, shape=[1, 4]),
        tensor_data=values.tobytes(),
    )
    code, details = refusal(stub.RunModel, iter([request]), timeout=30)
    assert code == INVALID and "F32" in details


# --- raw tensor inputs ("tensor-v1") -------------------------------------------------


def tensor_requests(
    shape: list[int], data: bytes, datum: int = pb.F32, chunk: int = 4096
) -> list[pb.RunModelRequest]:
    info = pb.TensorInfo(datum=datum, shape=shape)
    pieces = [data[i : i + chunk] for i in range(0, max(len(data), 1), chunk)]
    return [pb.RunModelRequest(tensor=info, tensor_data=p) for p in pieces]


def send_tensor(stub, requests) -> pb.RunModelReply:
    return stub.RunModel(iter(requests), timeout=30)


FOUR_F32 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)


def test_tensor_input_is_served(stub):
    reply = send_tensor(stub, tensor_requests([1, 4], FOUR_F32))
    assert output_of(reply) == [3.0, 5.0, 7.0, 9.0]


BAD_TENSORS = {
    "unknown-type": ([1, 4], FOUR_F32, 9, "element type 9"),
    "negative-dimension": ([1, -4], FOUR_F32, pb.F32, "negative"),
    "too-many-dimensions": ([1] * 17, FOUR_F32, pb.F32, "17 dimensions"),
    "short-data": ([1, 4], FOUR_F32[:-1], pb.F32, "ended after 15 of its 16"),
    "long-data": ([1, 4], FOUR_F32 + b"\0", pb.F32, "more tensor bytes"),
    "empty-shape-of-zero": ([0, 4], b"", pb.F32, "0 elements"),
}


@pytest.mark.parametrize("case", BAD_TENSORS.values(), ids=BAD_TENSORS)
def test_malformed_tensor(stub, case):
    shape, data, datum, expected = case
    code, details = refusal(send_tensor, stub, tensor_requests(shape, data, datum))
    assert code == INVALID and expected in details, details


def test_tensor_with_cbor_bytes_too(stub):
    requests = tensor_requests([1, 4], FOUR_F32)
    requests[0].input = GOOD
    code, details = refusal(send_tensor, stub, requests)
    assert code == INVALID and "CBOR" in details


@pytest.mark.parametrize(
    "shape", [[2**62, 2**62], [2**63 - 1], [LIMIT // 4 + 1], [2**31] * 16]
)
def test_tensor_declaring_more_than_the_limit(stub, shape):
    code, details = refusal(send_tensor, stub, tensor_requests(shape, FOUR_F32))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and str(LIMIT) in details


def test_tensor_data_past_the_limit_with_a_small_declared_shape(stub):
    # Wrong in two ways (more bytes than declared, and past the limit): the
    # size limit is the one reported.
    requests = tensor_requests([1, 4], b"\0" * (LIMIT + 1), chunk=LIMIT + 1)
    code, _ = refusal(send_tensor, stub, requests)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_tensor_data_past_the_limit_without_a_description(stub):
    requests = [pb.RunModelRequest(input=GOOD, tensor_data=b"\0" * (LIMIT + 1))]
    code, _ = refusal(send_tensor, stub, requests)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
