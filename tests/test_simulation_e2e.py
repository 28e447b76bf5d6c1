"""End to end in simulation mode: our client against a real server process."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from models import affine_model
from support import connect_sim

import blindai
from blindai import (
    ModelDatumType,
    RunModelResponse,
    SignatureError,
    UploadModelResponse,
)


@pytest.fixture(scope="module")
def digits_client(sim_server, digits, digits_model_path):
    client = connect_sim(sim_server)
    upload = client.upload_model(
        str(digits_model_path), shape=(1, 64), dtype_out=ModelDatumType.I64, sign=True
    )
    yield client, upload
    client.close_connection()


def test_every_test_image_gets_scikit_learns_prediction(digits_client, digits):
    client, _ = digits_client
    _, x_test, y_test, sk_pred = digits
    remote = np.array([client.run_model(row).output[0] for row in x_test])
    np.testing.assert_array_equal(remote, sk_pred)
    assert np.mean(remote == y_test) >= 0.95


def test_upload_response_names_the_model(digits_client, digits):
    _, upload = digits_client
    assert upload.model_hash == hashlib.sha256(digits[0]).digest()
    assert upload.input_shape == (1, 64)
    assert upload.is_signed() and upload.is_simulation_mode()


def test_inputs_as_nested_lists_and_arrays_agree(digits_client, digits):
    client, _ = digits_client
    row = digits[1][0]
    flat = client.run_model(row.tolist()).output
    nested = client.run_model([row.tolist()]).output
    array = client.run_model(row.reshape(1, 64)).output
    assert flat == nested == array


def test_signed_run_proof_round_trip(digits_client, digits, tmp_path):
    client, _ = digits_client
    row = digits[1][3].reshape(1, 64)
    response = client.run_model(row, sign=True)
    path = tmp_path / "run.proof"
    response.save_to_file(path)
    loaded = RunModelResponse().load_from_file(path)
    assert loaded.output == response.output
    assert loaded.is_simulation_mode() and loaded.is_signed()
    loaded.validate(
        row,
        enclave_signing_key=client.enclave_signing_key,
        allow_simulation_mode=True,
        model_hash=hashlib.sha256(digits[0]).digest(),
    )
    raw_key = client.enclave_signing_key.public_bytes_raw()
    loaded.validate(
        row.tolist(), enclave_signing_key=raw_key, allow_simulation_mode=True
    )


def test_simulation_proof_refused_without_allow(digits_client, digits):
    client, _ = digits_client
    row = digits[1][0]
    response = client.run_model(row, sign=True)
    with pytest.raises(SignatureError, match="simulation"):
        response.validate(row, enclave_signing_key=client.enclave_signing_key)


def _tampered(response, field: str, index: int):
    data = bytearray(getattr(response, field))
    data[index] ^= 0x01
    copy = type(response)().load_from_bytes(response.as_bytes())
    setattr(copy, field, bytes(data))
    return copy


@pytest.mark.parametrize("field", ["payload", "signature"])
def test_tampered_run_proof_is_refused(digits_client, digits, field):
    client, _ = digits_client
    row = digits[1][1]
    response = client.run_model(row, sign=True)
    for index in range(0, len(getattr(response, field)), 7):
        forged = _tampered(response, field, index)
        with pytest.raises(SignatureError):
            forged.validate(
                row,
                enclave_signing_key=client.enclave_signing_key,
                allow_simulation_mode=True,
            )


@pytest.mark.parametrize("field", ["payload", "signature"])
def test_tampered_upload_proof_is_refused(digits_client, digits, field):
    client, upload = digits_client
    model_hash = hashlib.sha256(digits[0]).digest()
    upload.validate(
        model_hash,
        enclave_signing_key=client.enclave_signing_key,
        allow_simulation_mode=True,
    )
    for index in range(0, len(getattr(upload, field)), 5):
        forged = _tampered(upload, field, index)
        with pytest.raises(SignatureError):
            forged.validate(
                model_hash,
                enclave_signing_key=client.enclave_signing_key,
                allow_simulation_mode=True,
            )


def test_proof_for_another_input_or_model_is_refused(digits_client, digits):
    client, _ = digits_client
    row = digits[1][2]
    response = client.run_model(row, sign=True)
    key = client.enclave_signing_key
    with pytest.raises(SignatureError, match="another input"):
        response.validate(
            digits[1][3], enclave_signing_key=key, allow_simulation_mode=True
        )
    with pytest.raises(SignatureError, match="names model"):
        response.validate(
            row,
            enclave_signing_key=key,
            allow_simulation_mode=True,
            model_hash=b"\0" * 32,
        )


def test_proof_signed_by_another_key_is_refused(digits_client, digits):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    client, _ = digits_client
    row = digits[1][0]
    response = client.run_model(row, sign=True)
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(SignatureError, match="signature"):
        response.validate(row, enclave_signing_key=other, allow_simulation_mode=True)


def test_unsigned_response_does_not_validate(digits_client, digits):
    client, _ = digits_client
    response = client.run_model(digits[1][0])
    assert not response.is_signed()
    with pytest.raises(SignatureError, match="not signed"):
        response.validate(
            digits[1][0],
            enclave_signing_key=client.enclave_signing_key,
            allow_simulation_mode=True,
        )


def test_upload_proof_is_not_a_run_proof(digits_client):
    client, upload = digits_client
    as_run = RunModelResponse().load_from_bytes(upload.as_bytes())
    with pytest.raises(SignatureError, match="not an inference proof"):
        as_run.validate(
            [0.0] * 64,
            enclave_signing_key=client.enclave_signing_key,
            allow_simulation_mode=True,
        )


def test_float_model_output_array(fresh_sim_server):
    client = connect_sim(fresh_sim_server)
    with client:
        client.upload_model(affine_model(), shape=(2, 4))
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        response = client.run_model(x)
        np.testing.assert_allclose(response.output_array(), 2 * x + 1)
        assert response.output_shape == (2, 4)


def test_shape_taken_from_model_when_not_given(fresh_sim_server):
    client = connect_sim(fresh_sim_server)
    with client:
        upload = client.upload_model(affine_model(n=3), sign=True)
        assert upload.input_shape == (1, 3)
        assert client.run_model([1.0, 2.0, 3.0]).output == [3.0, 5.0, 7.0]


def test_every_simulation_connection_warns(sim_server):
    with pytest.warns(blindai.SimulationModeWarning):
        client = blindai.connect("127.0.0.1", simulation=True, **sim_server.ports)
    client.close_connection()
    with pytest.warns(blindai.SimulationModeWarning):
        client = blindai.connect("127.0.0.1", simulation=True, **sim_server.ports)
    client.close_connection()


def test_pinned_host_certificate_in_simulation(sim_server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blindai.SimulationModeWarning)
        client = blindai.connect(
            "127.0.0.1",
            simulation=True,
            certificate=str(sim_server.host_certificate),
            **sim_server.ports,
        )
    assert client.server_info.mode == "simulation"
    assert client.server_version == "0.3.0"
    client.close_connection()


def test_hardware_mode_refuses_a_simulation_server(sim_server, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'mr_enclave = "' + "00" * 32 + '"\nmisc_select_hex = "0x0"\n'
        'misc_mask_hex = "0x0"\nattributes_flags_hex = "0x0"\n'
        'attributes_xfrm_hex = "0x0"\nattributes_mask_flags_hex = "0x0"\n'
        'attributes_mask_xfrm_hex = "0x0"\nallow_debug = false\n'
    )
    client = blindai.BlindAiClient()
    with pytest.raises(blindai.AttestationError, match="simulation mode"):
        client.connect_server(
            "127.0.0.1",
            policy=str(policy),
            certificate=str(sim_server.host_certificate),
            **sim_server.ports,
        )
    assert not client.is_connected()


def test_calls_before_connecting_raise_connection_error():
    client = blindai.BlindAiClient()
    with pytest.raises(ConnectionError):
        client.run_model([1.0])
    with pytest.raises(ConnectionError):
        client.upload_model(b"model")


def test_unreachable_server_raises_connection_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError):
        blindai.BlindAiClient().connect_server(
            "127.0.0.1",
            simulation=True,
            untrusted_port=port,
            attested_port=port + 1,
            timeout=3,
        )


def test_missing_model_file_raises_file_not_found(sim_server):
    client = connect_sim(sim_server)
    with client, pytest.raises(FileNotFoundError):
        client.upload_model("/nonexistent/model.onnx")


def test_upload_response_validate_with_wrong_hash(digits_client):
    client, upload = digits_client
    with pytest.raises(SignatureError, match="for model"):
        upload.validate(
            b"\1" * 32,
            enclave_signing_key=client.enclave_signing_key,
            allow_simulation_mode=True,
        )
    assert isinstance(
        UploadModelResponse().load_from_bytes(upload.as_bytes()), UploadModelResponse
    )
