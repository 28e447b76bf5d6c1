"""The exceptions a user of the client catches.

::

    BlindAiError
     ├── AttestationError     the server's identity could not be established
     │    ├── QuoteFormatError         the quote is malformed or of a kind we refuse
     │    ├── CollateralError          collateral malformed, untrusted or revoked
     │    │    └── CollateralExpiredError   not valid at the verification instant
     │    ├── QuoteVerificationError   a signature or binding of the quote fails
     │    ├── PolicyMismatchError      verified, but not what the policy accepts
     │    └── PolicyFormatError        the policy file is malformed (a ValueError too)
     ├── SignatureError       a signed response does not hold
     ├── VersionError         the server speaks another protocol version
     └── CallError            a call failed (also a ConnectionError, as in 0.3)
          ├── RequestRejectedError    the request is at fault: fix the input
          ├── ResourceLimitError      over a server limit, or the server is busy
          ├── DeadlineExceededError   the call ran out of time
          ├── ServerUnavailableError  the network or the server is down (alias
          │                           NetworkError): a retry may pass
          ├── ServerFailureError      the server failed: not the caller's fault
          └── CertificateMismatchError  not the pinned certificate: wrong file
                                      or port, or someone in between

The names and meanings follow BlindAI 0.3 so that existing ``except`` clauses keep
working: 0.3 raised the built-in :class:`ConnectionError` for every failed call,
and every :class:`CallError` is one. Missing files raise
:class:`FileNotFoundError`.
"""

from __future__ import annotations

from typing import Any


class BlindAiError(Exception):
    """Root of the errors raised by this package."""


class AttestationError(BlindAiError):
    """The attestation evidence is invalid, or does not match the policy.

    Nothing has been sent to the attested port when this is raised during a
    connection.
    """


class QuoteFormatError(AttestationError):
    """The quote cannot be parsed, or is of a kind this verifier refuses (TDX,
    another quote version or key type)."""


class CollateralError(AttestationError):
    """A piece of collateral is malformed, does not chain to the trusted root, is
    wrongly signed, is revoked, or does not belong to the quote's platform."""


class CollateralExpiredError(CollateralError):
    """A certificate, CRL or signed document is not valid at the verification
    instant (expired, or not yet valid). Fresh collateral may fix it."""


class QuoteVerificationError(AttestationError):
    """A signature or binding inside the quote does not hold, or the quoting
    enclave or platform TCB does not match the collateral."""


class PolicyMismatchError(AttestationError):
    """The evidence is genuine but the policy does not accept it."""


class PolicyFormatError(AttestationError, ValueError):
    """A policy file or dictionary is malformed (unknown or missing key, bad value).

    Also a :class:`ValueError`, since it is a configuration mistake rather than
    something the server did.
    """


class SignatureError(BlindAiError):
    """A response is unsigned, its signature is invalid, or its content does not
    match what was sent (model hash, input hash)."""


class VersionError(BlindAiError):
    """The server's protocol version is not one this client supports."""


class CallError(BlindAiError, ConnectionError):
    """A call to the server failed; the subclass says whose fault it is.

    Attributes:
        code: the gRPC status code (``grpc.StatusCode``), or None when the
            call never reached gRPC.
        details: the server's (or gRPC's) message.
    """

    #: Who must act: ``"input"``, ``"server"`` or ``"network"``.
    fault = "server"

    def __init__(self, message: str, code: Any = None, details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RequestRejectedError(CallError):
    """The server refused the request as malformed or out of place
    (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE): retrying the same
    request fails the same way."""

    fault = "input"


class ResourceLimitError(CallError):
    """The request is over a server limit (model or input size), or the server
    has too many calls of this kind in progress (RESOURCE_EXHAUSTED). A smaller
    request, or a later retry, may pass."""

    fault = "input"


class DeadlineExceededError(CallError):
    """The call ran out of time: the client's ``timeout`` passed (a slow network
    or server), or the server stopped an inference at its own time limit
    (DEADLINE_EXCEEDED)."""

    fault = "server"


class ServerUnavailableError(CallError):
    """The server cannot be reached or the connection broke (UNAVAILABLE,
    CANCELLED): a retry may pass."""

    fault = "network"


#: A shorter name for the same failure.
NetworkError = ServerUnavailableError


class ServerFailureError(CallError):
    """The server failed or answered something this client cannot use
    (INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS, ...)."""


class CertificateMismatchError(CallError):
    """The TLS handshake failed: the server's certificate is not the one pinned
    (a wrong ``certificate`` file or port, or someone in between). Retrying
    will not help."""

    fault = "input"


__all__ = [
    "AttestationError",
    "BlindAiError",
    "CallError",
    "CertificateMismatchError",
    "DeadlineExceededError",
    "NetworkError",
    "RequestRejectedError",
    "ResourceLimitError",
    "ServerFailureError",
    "ServerUnavailableError",
    "CollateralError",
    "CollateralExpiredError",
    "PolicyFormatError",
    "PolicyMismatchError",
    "QuoteFormatError",
    "QuoteVerificationError",
    "SignatureError",
    "VersionError",
]
