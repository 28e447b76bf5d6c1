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
     └── VersionError         the server speaks another protocol version

The names and meanings follow BlindAI 0.3 so that existing ``except`` clauses keep
working. Connection failures raise the built-in :class:`ConnectionError`, as 0.3
did; missing files raise :class:`FileNotFoundError`.
"""

from __future__ import annotations


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


__all__ = [
    "AttestationError",
    "BlindAiError",
    "CollateralError",
    "CollateralExpiredError",
    "PolicyFormatError",
    "PolicyMismatchError",
    "QuoteFormatError",
    "QuoteVerificationError",
    "SignatureError",
    "VersionError",
]
