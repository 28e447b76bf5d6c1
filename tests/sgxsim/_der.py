"""A minimal DER encoder for the few ASN.1 types Intel's SGX extension uses.

``cryptography`` builds certificates but not arbitrary ASN.1 values, so the PCK
certificate's SGX extension (OID 1.2.840.113741.1.13.1) is encoded here by hand:
a SEQUENCE of SEQUENCE{OID, value}, with INTEGER, OCTET STRING, ENUMERATED and
BOOLEAN values, as read from real PCK certificates with ``openssl asn1parse``.
"""

from __future__ import annotations

_SEQUENCE = 0x30
_OID = 0x06
_INTEGER = 0x02
_OCTET_STRING = 0x04
_ENUMERATED = 0x0A
_BOOLEAN = 0x01


def tlv(tag: int, value: bytes) -> bytes:
    """One DER element: tag, definite length, value."""
    length = len(value)
    if length < 0x80:
        return bytes([tag, length]) + value
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + value


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form."""
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(_OID, bytes(body))


def integer(value: int) -> bytes:
    """A non-negative INTEGER in its shortest two's-complement form."""
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {value}")
    size = value.bit_length() // 8 + 1
    return tlv(_INTEGER, value.to_bytes(size, "big"))


def enumerated(value: int) -> bytes:
    """An ENUMERATED (same content rules as INTEGER)."""
    return bytes([_ENUMERATED]) + integer(value)[1:]


def octet_string(value: bytes) -> bytes:
    """An OCTET STRING."""
    return tlv(_OCTET_STRING, value)


def boolean(value: bool) -> bytes:
    """A BOOLEAN (DER: 0xFF for true)."""
    return tlv(_BOOLEAN, b"\xff" if value else b"\x00")


def sequence(*items: bytes) -> bytes:
    """A SEQUENCE of already encoded elements."""
    return tlv(_SEQUENCE, b"".join(items))
