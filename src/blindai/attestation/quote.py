"""Parsing of Intel SGX ECDSA quotes, version 3 (DCAP-FORMATS.md §1).

Parsing is not verification: a :class:`Quote` is only well-formed. Every length is
checked against the bytes present, so a truncated, padded or foreign quote raises
:class:`~blindai.errors.QuoteFormatError` and never an ``IndexError`` or
``struct.error``. TDX quotes (versions 4 and 5, §2) are refused: BlindAI is SGX only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from blindai.errors import QuoteFormatError

QUOTE_VERSION_SGX = 3
ATTESTATION_KEY_ECDSA_P256 = 2
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

HEADER_SIZE = 48
REPORT_BODY_SIZE = 384
SIGNED_SIZE = HEADER_SIZE + REPORT_BODY_SIZE  # the attestation key signs [0, 432)
# Fixed part of the signature data: ISV signature, attestation key, QE report,
# QE report signature (§1.3).
_SIG_FIXED = 64 + 64 + REPORT_BODY_SIZE + 64

# Real quotes are under 5 KiB; the limit only keeps hostile input bounded.
MAX_QUOTE_SIZE = 64 * 1024

CERT_DATA_PCK_CHAIN = 5


@dataclass(frozen=True)
class ReportBody:
    """An SGX REPORT body (§1.2), as bytes and decoded fields; not verified."""

    raw: bytes
    cpu_svn: bytes
    misc_select: int
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes

    @classmethod
    def from_bytes(cls, raw: bytes) -> ReportBody:
        """Decode a 384-byte report body; raises :class:`QuoteFormatError`."""
        if len(raw) != REPORT_BODY_SIZE:
            raise QuoteFormatError(
                f"an SGX report body is {REPORT_BODY_SIZE} bytes, got {len(raw)}"
            )
        (misc_select,) = struct.unpack_from("<I", raw, 16)
        isv_prod_id, isv_svn = struct.unpack_from("<HH", raw, 256)
        return cls(
            raw=bytes(raw),
            cpu_svn=raw[0:16],
            misc_select=misc_select,
            attributes=raw[48:64],
            mr_enclave=raw[64:96],
            mr_signer=raw[128:160],
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            report_data=raw[320:384],
        )


@dataclass(frozen=True)
class Quote:
    """A well-formed SGX ECDSA quote v3 whose signatures are NOT yet verified.

    Build it with :meth:`from_bytes`; only :func:`verify_quote` turns its claims
    into a :class:`VerifiedQuote`.
    """

    raw: bytes
    version: int
    attestation_key_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes
    report: ReportBody
    signature: bytes
    attestation_key: bytes
    qe_report: ReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    cert_data_type: int
    cert_data: bytes

    @property
    def signed_bytes(self) -> bytes:
        """Header and report body: what the attestation key signs (§1.3)."""
        return self.raw[:SIGNED_SIZE]

    @classmethod
    def from_bytes(cls, raw_quote: bytes) -> Quote:
        """Parse an SGX quote v3; raises :class:`QuoteFormatError`.

        Refuses: other types than ``bytes``-like, more than ``MAX_QUOTE_SIZE``
        bytes, quote versions other than 3 (naming TDX for 4 and 5), a non-SGX TEE
        type, attestation keys other than ECDSA P-256, a QE vendor other than
        Intel, and any length field that disagrees with the bytes present.
        """
        if not isinstance(raw_quote, bytes | bytearray | memoryview):
            raise QuoteFormatError(
                f"the quote must be bytes, got {type(raw_quote).__name__}"
            )
        raw = bytes(raw_quote)
        if len(raw) > MAX_QUOTE_SIZE:
            raise QuoteFormatError(
                f"the quote is {len(raw)} bytes, more than the {MAX_QUOTE_SIZE} "
                "bytes allowed"
            )
        _check_header_kind(raw)
        if len(raw) < SIGNED_SIZE + 4:
            raise QuoteFormatError(
                f"the quote is truncated: {len(raw)} bytes, an SGX quote v3 has "
                f"at least {SIGNED_SIZE + 4 + _SIG_FIXED + 8}"
            )
        header = _parse_header(raw)
        (sig_len,) = struct.unpack_from("<I", raw, SIGNED_SIZE)
        if SIGNED_SIZE + 4 + sig_len != len(raw):
            raise QuoteFormatError(
                f"the quote's signature data length {sig_len} says the quote is "
                f"{SIGNED_SIZE + 4 + sig_len} bytes, but it is {len(raw)} "
                "(truncated or padded)"
            )
        signature_part = _parse_signature_data(raw[SIGNED_SIZE + 4 :])
        return cls(
            raw=raw,
            report=ReportBody.from_bytes(raw[HEADER_SIZE:SIGNED_SIZE]),
            **header,
            **signature_part,
        )


def _check_header_kind(raw: bytes) -> None:
    if len(raw) < 8:
        raise QuoteFormatError(
            f"the quote is truncated: {len(raw)} bytes, not even a header"
        )
    version, key_type, tee_type = struct.unpack_from("<HHI", raw, 0)
    if version in (4, 5) or tee_type == TEE_TYPE_TDX:
        raise QuoteFormatError(
            f"quote version {version} with TEE type {tee_type:#x} is a TDX quote; "
            "only SGX quotes (version 3) are supported"
        )
    if version != QUOTE_VERSION_SGX:
        raise QuoteFormatError(
            f"quote version {version} is not supported (expected SGX version 3)"
        )
    if tee_type != TEE_TYPE_SGX:
        raise QuoteFormatError(f"TEE type {tee_type:#x} is not SGX (0)")
    if key_type != ATTESTATION_KEY_ECDSA_P256:
        raise QuoteFormatError(
            f"attestation key type {key_type} is not ECDSA P-256 (2)"
        )


def _parse_header(raw: bytes) -> dict[str, Any]:
    version, key_type, _tee, qe_svn, pce_svn = struct.unpack_from("<HHIHH", raw, 0)
    vendor = raw[12:28]
    if vendor != INTEL_QE_VENDOR_ID:
        raise QuoteFormatError(
            f"QE vendor ID {vendor.hex()} is not Intel's {INTEL_QE_VENDOR_ID.hex()}"
        )
    return {
        "version": version,
        "attestation_key_type": key_type,
        "qe_svn": qe_svn,
        "pce_svn": pce_svn,
        "qe_vendor_id": vendor,
        "user_data": raw[28:48],
    }


def _parse_signature_data(data: bytes) -> dict[str, Any]:
    """Fields of the signature data (§1.3); every length checked exactly."""
    if len(data) < _SIG_FIXED + 2:
        raise QuoteFormatError(
            f"the quote's signature data is {len(data)} bytes, shorter than its "
            f"fixed part ({_SIG_FIXED + 2})"
        )
    offset = _SIG_FIXED
    (auth_len,) = struct.unpack_from("<H", data, offset)
    offset += 2
    if offset + auth_len + 6 > len(data):
        raise QuoteFormatError(
            f"QE authentication data of {auth_len} bytes overruns the quote"
        )
    auth_data = data[offset : offset + auth_len]
    offset += auth_len
    cert_type, cert_len = struct.unpack_from("<HI", data, offset)
    offset += 6
    if offset + cert_len != len(data):
        raise QuoteFormatError(
            f"certification data of {cert_len} bytes does not end the quote "
            f"({len(data) - offset} bytes are left for it)"
        )
    return {
        "signature": data[0:64],
        "attestation_key": data[64:128],
        "qe_report": ReportBody.from_bytes(data[128 : 128 + REPORT_BODY_SIZE]),
        "qe_report_signature": data[128 + REPORT_BODY_SIZE : _SIG_FIXED],
        "qe_auth_data": auth_data,
        "cert_data_type": cert_type,
        "cert_data": data[offset:],
    }
