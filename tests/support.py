"""Helpers shared by the tests (import from here, not from conftest: several
conftest modules exist and their names collide)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from blindai.pb import securedexchange_pb2 as pb
from blindai.pb.securedexchange_pb2_grpc import ExchangeStub

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ATTESTATION_FIXTURES = SHARED / "fixtures" / "attestation"
SHARED_MISSING = (
    "../shared/fixtures/attestation not found: fixture tests need the shared folder "
    "beside the repository"
)


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
    with grpc.secure_channel(
        f"127.0.0.1:{server.untrusted_port}",
        grpc.ssl_channel_credentials(host_pem),
        options,
    ) as ch:
        der = (
            AttestationStub(ch)
            .GetCertificate(untrusted_pb2.GetCertificateRequest(), timeout=10)
            .enclave_tls_certificate
        )
    channel = grpc.secure_channel(
        f"127.0.0.1:{server.attested_port}",
        grpc.ssl_channel_credentials(der_to_pem(der)),
        options,
    )
    return ExchangeStub(channel), channel


def attestation_stub(server):
    import grpc

    from blindai.pb.untrusted_pb2_grpc import AttestationStub

    options = [("grpc.ssl_target_name_override", "blindai-srv")]
    host_pem = server.host_certificate.read_bytes()
    channel = grpc.secure_channel(
        f"127.0.0.1:{server.untrusted_port}",
        grpc.ssl_channel_credentials(host_pem),
        options,
    )
    return AttestationStub(channel), channel


# --- raw requests, for what our client would never send ---------------------------

CALL_TIMEOUT = 30.0


def model_requests(
    data: bytes,
    shape: tuple[int, ...] = (1, 4),
    datum: int = pb.F32,
    datum_output: int = pb.F32,
    length: int | None = None,
    chunk: int = 1 << 16,
) -> list[pb.SendModelRequest]:
    length = len(data) if length is None else length
    return [
        pb.SendModelRequest(
            data=data[i : i + chunk],
            length=length,
            input_fact=list(shape),
            datum=datum,
            datum_output=datum_output,
        )
        for i in range(0, max(len(data), 1), chunk)
    ]


def upload(stub: ExchangeStub, data: bytes, **kwargs: Any) -> pb.SendModelReply:
    return stub.SendModel(iter(model_requests(data, **kwargs)), timeout=CALL_TIMEOUT)


def run(stub: ExchangeStub, raw: bytes, chunk: int = 1 << 16) -> pb.RunModelReply:
    requests = [
        pb.RunModelRequest(input=raw[i : i + chunk])
        for i in range(0, max(len(raw), 1), chunk)
    ]
    return stub.RunModel(iter(requests), timeout=CALL_TIMEOUT)
