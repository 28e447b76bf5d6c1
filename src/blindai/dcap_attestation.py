"""BlindAI 0.3 import path for the enclave policy and DCAP verification.

0.3 code imports ``blindai.dcap_attestation``; the implementation lives in
:mod:`blindai.attestation`.
"""

from __future__ import annotations

from blindai.attestation import (
    Policy,
    TcbStatus,
    VerifiedAttestation,
    VerifiedQuote,
    verify_attestation,
    verify_quote,
)

__all__ = [
    "Policy",
    "TcbStatus",
    "VerifiedAttestation",
    "VerifiedQuote",
    "verify_attestation",
    "verify_quote",
]
