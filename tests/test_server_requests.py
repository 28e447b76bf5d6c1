"""The server's answers to requests it must refuse, through a real process."""

from __future__ import annotations

import cbor2
import grpc
import pytest
from models import affine_model, cast_model, identity_model, two_input_model
from onnx import TensorProto
from support import attestation_stub, exchange_stub, run, upload

from blindai.pb import securedexchange_pb2 as pb
from blindai.pb import untrusted_pb2


@pytest.fixture
def stub(fresh_sim_server):
    stub, channel = exchange_stub(fresh_sim_server)
    yield stub
    channel.close()


def status_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


def test_run_before_upload_is_failed_precondition(stub):
    code, details = status_of(run, stub, cbor2.dumps([1.0, 2.0, 3.0, 4.0]))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "no model" in details


def test_wrong_element_count(stub):
    upload(stub, affine_model())
    code, details = status_of(run, stub, cbor2.dumps([1.0, 2.0, 3.0]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "3 elements" in details and "[1, 4]" in details


def test_output_type_mismatch_names_both_types(stub):
    code, details = status_of(upload, stub, affine_model(), datum_output=pb.I64)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "F32" in details and "I64" in details


def test_input_type_mismatch_names_both_types(stub):
    model = cast_model(4, TensorProto.INT64, TensorProto.FLOAT)
    code, details = status_of(upload, stub, model, datum=pb.F32)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "I64" in details and "F32" in details


def test_integer_model(stub):
    upload(
        stub,
        cast_model(4, TensorProto.INT32, TensorProto.INT64),
        datum=pb.I32,
        datum_output=pb.I64,
    )
    reply = run(stub, cbor2.dumps([1, -2, 3, 2**31 - 1]))
    payload = pb.Payload.FromString(reply.payload).run_model_payload
    assert cbor2.loads(payload.output) == [1, -2, 3, 2**31 - 1]
    code, details = status_of(run, stub, cbor2.dumps([1, 2, 3, 2**31]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "I32" in details
    code, details = status_of(run, stub, cbor2.dumps([1, 2, 3, 4.5]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "float" in details


def test_symbolic_shape_needs_a_shape(stub):
    model = identity_model(["N", "M"])
    code, details = status_of(upload, stub, model, shape=())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "send the input shape" in details
    upload(stub, model, shape=(2, 3))


def test_shape_that_contradicts_the_model(stub):
    code, details = status_of(upload, stub, affine_model(n=4), shape=(1, 5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "[1, 5]" in details


def test_two_input_model_is_refused(stub):
    code, details = status_of(upload, stub, two_input_model(), shape=(1, 2))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "exactly one input" in details


def test_bytes_that_are_not_onnx(stub):
    code, details = status_of(upload, stub, b"\xff" * 100)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not an ONNX model" in details or "could not be loaded" in details


def test_declared_length_larger_than_sent(stub):
    model = affine_model()
    code, details = status_of(upload, stub, model, length=len(model) + 10)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "ended after" in details


def test_declared_length_smaller_than_sent(stub):
    model = affine_model()
    code, details = status_of(upload, stub, model, length=len(model) - 10, chunk=16)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "more model bytes" in details


def test_model_over_the_limit_is_resource_exhausted(stub):
    code, details = status_of(upload, stub, b"x" * 10, length=600 * 1024 * 1024)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most" in details


def test_input_that_is_not_a_list(stub):
    upload(stub, affine_model())
    for raw in (
        cbor2.dumps({"a": 1}),
        cbor2.dumps("text"),
        b"\xff\xff",
        cbor2.dumps([1.0, "x", 2.0, 3.0]),
        cbor2.dumps([True] * 4),
    ):
        code, _ = status_of(run, stub, raw)
        assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_failed_upload_keeps_the_model(stub):
    upload(stub, affine_model())
    status_of(upload, stub, b"garbage")
    reply = run(stub, cbor2.dumps([1.0, 2.0, 3.0, 4.0]))
    output = pb.Payload.FromString(reply.payload).run_model_payload.output
    assert cbor2.loads(output) == [3.0, 5.0, 7.0, 9.0]


def test_server_info_and_simulation_quote(fresh_sim_server):
    stub, channel = attestation_stub(fresh_sim_server)
    with channel:
        info = stub.GetServerInfo(untrusted_pb2.GetServerInfoRequest(), timeout=10)
        assert info.version == "0.3.0" and info.mode == "simulation"
        assert info.product_version
        code, details = status_of(
            stub.GetSgxQuoteWithCollateral,
            untrusted_pb2.GetSgxQuoteWithCollateralRequest(),
            timeout=10,
        )
        assert code == grpc.StatusCode.UNIMPLEMENTED
        assert "simulation" in details
