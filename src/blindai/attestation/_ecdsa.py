"""ECDSA P-256 / SHA-256 with Intel's raw encodings (DCAP-FORMATS.md §1).

Quotes and the signed JSON documents carry signatures as ``r || s`` (32 + 32
bytes, big-endian) and public keys as ``x || y`` (64 bytes, no 0x04 prefix).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def p256_key_from_raw(xy: bytes) -> ec.EllipticCurvePublicKey:
    """Public key from 64 raw bytes; raises ``ValueError`` if not on the curve."""
    if len(xy) != 64:
        raise ValueError(f"a raw P-256 public key is 64 bytes, got {len(xy)}")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xy)


def verify_raw_signature(
    key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes
) -> None:
    """Check an ``r || s`` ECDSA-SHA256 signature; raises ``InvalidSignature``."""
    if len(signature) != 64:
        raise InvalidSignature(f"a raw signature is 64 bytes, got {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if r == 0 or s == 0:
        raise InvalidSignature("r or s is zero")
    key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
