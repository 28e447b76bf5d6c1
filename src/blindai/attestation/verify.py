"""DCAP quote verification as numbered steps (DCAP-FORMATS.md, sections cited).

The trust decision takes bytes, collateral, a trust root and an instant, and
returns a :class:`VerifiedQuote` or raises an
:class:`~blindai.errors.AttestationError` subclass naming the failed check. It does
no I/O (the packaged Intel root is read once and cached) and never logs evidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from blindai.attestation import pki
from blindai.attestation._ecdsa import p256_key_from_raw, verify_raw_signature
from blindai.attestation.claims import VerifiedAttestation, VerifiedQuote
from blindai.attestation.collateral import (
    QeIdentity,
    TcbInfo,
    split_envelope,
    verify_document_signature,
)
from blindai.attestation.pck import PckExtension, read_pck_extension
from blindai.attestation.quote import CERT_DATA_PCK_CHAIN, Quote
from blindai.attestation.tcb import (
    TcbStatus,
    converge,
    match_platform_level,
    match_qe_level,
)
from blindai.errors import AttestationError, CollateralError, QuoteVerificationError


class Collateral(Protocol):
    """What :func:`verify_quote` reads: ``untrusted_pb2.SgxCollateral``'s fields."""

    pck_crl_issuer_chain: str
    root_ca_crl: str
    pck_crl: str
    tcb_info_issuer_chain: str
    tcb_info: str
    qe_identity_issuer_chain: str
    qe_identity: str
    pck_certificate: str
    pck_signing_chain: str


class Policy(Protocol):
    """Anything with a ``check(VerifiedQuote)`` that raises on refusal."""

    def check(self, quote: VerifiedQuote) -> None: ...  # noqa: D102


@dataclass(frozen=True)
class _PckPath:
    leaf: x509.Certificate
    ca: x509.Certificate
    extension: PckExtension


@dataclass(frozen=True)
class _Documents:
    tcb_info: TcbInfo
    qe_identity: QeIdentity
    tcb_signer: x509.Certificate
    qe_signer: x509.Certificate


def verify_quote(
    quote: bytes,
    collateral: Collateral | Any,
    *,
    at: dt.datetime | None = None,
    trusted_root: bytes | str | None = None,
) -> VerifiedQuote:
    """Verify an SGX DCAP quote with its collateral at instant ``at``.

    ``collateral`` is an ``untrusted_pb2.SgxCollateral`` or any object with the
    same attribute names; empty PCK fields are taken from the quote's type-5
    certification data. ``at`` must be timezone-aware (default: now, read once).
    ``trusted_root`` is a root CA in PEM (default: Intel's SGX Root CA, pinned).

    Raises an :class:`AttestationError` subclass naming the failed check, or
    ``ValueError`` for a naive ``at``. A Revoked platform or QE TCB is raised as
    :class:`QuoteVerificationError`, never returned: no policy may accept it.
    """
    at = _instant(at)
    root = pki.load_trusted_root(_root_bytes(trusted_root))

    # 1. Parse the quote at the edge (§1, §2): SGX v3 only, every length exact.
    raw_quote = Quote.from_bytes(quote)

    # 2. PCK path: leaf -> PCK CA -> trusted root, with CA constraints (§1.4, §3).
    path = _pck_path(raw_quote, collateral, root)

    # 3. TCB info and QE identity: signing chains to the root, signatures over the
    #    exact bytes served, SGX-only content (§4, §5).
    documents = _documents(collateral, root)

    # 4. CRLs signed by their issuers and revoking nothing in use (§7).
    crls = _check_revocation(collateral, root, path, documents)

    # 5. The quote's signatures and the QE's binding of the attestation key (§1.5).
    _check_quote_signatures(raw_quote, path.leaf)

    # 6. The TCB info is the platform's: FMSPC and PCE ID of the PCK (§6 step 1).
    _check_tcb_info_matches(documents.tcb_info, path.extension)

    # 7. The quoting enclave is Intel's QE as the QE identity describes it (§5).
    _check_qe_identity(raw_quote, documents.qe_identity)

    # 8. Every certificate, CRL and document valid at `at`, bounds included (§7).
    #    Last, so that CollateralExpiredError means "genuine, but stale".
    window = pki.check_periods(_periods(root, path, documents, crls), at)

    # 9. TCB levels and the converged status (§6 steps 2-4, convergence).
    return _claims(raw_quote, path, documents, window, at, root)


def verify_attestation(
    reply: Any,
    policy: Policy | None,
    *,
    at: dt.datetime | None = None,
    trusted_root: bytes | str | None = None,
) -> VerifiedAttestation:
    """Verify a ``GetSgxQuoteWithCollateralReply`` and check it against ``policy``.

    Runs :func:`verify_quote`, checks that the report data starts with
    SHA-256(``enclave_held_data``) (the enclave certificate's binding, DESIGN.md),
    then ``policy.check``. Raises :class:`AttestationError` (subclasses) on any
    failure, including a missing policy.
    """
    if policy is None:
        raise AttestationError("a policy is required to accept an enclave")
    verified = verify_quote(
        reply.quote, reply.collateral, at=at, trusted_root=trusted_root
    )
    held = bytes(reply.enclave_held_data)
    held_hash = hashlib.sha256(held).digest()
    if held_hash != verified.report_data[:32]:
        raise QuoteVerificationError(
            f"SHA-256 of the enclave certificate {held_hash.hex()} is not the "
            f"quote's report data {verified.report_data[:32].hex()}"
        )
    policy.check(verified)
    return VerifiedAttestation(quote=verified, enclave_certificate_der=held)


def _instant(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.UTC)
    if not isinstance(at, dt.datetime):
        raise TypeError(f"at must be a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be a timezone-aware datetime (use UTC)")
    return at.astimezone(dt.UTC)


def _root_bytes(trusted_root: bytes | str | None) -> bytes | None:
    if trusted_root is None or isinstance(trusted_root, bytes):
        return trusted_root
    if isinstance(trusted_root, str):
        return trusted_root.encode("ascii", errors="replace")
    return bytes(trusted_root)


def _field(collateral: Any, name: str) -> str | bytes:
    value = getattr(collateral, name, None)
    return b"" if value is None else value


def _pck_path(raw_quote: Quote, collateral: Any, root: x509.Certificate) -> _PckPath:
    leaf_field = _field(collateral, "pck_certificate")
    chain_field = _field(collateral, "pck_signing_chain")
    from_quote: list[x509.Certificate] = []
    if not leaf_field or not chain_field:
        if raw_quote.cert_data_type != CERT_DATA_PCK_CHAIN:
            raise CollateralError(
                f"the quote's certification data is of type "
                f"{raw_quote.cert_data_type}, not a PCK chain (5), and the "
                "collateral lacks pck_certificate or pck_signing_chain"
            )
        from_quote = pki.load_pem_chain(
            raw_quote.cert_data, "the quote's PCK chain (certification data)"
        )
        if len(from_quote) < 2:
            raise CollateralError(
                f"the quote's PCK chain has {len(from_quote)} certificate(s), "
                "expected the PCK certificate and its CA"
            )
    leaf = (
        pki.load_pem_chain(leaf_field, "pck_certificate")[0]
        if leaf_field
        else from_quote[0]
    )
    chain = (
        pki.load_pem_chain(chain_field, "pck_signing_chain")
        if chain_field
        else from_quote[1:]
    )
    ca = chain[0]
    pki.check_ca(ca, "the PCK CA")
    pki.check_issued_by(ca, root, "the PCK CA")
    pki.check_not_ca(leaf, "the PCK certificate")
    pki.check_issued_by(leaf, ca, "the PCK certificate")
    return _PckPath(leaf=leaf, ca=ca, extension=read_pck_extension(leaf))


def _documents(collateral: Any, root: x509.Certificate) -> _Documents:
    tcb_chain_field = _field(collateral, "tcb_info_issuer_chain")
    tcb_signer = _signer(tcb_chain_field, "tcb_info_issuer_chain", root)
    qe_chain_field = _field(collateral, "qe_identity_issuer_chain")
    qe_signer = tcb_signer
    if qe_chain_field and qe_chain_field != tcb_chain_field:
        qe_signer = _signer(qe_chain_field, "qe_identity_issuer_chain", root)

    tcb_body, tcb_sig = split_envelope(
        _field(collateral, "tcb_info"), "tcbInfo", "the TCB info"
    )
    verify_document_signature(tcb_body, tcb_sig, tcb_signer, "the TCB info")
    qe_body, qe_sig = split_envelope(
        _field(collateral, "qe_identity"), "enclaveIdentity", "the QE identity"
    )
    verify_document_signature(qe_body, qe_sig, qe_signer, "the QE identity")
    return _Documents(
        tcb_info=TcbInfo.from_body(tcb_body),
        qe_identity=QeIdentity.from_body(qe_body),
        tcb_signer=tcb_signer,
        qe_signer=qe_signer,
    )


def _signer(
    chain_field: str | bytes, name: str, root: x509.Certificate
) -> x509.Certificate:
    signer = pki.load_pem_chain(chain_field, name)[0]
    pki.check_not_ca(signer, f"the signing certificate of {name}")
    pki.check_issued_by(signer, root, f"the signing certificate of {name}")
    return signer


@dataclass(frozen=True)
class _Crls:
    root_crl: x509.CertificateRevocationList
    pck_crl: x509.CertificateRevocationList


def _check_revocation(
    collateral: Any, root: x509.Certificate, path: _PckPath, documents: _Documents
) -> _Crls:
    root_crl = pki.load_crl(_field(collateral, "root_ca_crl"), "root_ca_crl")
    pki.check_crl_issued_by(root_crl, root, "root_ca_crl")
    pck_crl = pki.load_crl(_field(collateral, "pck_crl"), "pck_crl")
    _check_pck_crl_issuer_chain(collateral, path.ca)
    pki.check_crl_issued_by(pck_crl, path.ca, "pck_crl")

    pki.check_not_revoked(root_crl, path.ca, "the PCK CA")
    pki.check_not_revoked(root_crl, documents.tcb_signer, "the TCB signing cert")
    pki.check_not_revoked(root_crl, documents.qe_signer, "the QE identity signer")
    pki.check_not_revoked(pck_crl, path.leaf, "the PCK certificate")
    return _Crls(root_crl=root_crl, pck_crl=pck_crl)


def _check_pck_crl_issuer_chain(collateral: Any, pck_ca: x509.Certificate) -> None:
    """A supplied CRL issuer chain must name the PCK certificate's own CA."""
    chain_field = _field(collateral, "pck_crl_issuer_chain")
    if not chain_field:
        return
    issuer = pki.load_pem_chain(chain_field, "pck_crl_issuer_chain")[0]
    same_key = _spki(issuer) == _spki(pck_ca)
    if issuer.subject != pck_ca.subject or not same_key:
        raise CollateralError(
            f"pck_crl_issuer_chain starts with {pki.describe(issuer)}, but the PCK "
            f"certificate was issued by {pki.describe(pck_ca)}"
        )


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


def _periods(
    root: x509.Certificate, path: _PckPath, documents: _Documents, crls: _Crls
) -> list[pki.Period]:
    periods = [
        pki.certificate_period(root, "the trusted root"),
        pki.certificate_period(path.ca, "the PCK CA"),
        pki.certificate_period(path.leaf, "the PCK certificate"),
        pki.certificate_period(documents.tcb_signer, "the TCB signing cert"),
        pki.certificate_period(documents.qe_signer, "the QE identity signer"),
        pki.crl_period(crls.root_crl, "root_ca_crl"),
        pki.crl_period(crls.pck_crl, "pck_crl"),
        pki.Period(
            "the TCB info",
            documents.tcb_info.issue_date,
            documents.tcb_info.next_update,
        ),
        pki.Period(
            "the QE identity",
            documents.qe_identity.issue_date,
            documents.qe_identity.next_update,
        ),
    ]
    return periods


def _check_quote_signatures(raw_quote: Quote, pck_leaf: x509.Certificate) -> None:
    # 5a. The PCK key signed the QE report (§1.5 step 1).
    pck_key = pck_leaf.public_key()
    try:
        if not isinstance(pck_key, ec.EllipticCurvePublicKey):
            raise InvalidSignature("the PCK certificate has no EC key")
        verify_raw_signature(
            pck_key, raw_quote.qe_report_signature, raw_quote.qe_report.raw
        )
    except InvalidSignature as exc:
        raise QuoteVerificationError(
            "the QE report is not signed by the PCK certificate's key"
        ) from exc

    # 5b. The QE report binds the attestation key and auth data (§1.5 step 2).
    expected = hashlib.sha256(
        raw_quote.attestation_key + raw_quote.qe_auth_data
    ).digest()
    bound = raw_quote.qe_report.report_data
    if bound[:32] != expected:
        raise QuoteVerificationError(
            f"the QE report data {bound[:32].hex()} is not SHA-256(attestation key "
            f"|| QE auth data) {expected.hex()}"
        )
    if any(bound[32:]):
        raise QuoteVerificationError(
            f"the upper half of the QE report data is {bound[32:].hex()}, not zero"
        )

    # 5c. The attestation key signed the header and report body (§1.5 step 3).
    try:
        attestation_key = p256_key_from_raw(raw_quote.attestation_key)
        verify_raw_signature(
            attestation_key, raw_quote.signature, raw_quote.signed_bytes
        )
    except (ValueError, InvalidSignature) as exc:
        raise QuoteVerificationError(
            "the quote is not signed by the attestation key the QE certified"
        ) from exc


def _check_tcb_info_matches(tcb_info: TcbInfo, extension: PckExtension) -> None:
    if tcb_info.fmspc != extension.fmspc:
        raise CollateralError(
            f"the TCB info is for FMSPC {tcb_info.fmspc.hex()}, the PCK "
            f"certificate's is {extension.fmspc.hex()}"
        )
    if tcb_info.pce_id != extension.pce_id:
        raise CollateralError(
            f"the TCB info is for PCE ID {tcb_info.pce_id.hex()}, the PCK "
            f"certificate's is {extension.pce_id.hex()}"
        )


def _masked(value: bytes, mask: bytes) -> bytes:
    return bytes(v & m for v, m in zip(value, mask, strict=True))


def _check_qe_identity(raw_quote: Quote, identity: QeIdentity) -> None:
    qe = raw_quote.qe_report
    if qe.mr_signer != identity.mrsigner:
        raise QuoteVerificationError(
            f"the QE's MRSIGNER {qe.mr_signer.hex()} is not the QE identity's "
            f"{identity.mrsigner.hex()}"
        )
    if qe.isv_prod_id != identity.isvprodid:
        raise QuoteVerificationError(
            f"the QE's ISVPRODID {qe.isv_prod_id} is not the QE identity's "
            f"{identity.isvprodid}"
        )
    misc = qe.raw[16:20]  # MISCSELECT in memory order, as the identity writes it
    if _masked(misc, identity.miscselect_mask) != _masked(
        identity.miscselect, identity.miscselect_mask
    ):
        raise QuoteVerificationError(
            f"the QE's MISCSELECT {misc.hex()} does not match the QE identity's "
            f"{identity.miscselect.hex()} under mask {identity.miscselect_mask.hex()}"
        )
    mask = identity.attributes_mask
    if _masked(qe.attributes, mask) != _masked(identity.attributes, mask):
        raise QuoteVerificationError(
            f"the QE's ATTRIBUTES {qe.attributes.hex()} do not match the QE "
            f"identity's {identity.attributes.hex()} under mask {mask.hex()}"
        )


def _claims(
    raw_quote: Quote,
    path: _PckPath,
    documents: _Documents,
    window: pki.Period,
    at: dt.datetime,
    root: x509.Certificate,
) -> VerifiedQuote:
    _, platform = match_platform_level(documents.tcb_info.levels, path.extension.tcb)
    _, qe_level = match_qe_level(
        documents.qe_identity.levels, raw_quote.qe_report.isv_svn
    )
    status = converge(platform.status, qe_level.status)
    if TcbStatus.REVOKED in (platform.status, qe_level.status):
        raise QuoteVerificationError(
            f"the TCB is Revoked (platform {platform.status}, QE {qe_level.status})"
        )
    report = raw_quote.report
    return VerifiedQuote(
        mr_enclave=report.mr_enclave,
        mr_signer=report.mr_signer,
        report_data=report.report_data,
        isv_prod_id=report.isv_prod_id,
        isv_svn=report.isv_svn,
        attributes=report.attributes,
        misc_select=report.misc_select,
        cpu_svn=report.cpu_svn,
        tcb_status=status,
        platform_tcb_status=platform.status,
        qe_tcb_status=qe_level.status,
        advisory_ids=tuple(sorted(set(platform.advisory_ids + qe_level.advisory_ids))),
        tcb_date=platform.tcb_date,
        tcb_evaluation_data_number=documents.tcb_info.evaluation_data_number,
        tcb_info_version=documents.tcb_info.version,
        fmspc=path.extension.fmspc.hex(),
        pce_id=path.extension.pce_id.hex(),
        qe_isv_svn=raw_quote.qe_report.isv_svn,
        collateral_valid_from=window.start,
        collateral_expires=window.end,
        verified_at=at,
        trusted_root_sha256=hashlib.sha256(root.public_bytes(Encoding.DER)).hexdigest(),
    )
