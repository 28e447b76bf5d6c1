"""Intel SGX DCAP attestation: quote verification and the enclave policy.

The client checks, before sending anything, that the server's quote is signed by
genuine Intel SGX hardware (a chain to Intel's SGX Root CA), that its collateral
is valid and unrevoked at the verification instant, and that the enclave it
describes is one the policy accepts::

    verified = verify_attestation(reply, Policy.from_file("policy.toml"))

Written in pure Python on `cryptography`: no maintained Python library verifies
DCAP quotes against TCB info versions 2 and 3 (Intel's QVL is C++; dcap-qvl reads
only version 3), so the quote, certificate extension and JSON formats are parsed
here, following ``DCAP-FORMATS.md``. Everything raises
:class:`~blindai.errors.AttestationError` subclasses; nothing returns a bool.
"""

from __future__ import annotations

from blindai.attestation.claims import VerifiedAttestation, VerifiedQuote
from blindai.attestation.pki import INTEL_SGX_ROOT_CA_SHA256
from blindai.attestation.policy import Policy
from blindai.attestation.quote import Quote
from blindai.attestation.tcb import TcbStatus
from blindai.attestation.verify import verify_attestation, verify_quote

__all__ = [
    "INTEL_SGX_ROOT_CA_SHA256",
    "Policy",
    "Quote",
    "TcbStatus",
    "VerifiedAttestation",
    "VerifiedQuote",
    "verify_attestation",
    "verify_quote",
]
