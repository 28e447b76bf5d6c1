"""Property-based tests of the parsers that face the outside: the CBOR input
decoder, the shape check, the quote parser, and random request streams sent
to a live server. Sized to run in well under a minute together.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cbor2
import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robust_support import (
    assert_serves_reference,
    raw_stub,
    reference_model,
    sim_server,
    upload,
)

from blindai.errors import AttestationError
from blindai.pb import securedexchange_pb2 as pb
from blindai.server.models import MAX_RANK, RequestError, resolve_shape
from blindai.tensors import InputDecodeError, ModelDatumType, decode_input

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "attestation"
QUICK = settings(max_examples=500, deadline=None)

finite = st.floats(allow_nan=False, allow_infinity=False)
int64s = st.integers(-(2**63), 2**63 - 1)


# --- the CBOR input decoder -------------------------------------------------------


@QUICK
@given(st.binary(max_size=200), st.sampled_from(list(ModelDatumType)))
def test_decoder_on_any_bytes_returns_an_array_or_refuses(raw, datum):
    try:
        array = decode_input(raw, datum)
    except InputDecodeError:
        return
    assert array.ndim == 1 and array.dtype == datum.numpy_dtype


@QUICK
@given(st.lists(st.one_of(finite, st.integers(-(2**53), 2**53)), max_size=50))
def test_decoder_reads_what_the_03_client_writes(values):
    array = decode_input(cbor2.dumps(values), ModelDatumType.F64)
    assert array.tolist() == [float(v) for v in values]


@QUICK
@given(st.lists(int64s, max_size=50))
def test_decoder_reads_integers_exactly(values):
    assert decode_input(cbor2.dumps(values), ModelDatumType.I64).tolist() == values


@QUICK
@given(st.lists(finite, min_size=1, max_size=20), st.data())
def test_decoder_on_mutated_encodings(values, data):
    raw = bytearray(cbor2.dumps(values))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        at = data.draw(st.integers(0, len(raw) - 1)) if raw else 0
        if kind == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif kind == "insert":
            raw.insert(at, data.draw(st.integers(0, 255)))
        elif raw:
            del raw[at]
    try:
        decode_input(bytes(raw), ModelDatumType.F32)
    except InputDecodeError:
        pass


@QUICK
@given(
    st.recursive(
        st.one_of(finite, st.integers(), st.text(max_size=3), st.none(), st.booleans()),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=2), inner, max_size=2)
        ),
        max_leaves=10,
    )
)
def test_decoder_refuses_anything_but_a_flat_list_of_numbers(value):
    flat = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    )
    try:
        decode_input(cbor2.dumps(value), ModelDatumType.F64)
    except InputDecodeError:
        assert not flat or any(isinstance(v, int) and abs(v) >= 2**64 for v in value)
    else:
        assert flat


# --- the shape check -----------------------------------------------------------------


dims = st.integers(-(2**31), 2**31 - 1)
model_dims = st.one_of(st.integers(-1, 2**31 - 1), st.text(max_size=3), st.none())


@QUICK
@given(
    st.lists(dims, max_size=20),
    st.lists(model_dims, max_size=20),
    st.integers(1, 2**40),
)
def test_shape_is_accepted_only_within_every_bound(declared, model_shape, limit):
    try:
        shape = resolve_shape(declared, model_shape, limit)
    except RequestError as err:
        assert err.code in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.OUT_OF_RANGE,
        )
        return
    assert len(shape) <= MAX_RANK and len(shape) == len(model_shape)
    assert all(d > 0 for d in shape) and math.prod(shape) <= limit
    if declared:
        assert list(shape) == declared


# --- the quote parser ---------------------------------------------------------------


def real_quotes() -> list[bytes]:
    if not FIXTURES.is_dir():
        return []
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*/quote.bin"))]


QUOTES = real_quotes()


def parse_quote(raw: bytes) -> None:
    from blindai.attestation import Quote

    try:
        Quote.from_bytes(raw)
    except AttestationError:
        pass


@QUICK
@given(st.binary(max_size=2000))
def test_quote_parser_on_any_bytes(raw):
    parse_quote(raw)


@pytest.mark.skipif(not QUOTES, reason="../shared/fixtures/attestation not found")
@QUICK
@given(st.data())
def test_quote_parser_on_mutated_real_quotes(data):
    raw = bytearray(data.draw(st.sampled_from(QUOTES)))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        kind = data.draw(st.sampled_from(["flip", "cut", "grow", "u32"]))
        if kind == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[at:]
            if not raw:
                raw.append(0)
        elif kind == "grow":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        else:  # a length field claiming much more than there is
            raw[at : at + 4] = data.draw(
                st.sampled_from(
                    [b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00"]
                )
            )
    parse_quote(bytes(raw))


# --- random request streams against a live server -------------------------------------


@pytest.fixture(scope="module")
def live_stub() -> Iterator:
    with (
        sim_server(
            "--max-model-size", str(1 << 20), "--max-input-size", str(1 << 16)
        ) as server,
        raw_stub(server) as stub,
    ):
        upload(stub, reference_model())
        yield stub
        upload(stub, reference_model())
        assert_serves_reference(stub)


#: Statuses a refusal may carry; UNKNOWN or INTERNAL would mean an unhandled error.
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
}
MODEL = reference_model()

model_chunks = st.one_of(
    st.binary(max_size=64), st.just(MODEL), st.just(MODEL[: len(MODEL) // 2])
)
send_requests = st.builds(
    pb.SendModelRequest,
    data=model_chunks,
    length=st.one_of(st.just(len(MODEL)), st.integers(0, 2**64 - 1)),
    input_fact=st.lists(dims, max_size=4),
    datum=st.integers(-2, 8),
    datum_output=st.integers(-2, 8),
    sign=st.booleans(),
)
inputs = st.one_of(
    st.binary(max_size=64),
    st.lists(finite, max_size=6).map(cbor2.dumps),
    st.just(cbor2.dumps([1.0, 2.0, 3.0, 4.0])),
)
run_requests = st.builds(pb.RunModelRequest, input=inputs, sign=st.booleans())


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(
            st.lists(send_requests, min_size=0, max_size=3).map(lambda r: ("send", r)),
            st.lists(run_requests, min_size=0, max_size=3).map(lambda r: ("run", r)),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_random_request_streams(live_stub, calls):
    for kind, requests in calls:
        method = live_stub.SendModel if kind == "send" else live_stub.RunModel
        try:
            method(iter(requests), timeout=30)
        except grpc.RpcError as err:
            assert err.code() in REFUSALS, (err.code(), err.details())
            assert err.details()
    # A random upload may have succeeded: put the reference model back, and
    # check that the server still serves it.
    upload(live_stub, MODEL)
    assert_serves_reference(live_stub)


# --- saved proofs --------------------------------------------------------------------


@QUICK
@given(st.binary(max_size=300), st.booleans())
def test_proof_loader_on_any_bytes(raw, run_proof):
    from blindai.errors import SignatureError
    from blindai.responses import RunModelResponse, UploadModelResponse

    response = RunModelResponse() if run_proof else UploadModelResponse()
    try:
        response.load_from_bytes(raw)
        response.validate(
            [1.0] if run_proof else b"\0" * 32,
            validate_quote=False,
            enclave_signing_key=b"\1" * 32,
            allow_simulation_mode=True,
            _warn=False,
        )
    except (SignatureError, AttestationError):
        pass
