"""The raw tensor input ("tensor-v1") end to end, and what proofs commit to.

Our client sends numpy arrays as raw little-endian bytes when the server
advertises "tensor-v1"; the signed payload then commits to the element type,
the shape and the SHA-256 of those bytes instead of the CBOR hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from models import affine_model, identity_model
from onnx import TensorProto
from support import connect_sim, exchange_stub

from blindai import ModelDatumType, RunModelResponse, SignatureError
from blindai.pb import securedexchange_pb2 as pb
from blindai.server.launcher import LocalServer
from blindai.tensors import encode_array

F32, F64, I32, I64 = (
    ModelDatumType.F32,
    ModelDatumType.F64,
    ModelDatumType.I32,
    ModelDatumType.I64,
)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(
        ["--simulation", "--max-input-size", str(64 * 1024 * 1024)]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server):
    stub, channel = exchange_stub(server)
    yield stub
    channel.close()


def _upload(client, model: bytes, shape, dtype=F32, dtype_out=F32):
    client.upload_model(model, shape=shape, dtype=dtype, dtype_out=dtype_out)


def _tensor_requests(
    raw: bytes, datum: ModelDatumType, shape, chunk=1 << 20, **extra
) -> Iterator[pb.RunModelRequest]:
    info = pb.TensorInfo(datum=int(datum), shape=list(shape))
    for start in range(0, max(len(raw), 1), chunk):
        yield pb.RunModelRequest(
            tensor=info, tensor_data=raw[start : start + chunk], **extra
        )


def _refusal(stub, requests) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.RunModel(requests, timeout=30)
    return info.value


def test_numpy_input_travels_as_a_tensor_and_the_proof_commits_to_it(server):
    with connect_sim(server) as client:
        assert "tensor-v1" in client.server_info.capabilities
        model = affine_model(n=6, scale=3.0, bias=0.5)
        _upload(client, model, (2, 6))
        x = np.arange(12, dtype=np.float32).reshape(2, 6) / 7
        response = client.run_model(x, sign=True)
        run = response._run()
        assert run.input_hash == b""
        assert run.input_tensor.datum == int(F32)
        assert list(run.input_tensor.shape) == [2, 6]
        assert run.input_tensor_hash == hashlib.sha256(x.tobytes()).digest()
        local = ort.InferenceSession(model).run(None, {"x": x})[0]
        np.testing.assert_array_equal(response.output_array(), local)
        key = client.enclave_signing_key
    proof = RunModelResponse().load_from_bytes(response.as_bytes())
    proof.validate(x, enclave_signing_key=key, allow_simulation_mode=True)
    proof.validate(
        x.astype(np.float64), enclave_signing_key=key, allow_simulation_mode=True
    )
    with pytest.raises(SignatureError, match="another input"):
        proof.validate(x + 1, enclave_signing_key=key, allow_simulation_mode=True)
    with pytest.raises(SignatureError, match="shape"):
        proof.validate(x.ravel(), enclave_signing_key=key, allow_simulation_mode=True)


def test_a_tensor_in_many_uneven_chunks_is_hashed_whole(server, stub):
    """The server hashes a tensor chunk by chunk as it arrives; the payload's
    hash must still be that of all the bytes, in order."""
    with connect_sim(server) as client:
        _upload(client, identity_model([1, 1000]), (1, 1000))
    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    raw = x.tobytes()
    reply = stub.RunModel(_tensor_requests(raw, F32, (1, 1000), chunk=333), timeout=30)
    run = pb.Payload.FromString(reply.payload).run_model_payload
    assert run.input_tensor_hash == hashlib.sha256(raw).digest()
    assert run.input_tensor_hash != hashlib.sha256(raw[:-333]).digest()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_0_d_array_makes_a_proof_that_validates(server, dtype):
    """A 0-d input left as_tensor as shape (1,): every signed run of one failed
    its own check ("does not convert exactly")."""
    with connect_sim(server) as client:
        _upload(client, identity_model([1]), (1,))
        x = np.array(5.0, dtype=dtype)
        response = client.run_model(x, sign=True)
        assert response.output == [5.0]
        assert list(response._run().input_tensor.shape) == []
        key = client.enclave_signing_key
    proof = RunModelResponse().load_from_bytes(response.as_bytes())
    proof.validate(x, enclave_signing_key=key, allow_simulation_mode=True)
    with pytest.raises(SignatureError):
        proof.validate(
            np.array([5.0], dtype=dtype),
            enclave_signing_key=key,
            allow_simulation_mode=True,
        )


def test_lists_and_servers_without_the_capability_keep_the_cbor_path(server):
    with connect_sim(server) as client:
        _upload(client, affine_model(n=4), (1, 4))
        x = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
        from_list = client.run_model(x.tolist(), sign=True)
        del client.server_info.capabilities[:]
        from_array = client.run_model(x, sign=True)
        for response in (from_list, from_array):
            run = response._run()
            assert not run.HasField("input_tensor")
            assert run.input_hash == hashlib.sha256(encode_array(x)).digest()
            response.validate(
                x,
                enclave_signing_key=client.enclave_signing_key,
                allow_simulation_mode=True,
            )
        assert from_list.output == from_array.output == [3.0, 5.0, 7.0, 9.0]


@pytest.mark.parametrize("sent", [np.float64, np.float16, np.int32, np.uint8])
def test_other_element_types_convert_as_the_cbor_path_does(server, sent):
    with connect_sim(server) as client:
        _upload(client, affine_model(n=4, scale=2.0, bias=0.0), (1, 4))
        x = np.array([[1, 2, 3, 250]], dtype=sent)
        assert client.run_model(x).output == client.run_model(x.tolist()).output


def test_attack_floats_sent_to_an_integer_model_are_refused_naming_both(server, stub):
    with connect_sim(server) as client:
        _upload(
            client,
            identity_model([1, 3], TensorProto.INT64),
            (1, 3),
            dtype=I64,
            dtype_out=I64,
        )
    raw = np.array([1.5, 2.0, 3.0]).tobytes()
    err = _refusal(stub, _tensor_requests(raw, F64, [1, 3]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "F64" in err.details() and "I64" in err.details()


def test_attack_integers_out_of_the_models_range_are_refused(server, stub):
    with connect_sim(server) as client:
        _upload(
            client,
            identity_model([1, 2], TensorProto.INT32),
            (1, 2),
            dtype=I32,
            dtype_out=I32,
        )
        x = np.array([[1, 2]], dtype=np.int64)
        assert client.run_model(x).output == [1, 2]
    raw = np.array([1, 2**40], dtype="<i8").tobytes()
    err = _refusal(stub, _tensor_requests(raw, I64, [1, 2]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "I32" in err.details()


@pytest.mark.parametrize(
    "case,code,message",
    [
        ("short", "INVALID_ARGUMENT", "ended after 12 of its 16 bytes"),
        ("long", "INVALID_ARGUMENT", "more tensor bytes"),
        ("huge_shape", "RESOURCE_EXHAUSTED", "input limit"),
        ("negative_dim", "INVALID_ARGUMENT", "negative"),
        ("wrong_count", "INVALID_ARGUMENT", "takes 4"),
        ("mixed", "INVALID_ARGUMENT", "also carry CBOR"),
        ("orphan_data", "INVALID_ARGUMENT", "without a tensor description"),
        ("bad_datum", "INVALID_ARGUMENT", "unknown tensor element type"),
    ],
)
def test_attack_malformed_tensor_requests_are_refused(
    server, stub, case, code, message
):
    with connect_sim(server) as client:
        _upload(client, affine_model(n=4), (1, 4))
    four = np.ones(4, dtype="<f4").tobytes()
    requests = {
        "short": _tensor_requests(four[:12], F32, [1, 4]),
        "long": _tensor_requests(four + four, F32, [1, 4]),
        "huge_shape": _tensor_requests(four, F32, [2**40, 2**40, 2**40]),
        "negative_dim": _tensor_requests(four, F32, [-1, 4]),
        "wrong_count": _tensor_requests(four * 2, F32, [2, 4]),
        "mixed": _tensor_requests(four, F32, [1, 4], input=b"\x80"),
        "orphan_data": iter(
            [pb.RunModelRequest(input=encode_array(np.ones(4)), tensor_data=four)]
        ),
        "bad_datum": iter(
            [
                pb.RunModelRequest(
                    tensor=pb.TensorInfo(datum=99, shape=[1, 4]), tensor_data=four
                )
            ]
        ),
    }[case]
    err = _refusal(stub, requests)
    assert err.code().name == code
    assert message in err.details()


def test_outputs_over_4_mib_reach_our_client_and_are_refused_to_0_3_clients(
    server, stub
):
    n = 600_000  # 9 bytes per element in CBOR: 5.4 MB of output
    x = np.linspace(0, 1, n, dtype=np.float32).reshape(1, n)
    with connect_sim(server) as client:
        _upload(client, identity_model([1, n]), (1, n))
        np.testing.assert_array_equal(client.run_model(x).output_array(), x)
        assert client.run_model(x.tolist()).output == x.ravel().tolist()
    cbor = encode_array(x)
    legacy = (
        pb.RunModelRequest(input=cbor[i : i + 32768])
        for i in range(0, len(cbor), 32768)
    )
    err = _refusal(stub, legacy)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "0.3 client" in err.details()


@pytest.mark.parametrize(
    "make_input",
    [
        lambda: np.arange(4, dtype=np.float32).reshape(1, 4) / 3,  # tensor, unary
        lambda: [0.25, 0.5, 0.75, 1.0],  # CBOR list, unary
        lambda: np.full((1, 100_000), 0.5, dtype=np.float32),  # tensor, streamed
    ],
    ids=["tensor", "list", "streamed"],
)
def test_a_signed_reply_for_other_bytes_than_sent_is_refused(
    server, monkeypatch, make_input
):
    """The client checks a fresh signed reply against what it sent: a server
    that answered (and signed) for other bytes must not pass."""
    from blindai import client as client_module

    real_call = client_module._call

    def altered(method, request, timeout, *rest):
        if isinstance(request, pb.RunModelRequest):
            field = "tensor_data" if request.tensor_data else "input"
            data = bytearray(getattr(request, field))
            data[-1] ^= 0x01
            setattr(request, field, bytes(data))
        else:  # a stream: alter its last chunk
            chunks = list(request)
            last = chunks[-1]
            data = bytearray(last.tensor_data)
            data[-1] ^= 0x01
            last.tensor_data = bytes(data)
            request = iter(chunks)
        return real_call(method, request, timeout, *rest)

    x = make_input()
    n = np.asarray(x).size
    with connect_sim(server) as client:
        _upload(client, identity_model([1, n]), (1, n))
        client.run_model(x, sign=True)  # unaltered: fine
        monkeypatch.setattr(client_module, "_call", altered)
        with pytest.raises(SignatureError, match="another input"):
            client.run_model(x, sign=True)
