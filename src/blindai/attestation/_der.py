"""A tiny DER reader, just enough for the SGX extension of PCK certificates.

`cryptography` hands us the SGX extension (OID 1.2.840.113741.1.13.1) as raw DER
(an ``UnrecognizedExtension``), so its inner SEQUENCE of (OID, value) pairs is read
here. Only definite-length, single-byte-tag DER is accepted; anything else raises
``ValueError``, which callers translate into an :class:`AttestationError`.
"""

from __future__ import annotations

from dataclasses import dataclass

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30

# The SGX extension is a few hundred bytes; refuse absurd lengths early.
_MAX_LENGTH = 1 << 16


@dataclass(frozen=True)
class Tlv:
    """One DER element: its tag and the bytes of its content."""

    tag: int
    content: bytes


def read_all(data: bytes) -> list[Tlv]:
    """Split ``data`` into consecutive DER elements; raises ``ValueError``."""
    elements = []
    offset = 0
    while offset < len(data):
        element, offset = _read_one(data, offset)
        elements.append(element)
    return elements


def read_single(data: bytes, tag: int) -> Tlv:
    """The single element ``data`` consists of, which must carry ``tag``."""
    elements = read_all(data)
    if len(elements) != 1 or elements[0].tag != tag:
        raise ValueError(f"expected one DER element with tag {tag:#04x}")
    return elements[0]


def _read_one(data: bytes, offset: int) -> tuple[Tlv, int]:
    if offset + 2 > len(data):
        raise ValueError("truncated DER header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not supported")
    first = data[offset + 1]
    offset += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or offset + count > len(data):
            raise ValueError("unsupported or truncated DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if length > _MAX_LENGTH or offset + length > len(data):
        raise ValueError("DER element longer than its container")
    return Tlv(tag, data[offset : offset + length]), offset + length


def decode_oid(content: bytes) -> str:
    """Dotted string of an OBJECT IDENTIFIER's content bytes."""
    if not content or content[-1] & 0x80:
        raise ValueError("malformed OID")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def decode_unsigned(content: bytes) -> int:
    """Value of a non-negative INTEGER or ENUMERATED's content bytes."""
    if not content or content[0] & 0x80:
        raise ValueError("empty or negative DER integer")
    return int.from_bytes(content, "big")


def oid_value_pairs(sequence_content: bytes) -> dict[str, Tlv]:
    """Map OID -> value for a SEQUENCE OF SEQUENCE { OID, value }."""
    pairs: dict[str, Tlv] = {}
    for item in read_all(sequence_content):
        if item.tag != TAG_SEQUENCE:
            raise ValueError("expected a SEQUENCE of (OID, value)")
        parts = read_all(item.content)
        if len(parts) != 2 or parts[0].tag != TAG_OID:
            raise ValueError("expected an (OID, value) pair")
        oid = decode_oid(parts[0].content)
        if oid in pairs:
            raise ValueError(f"duplicate OID {oid}")
        pairs[oid] = parts[1]
    return pairs
