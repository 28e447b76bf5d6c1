"""Certificates, CRLs and validity periods of the collateral (DCAP-FORMATS.md §3, §7).

Everything here translates `cryptography`'s exceptions into
:class:`~blindai.errors.CollateralError` with the object's name in the message.
Intel's SGX Root CA ships with the package and is pinned by the SHA-256 of its DER;
any other root may be passed explicitly (test platforms), and the caller decides
whether to warn about it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.resources
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from blindai.errors import CollateralError, CollateralExpiredError

INTEL_SGX_ROOT_CA_FILE = "intel_sgx_root_ca.pem"
INTEL_SGX_ROOT_CA_SHA256 = (
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
)

# gRPC refuses messages over 4 MiB, so no honest collateral field is larger.
MAX_FIELD_SIZE = 4 * 1024 * 1024


def field_bytes(value: str | bytes | None, name: str) -> bytes:
    """A collateral field as bytes (UTF-8 for text), bounded in size."""
    if value is None:
        return b""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(data) > MAX_FIELD_SIZE:
        raise CollateralError(
            f"{name} is {len(data)} bytes, more than the {MAX_FIELD_SIZE} allowed"
        )
    return data


def load_pem_chain(value: str | bytes | None, name: str) -> list[x509.Certificate]:
    """Certificates of a PEM chain (LF or CRLF, maybe NUL-terminated), in order."""
    data = field_bytes(value, name).rstrip(b"\x00")
    if not data.strip():
        raise CollateralError(f"{name} is empty")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CollateralError(f"{name} is not a PEM certificate chain: {exc}") from exc


def load_crl(value: str | bytes | None, name: str) -> x509.CertificateRevocationList:
    """A CRL given as PEM or DER (bytes), or as PEM, hex DER or latin-1 DER text."""
    if isinstance(value, str) and not value.lstrip().startswith("-----BEGIN"):
        value = _text_to_der(value)
    data = field_bytes(value, name)
    if not data.strip():
        raise CollateralError(f"{name} is empty")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CollateralError(f"{name} is not a PEM or DER CRL: {exc}") from exc


def _text_to_der(text: str) -> bytes:
    stripped = text.strip()
    try:
        return bytes.fromhex(stripped)
    except ValueError:
        pass
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


@functools.lru_cache(maxsize=8)
def load_trusted_root(pem: bytes | None) -> x509.Certificate:
    """The trust anchor: Intel's pinned SGX Root CA when ``pem`` is None.

    Cached, since the same root serves every verification. The root must be a
    self-signed CA certificate with a P-256 key.
    """
    if pem is None:
        pem = _intel_root_pem()
    try:
        roots = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CollateralError(f"the trusted root is not PEM: {exc}") from exc
    if len(roots) != 1:
        raise CollateralError(
            f"the trusted root PEM holds {len(roots)} certificates, expected 1"
        )
    root = roots[0]
    check_ca(root, "the trusted root")
    check_issued_by(root, root, "the trusted root (self-signed)")
    return root


def _intel_root_pem() -> bytes:
    pem = (
        importlib.resources.files("blindai.attestation")
        .joinpath(INTEL_SGX_ROOT_CA_FILE)
        .read_bytes()
    )
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    fingerprint = hashlib.sha256(der).hexdigest()
    if fingerprint != INTEL_SGX_ROOT_CA_SHA256:
        raise CollateralError(
            f"the packaged Intel SGX Root CA has SHA-256 {fingerprint}, not the "
            f"pinned {INTEL_SGX_ROOT_CA_SHA256}: the installation is corrupt"
        )
    return pem


def describe(cert: x509.Certificate) -> str:
    """A short human name for a certificate: its subject CN and serial."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else cert.subject.rfc4514_string()
    return f"'{common_name}' (serial {cert.serial_number:x})"


def extensions(cert: x509.Certificate, name: str) -> x509.Extensions:
    """``cert``'s extensions, parsed; raises :class:`CollateralError`.

    cryptography parses them on first access and raises ``DuplicateExtension``
    (not a ``ValueError``) or ``ValueError``; this runs before any signature on
    ``cert`` is checked, so a host can send either.
    """
    try:
        return cert.extensions
    except (x509.DuplicateExtension, ValueError) as exc:
        raise CollateralError(
            f"{name} {describe(cert)} has malformed extensions: {exc}"
        ) from exc


def check_ca(cert: x509.Certificate, name: str) -> None:
    """``cert`` must say it is a CA (basicConstraints cA=TRUE)."""
    try:
        constraints = extensions(cert, name).get_extension_for_class(
            x509.BasicConstraints
        )
    except x509.ExtensionNotFound:
        raise CollateralError(
            f"{name} {describe(cert)} has no basicConstraints: not a CA"
        ) from None
    if not constraints.value.ca:
        raise CollateralError(f"{name} {describe(cert)} is not a CA certificate")


def check_not_ca(cert: x509.Certificate, name: str) -> None:
    """``cert`` is an end-entity certificate: no basicConstraints cA=TRUE."""
    try:
        constraints = extensions(cert, name).get_extension_for_class(
            x509.BasicConstraints
        )
    except x509.ExtensionNotFound:
        return
    if constraints.value.ca:
        raise CollateralError(f"{name} {describe(cert)} is a CA, not a leaf")


def check_issued_by(
    cert: x509.Certificate, issuer: x509.Certificate, name: str
) -> None:
    """``issuer`` is named as ``cert``'s issuer and signed it (ECDSA)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CollateralError(
            f"{name} {describe(cert)} is not signed by {describe(issuer)} "
            f"(issuer {cert.issuer.rfc4514_string()}): {exc or 'bad signature'}"
        ) from exc


def check_crl_issued_by(
    crl: x509.CertificateRevocationList, issuer: x509.Certificate, name: str
) -> None:
    """The CRL names ``issuer`` and carries a valid signature by its key."""
    if crl.issuer != issuer.subject:
        raise CollateralError(
            f"{name} is issued by {crl.issuer.rfc4514_string()}, not by "
            f"{describe(issuer)}"
        )
    public_key = issuer.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CollateralError(f"{describe(issuer)} has no EC key to check {name}")
    if not crl.is_signature_valid(public_key):
        raise CollateralError(f"{name} is not signed by {describe(issuer)}")


def check_not_revoked(
    crl: x509.CertificateRevocationList, cert: x509.Certificate, name: str
) -> None:
    """``cert`` is not listed on ``crl`` (whose issuer was checked already)."""
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is not None:
        raise CollateralError(
            f"{name} {describe(cert)} is revoked since "
            f"{entry.revocation_date_utc.isoformat()}"
        )


@dataclass(frozen=True)
class Period:
    """When one piece of collateral is valid: ``start <= t <= end``."""

    name: str
    start: dt.datetime
    end: dt.datetime


def certificate_period(cert: x509.Certificate, name: str) -> Period:
    """Validity of a certificate: notBefore to notAfter."""
    return Period(
        f"{name} {describe(cert)}", cert.not_valid_before_utc, cert.not_valid_after_utc
    )


def crl_period(crl: x509.CertificateRevocationList, name: str) -> Period:
    """Validity of a CRL: thisUpdate to nextUpdate (which must be present)."""
    if crl.next_update_utc is None:
        raise CollateralError(f"{name} has no nextUpdate")
    return Period(name, crl.last_update_utc, crl.next_update_utc)


def check_periods(periods: Iterable[Period], at: dt.datetime) -> Period:
    """Every period contains ``at``; returns the intersection of them all.

    Stricter than Intel's QVL on purpose: not-yet-valid collateral is refused too.
    Raises :class:`CollateralExpiredError` naming the first offending object.
    """
    periods = list(periods)
    for period in periods:
        if at < period.start:
            raise CollateralExpiredError(
                f"{period.name} is not valid before {period.start.isoformat()}; "
                f"the verification instant is {at.isoformat()}"
            )
        if at > period.end:
            raise CollateralExpiredError(
                f"{period.name} expired at {period.end.isoformat()}; the "
                f"verification instant is {at.isoformat()}"
            )
    start = max(periods, key=lambda p: p.start)
    end = min(periods, key=lambda p: p.end)
    return Period(f"{start.name} .. {end.name}", start.start, end.end)
