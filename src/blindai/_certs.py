"""Certificate helpers shared by the client and the server.

The enclave's TLS certificate carries the Ed25519 key that signs responses in a
non-critical extension (OID 1.3.6.1.3.2) whose value is the raw 32-byte public key,
as BlindAI 0.3 did.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

ENCLAVE_SIGNING_KEY_OID = x509.ObjectIdentifier("1.3.6.1.3.2")
DEFAULT_SERVER_NAME = "blindai-srv"


def self_signed_certificate(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    dns_name: str = DEFAULT_SERVER_NAME,
    signing_key: Ed25519PublicKey | None = None,
    days: int = 3650,
) -> x509.Certificate:
    """A self-signed certificate for ``key`` with ``dns_name`` as its SAN.

    With ``signing_key``, the certificate also carries the raw Ed25519 public key in
    the response-signing extension.
    """
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    )
    if signing_key is not None:
        raw = signing_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ENCLAVE_SIGNING_KEY_OID, raw), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def load_certificate(data: bytes) -> x509.Certificate:
    """Load a certificate given as DER or PEM; raises ``ValueError``."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def signing_key_from_certificate(data: bytes) -> Ed25519PublicKey:
    """The Ed25519 response-signing key carried by an enclave certificate.

    Raises ``ValueError`` when the certificate cannot be parsed or has no valid key.
    """
    cert = load_certificate(data)
    try:
        ext = cert.extensions.get_extension_for_oid(ENCLAVE_SIGNING_KEY_OID)
    except x509.ExtensionNotFound:
        raise ValueError(
            "the enclave certificate has no response-signing key "
            f"(extension {ENCLAVE_SIGNING_KEY_OID.dotted_string})"
        ) from None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    if len(raw) != 32:
        raise ValueError(
            f"the response-signing key is {len(raw)} bytes long, expected 32"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def der_to_pem(der: bytes) -> bytes:
    """PEM text of a DER certificate (what gRPC takes as a trust root)."""
    return load_certificate(der).public_bytes(serialization.Encoding.PEM)
