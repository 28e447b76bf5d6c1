"""Faults a newcomer found, each pinned by the behaviour it must have."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from models import affine_model, cast_model
from onnx import TensorProto
from support import connect_sim

import blindai
from blindai import ModelDatumType, SignatureError


@pytest.fixture(scope="module")
def int_client(sim_server):
    client = connect_sim(sim_server)
    client.upload_model(
        cast_model(4, TensorProto.INT64, TensorProto.INT64),
        shape=(1, 4),
        dtype=ModelDatumType.I64,
        dtype_out=ModelDatumType.I64,
    )
    yield client
    client.close_connection()


def _key(client):
    return dict(
        enclave_signing_key=client.enclave_signing_key, allow_simulation_mode=True
    )


@pytest.mark.parametrize(
    "forged",
    [
        np.array([[1.5, 2.2, 3.9, 4.0]], np.float32),  # truncated to 1, 2, 3, 4
        [[1.5, 2.2, 3.9, 4.0]],
        np.array([[2**64 - 3, 2, 3, 4]], np.uint64),  # wraps in int64
    ],
)
def test_attack_tensor_proof_for_an_input_never_sent(int_client, forged):
    sent = np.array([[1, 2, 3, 4]], np.int64)
    response = int_client.run_model(sent, sign=True)
    response.validate(sent, **_key(int_client))
    with pytest.raises(SignatureError, match="exactly"):
        response.validate(forged, **_key(int_client))


def test_attack_narrower_float_proof_for_a_wider_input(sim_server):
    client = connect_sim(sim_server)
    with client:
        client.upload_model(affine_model(), shape=(1, 4))
        sent = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
        response = client.run_model(sent, sign=True)
        response.validate(sent.astype(np.float64), **_key(client))
        forged = np.array([[1.00000001, 2.0, 3.0, 4.0]], np.float64)
        with pytest.raises(SignatureError, match="exactly"):
            response.validate(forged, **_key(client))


def test_empty_array_input_is_a_value_error(int_client):
    with pytest.raises(ValueError, match="empty"):
        int_client.run_model(np.zeros((0, 4), np.int64))
    with pytest.raises(ValueError, match="empty"):
        int_client.run_model([])


def test_shape_beyond_int32_is_a_value_error(sim_server):
    client = connect_sim(sim_server)
    with client, pytest.raises(ValueError, match="dimension"):
        client.upload_model(affine_model(), shape=(2**40,))


def test_datum_type_by_name(sim_server):
    client = connect_sim(sim_server)
    with client:
        upload = client.upload_model(affine_model(), shape=(1, 4), dtype="F32")
        assert upload.input_shape == (1, 4)
        with pytest.raises(ValueError, match="F33"):
            client.upload_model(affine_model(), shape=(1, 4), dtype="F33")


def test_model_hash_as_hex_or_bytes_and_clear_type_errors(int_client):
    sent = [1, 2, 3, 4]
    response = int_client.run_model(sent, sign=True)
    digest = response.model_hash
    response.validate(sent, model_hash=digest.hex(), **_key(int_client))
    with pytest.raises(TypeError, match="model_hash"):
        response.validate(sent, model_hash=12345, **_key(int_client))
    with pytest.raises(ValueError, match="model_hash"):
        response.validate(sent, model_hash="affine.onnx", **_key(int_client))


def test_upload_validate_takes_hex_and_refuses_a_path(sim_server):
    model = affine_model()
    client = connect_sim(sim_server)
    with client:
        upload = client.upload_model(model, shape=(1, 4), sign=True)
        digest = hashlib.sha256(model).hexdigest()
        upload.validate(digest, **_key(client))
        with pytest.raises(ValueError, match="model_hash"):
            upload.validate("affine.onnx", **_key(client))


@pytest.mark.parametrize("port", [0, -1, 65536, 99999])
def test_ports_out_of_range_are_refused_before_connecting(port):
    with pytest.raises(ValueError, match="port"):
        blindai.BlindAiClient().connect_server(
            "127.0.0.1", simulation=True, untrusted_port=port
        )


def test_pinned_certificate_mismatch_says_so(sim_server, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from blindai._certs import self_signed_certificate
    from blindai.errors import CertificateMismatchError

    cert = self_signed_certificate(ec.generate_private_key(ec.SECP256R1()), "other")
    path = tmp_path / "other.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CertificateMismatchError, match="certificate") as info:
        blindai.BlindAiClient().connect_server(
            "127.0.0.1",
            simulation=True,
            certificate=str(path),
            timeout=5,
            **sim_server.ports,
        )
    assert isinstance(info.value, ConnectionError)


def test_swapped_ports_hint_at_the_ports(sim_server):
    ports = sim_server.ports
    with pytest.raises(blindai.errors.CallError, match="port"):
        blindai.BlindAiClient().connect_server(
            "127.0.0.1",
            simulation=True,
            certificate=str(sim_server.host_certificate),
            untrusted_port=ports["attested_port"],
            attested_port=ports["untrusted_port"],
            timeout=5,
        )


def test_simulation_warning_points_at_the_callers_line(sim_server):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = blindai.connect("127.0.0.1", simulation=True, **sim_server.ports)
    client.close_connection()
    found = [w for w in caught if issubclass(w.category, blindai.SimulationModeWarning)]
    assert found and found[0].filename == __file__


@pytest.mark.parametrize("shape", [(1.5, 4), (1, 4.0), "abc", (1, "4"), (None, 4)])
def test_shape_of_anything_but_integers_is_a_value_error(sim_server, shape):
    """(1.5, 4) was truncated to (1, 4) without a word."""
    with connect_sim(sim_server) as client:
        with pytest.raises(ValueError, match="shape"):
            client.upload_model(affine_model(), shape=shape)


def test_shape_of_numpy_integers_is_taken(sim_server):
    with connect_sim(sim_server) as client:
        reply = client.upload_model(affine_model(), shape=(np.int64(1), np.int32(4)))
        assert list(reply.input_shape) == [1, 4]


def test_a_simulation_connection_warns_once_not_twice(sim_server):
    """One SimulationModeWarning, and no log line repeating it on stderr
    (Python's last-resort log handler printed the same text again)."""
    import io
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("blindai").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = blindai.connect("127.0.0.1", simulation=True, **sim_server.ports)
        client.close_connection()
    finally:
        logging.getLogger("blindai").removeHandler(handler)
    found = [w for w in caught if issubclass(w.category, blindai.SimulationModeWarning)]
    assert len(found) == 1
    assert "SIMULATION" not in stream.getvalue()


class _Failed(Exception):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_a_call_the_server_cancelled_says_why_it_may_have():
    """An upload cancelled for stalling read 'CANCELLED: CANCELLED'."""
    import grpc

    from blindai.client import call_error

    err = call_error(_Failed(grpc.StatusCode.CANCELLED, "CANCELLED"))
    assert isinstance(err, blindai.ServerUnavailableError)
    assert "--idle-timeout" in str(err) and "stopping" in str(err)
    # A call this side ended (its channel closed under it) blames no server.
    for local in ("Channel closed!", "Locally cancelled by application!"):
        err = call_error(_Failed(grpc.StatusCode.CANCELLED, local))
        assert "server cancelled" not in str(err) and "this side" in str(err)
