"""The exceptions a user of the client catches.

::

    BlindAiError
     ├── AttestationError     the server's identity could not be established
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


class SignatureError(BlindAiError):
    """A response is unsigned, its signature is invalid, or its content does not
    match what was sent (model hash, input hash)."""


class VersionError(BlindAiError):
    """The server's protocol version is not one this client supports."""


__all__ = ["AttestationError", "BlindAiError", "SignatureError", "VersionError"]
