"""Shared fixtures: test models, a real server process, the shared fixtures folder."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ATTESTATION_FIXTURES = SHARED / "fixtures" / "attestation"

sys.path.insert(0, str(REPO / "examples"))


@pytest.fixture(scope="session")
def digits():
    """(onnx bytes, X_test, y_test, scikit-learn predictions) of the digits model."""
    from digits import train_digits_model

    return train_digits_model()


@pytest.fixture(scope="session")
def digits_model_path(digits, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "digits.onnx"
    path.write_bytes(digits[0])
    return path


@pytest.fixture(scope="session")
def sim_server() -> Iterator:
    """One simulation-mode server process shared by the session's tests."""
    from blindai.server.launcher import LocalServer

    with LocalServer(["--simulation"]) as server:
        yield server


@pytest.fixture
def fresh_sim_server() -> Iterator:
    """A simulation-mode server of the test's own (no model uploaded yet)."""
    from blindai.server.launcher import LocalServer

    with LocalServer(["--simulation"]) as server:
        yield server


def connect_sim(server, **kwargs):
    import blindai

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blindai.SimulationModeWarning)
        return blindai.connect("127.0.0.1", simulation=True, **server.ports, **kwargs)


def exchange_stub(server):
    """A raw ``Exchange`` stub for sending requests our client would never send."""
    import grpc

    from blindai._certs import der_to_pem
    from blindai.pb import untrusted_pb2
    from blindai.pb.securedexchange_pb2_grpc import ExchangeStub
    from blindai.pb.untrusted_pb2_grpc import AttestationStub

    options = [("grpc.ssl_target_name_override", "blindai-srv")]
    host_pem = server.host_certificate.read_bytes()
    with grpc.secure_channel(f"127.0.0.1:{server.untrusted_port}",
                             grpc.ssl_channel_credentials(host_pem), options) as ch:
        der = AttestationStub(ch).GetCertificate(
            untrusted_pb2.GetCertificateRequest(), timeout=10
        ).enclave_tls_certificate
    channel = grpc.secure_channel(
        f"127.0.0.1:{server.attested_port}",
        grpc.ssl_channel_credentials(der_to_pem(der)), options)
    return ExchangeStub(channel), channel


def attestation_stub(server):
    import grpc

    from blindai.pb.untrusted_pb2_grpc import AttestationStub

    options = [("grpc.ssl_target_name_override", "blindai-srv")]
    host_pem = server.host_certificate.read_bytes()
    channel = grpc.secure_channel(f"127.0.0.1:{server.untrusted_port}",
                                  grpc.ssl_channel_credentials(host_pem), options)
    return AttestationStub(channel), channel
