"""The SGX extension of a PCK certificate (DCAP-FORMATS.md §3).

The extension (OID 1.2.840.113741.1.13.1) is a SEQUENCE of (OID, value) pairs; the
platform's TCB (16 component SVNs and the PCESVN), its PCE ID and its FMSPC are
what TCB-level matching and the TCB info selection rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from blindai.attestation import _der
from blindai.attestation.pki import extensions
from blindai.attestation.tcb import PlatformTcb
from blindai.errors import CollateralError

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_TCB = SGX_EXTENSION_OID + ".2"
_PCE_ID = SGX_EXTENSION_OID + ".3"
_FMSPC = SGX_EXTENSION_OID + ".4"
_SGX_TYPE = SGX_EXTENSION_OID + ".5"
_PCESVN = _TCB + ".17"
_CPUSVN = _TCB + ".18"


@dataclass(frozen=True)
class PckExtension:
    """What the PCK certificate says about the platform."""

    tcb: PlatformTcb
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int | None


def read_pck_extension(cert: x509.Certificate) -> PckExtension:
    """Decode the SGX extension of ``cert``; raises :class:`CollateralError`."""
    try:
        extension = extensions(cert, "the PCK certificate").get_extension_for_oid(
            x509.ObjectIdentifier(SGX_EXTENSION_OID)
        )
    except x509.ExtensionNotFound:
        raise CollateralError(
            f"the PCK certificate has no SGX extension ({SGX_EXTENSION_OID})"
        ) from None
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise CollateralError("the PCK certificate's SGX extension is not raw DER")
    try:
        return _decode(value.value)
    except (ValueError, KeyError) as exc:
        raise CollateralError(
            f"the PCK certificate's SGX extension is malformed: {exc}"
        ) from exc


def _decode(der: bytes) -> PckExtension:
    top = _der.read_single(der, _der.TAG_SEQUENCE)
    fields = _der.oid_value_pairs(top.content)
    tcb_fields = _der.oid_value_pairs(_expect(fields, _TCB, _der.TAG_SEQUENCE))
    components = tuple(
        _svn(_expect(tcb_fields, f"{_TCB}.{i}", _der.TAG_INTEGER), f"component {i}")
        for i in range(1, 17)
    )
    pce_svn = _der.decode_unsigned(_expect(tcb_fields, _PCESVN, _der.TAG_INTEGER))
    if pce_svn > 0xFFFF:
        raise ValueError(f"PCESVN {pce_svn} does not fit 16 bits")
    sgx_type = None
    if _SGX_TYPE in fields:
        sgx_type = _der.decode_unsigned(_expect(fields, _SGX_TYPE, _der.TAG_ENUMERATED))
    return PckExtension(
        tcb=PlatformTcb(components=components, pce_svn=pce_svn),
        cpu_svn=_fixed(tcb_fields, _CPUSVN, 16),
        pce_id=_fixed(fields, _PCE_ID, 2),
        fmspc=_fixed(fields, _FMSPC, 6),
        sgx_type=sgx_type,
    )


def _expect(fields: dict[str, _der.Tlv], oid: str, tag: int) -> bytes:
    if oid not in fields:
        raise ValueError(f"{oid} is missing")
    if fields[oid].tag != tag:
        raise ValueError(f"{oid} has DER tag {fields[oid].tag:#04x}, not {tag:#04x}")
    return fields[oid].content


def _fixed(fields: dict[str, _der.Tlv], oid: str, size: int) -> bytes:
    content = _expect(fields, oid, _der.TAG_OCTET_STRING)
    if len(content) != size:
        raise ValueError(f"{oid} is {len(content)} bytes, expected {size}")
    return content


def _svn(content: bytes, name: str) -> int:
    value = _der.decode_unsigned(content)
    if value > 255:
        raise ValueError(f"TCB {name} SVN {value} does not fit a byte")
    return value
