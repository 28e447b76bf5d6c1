"""BlindAI 0.3 import path for the client's exceptions (see :mod:`blindai.errors`)."""

from blindai.errors import AttestationError, SignatureError, VersionError

__all__ = ["AttestationError", "SignatureError", "VersionError"]
