"""Check synthetic evidence with dcap-qvl, an independent DCAP verifier.

dcap-qvl 0.7.0 (a test dependency) reads TCB info v3 only, so use collateral made
with ``api_version=4``. It takes CRLs as DER and the document bodies and
signatures apart, so the envelope is split here at the raw substring (never
re-serialised).
"""

from __future__ import annotations

import datetime as dt
import json

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from blindai.pb import untrusted_pb2

from .documents import signed_body_bytes


def _crl_der(pem: str) -> bytes:
    return x509.load_pem_x509_crl(pem.encode()).public_bytes(Encoding.DER)


def dcap_qvl_verify(
    quote: bytes,
    collateral: untrusted_pb2.SgxCollateral,
    root_der: bytes,
    at: dt.datetime,
) -> tuple[str, list[str]]:
    """(status, advisory IDs) from dcap-qvl; raises ``ValueError`` on rejection."""
    import dcap_qvl

    tcb = collateral.tcb_info
    qe = collateral.qe_identity
    qvl_collateral = dcap_qvl.QuoteCollateralV3(
        collateral.pck_crl_issuer_chain,
        _crl_der(collateral.root_ca_crl),
        _crl_der(collateral.pck_crl),
        collateral.tcb_info_issuer_chain,
        signed_body_bytes(tcb, "tcbInfo").decode(),
        bytes.fromhex(json.loads(tcb)["signature"]),
        collateral.qe_identity_issuer_chain,
        signed_body_bytes(qe, "enclaveIdentity").decode(),
        bytes.fromhex(json.loads(qe)["signature"]),
    )
    report = dcap_qvl.verify_with_root_ca(
        quote, qvl_collateral, root_der, int(at.timestamp())
    )
    return report.status, list(report.advisory_ids)
