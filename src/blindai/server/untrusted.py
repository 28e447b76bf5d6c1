"""The untrusted port: ``untrusted.Attestation``.

It hands out what a client needs to decide whether to trust the enclave: the
server's versions, the enclave certificate and, on SGX, the quote with its
collateral. Nothing here is secret.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import grpc

from blindai.pb import untrusted_pb2 as pb
from blindai.pb import untrusted_pb2_grpc as pb_grpc
from blindai.server.guard import guarded
from blindai.version import PROTOCOL_VERSION, __version__

log = logging.getLogger(__name__)

#: Optional protocol features this server understands.
CAPABILITIES = ("tensor-v1", "unary-run-v1")


class AttestationUnavailable(Exception):
    """The platform cannot produce attestation evidence right now."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Platform(Protocol):
    """Where the server runs: simulation, or an SGX enclave."""

    mode: str

    def attestation(self) -> pb.GetSgxQuoteWithCollateralReply:
        """The quote, its collateral and the enclave-held data.

        Raises :class:`AttestationUnavailable`.
        """
        ...


class SimulationPlatform:
    """No enclave, no attestation: development only."""

    mode = "simulation"

    def attestation(self) -> pb.GetSgxQuoteWithCollateralReply:
        raise AttestationUnavailable(
            grpc.StatusCode.UNIMPLEMENTED,
            "this is a simulation-mode server: it runs outside any enclave and "
            "has no attestation quote",
        )


class AttestationService(pb_grpc.AttestationServicer):
    """Server information, the enclave certificate and attestation evidence."""

    def __init__(self, platform: Platform, enclave_cert_der: bytes) -> None:
        self._platform = platform
        self._cert = enclave_cert_der

    @guarded
    def GetServerInfo(self, request: Any, context: Any) -> pb.GetServerInfoReply:  # noqa: N802
        return pb.GetServerInfoReply(
            version=PROTOCOL_VERSION,
            product_version=__version__,
            capabilities=list(CAPABILITIES),
            mode=self._platform.mode,
        )

    @guarded
    def GetCertificate(self, request: Any, context: Any) -> pb.GetCertificateReply:  # noqa: N802
        return pb.GetCertificateReply(enclave_tls_certificate=self._cert)

    @guarded
    def GetSgxQuoteWithCollateral(  # noqa: N802
        self, request: Any, context: Any
    ) -> pb.GetSgxQuoteWithCollateralReply:
        try:
            return self._platform.attestation()
        except AttestationUnavailable as err:
            log.info("attestation refused: %s", err.code.name)
            context.abort(err.code, err.message)
            raise AssertionError("unreachable") from None

    @guarded
    def GetToken(self, request: Any, context: Any) -> pb.GetTokenReply:  # noqa: N802
        return pb.GetTokenReply(token="")
