"""SGX ECDSA quotes, version 3, signed like Intel's Quoting Enclave signs them.

Layout (DCAP-FORMATS.md section 1): 48-byte header, 384-byte ISV report body, a
4-byte signature-data length, then the signature data: ISV signature by the
attestation key over bytes [0, 432), the attestation public key, the QE report, the
QE report signature by the PCK key, the QE authentication data and the
certification data (type 5: the PEM chain leaf, PCK CA, root, NUL-terminated as
real quotes are).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from .documents import raw_signature
from .pki import Issued

QUOTE_VERSION = 3
ECDSA_P256_KEY_TYPE = 2
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
HEADER_SIZE = 48
REPORT_BODY_SIZE = 384
SIGNED_SIZE = HEADER_SIZE + REPORT_BODY_SIZE
CERT_DATA_PCK_CHAIN = 5

FLAG_INIT = 0x01
FLAG_DEBUG = 0x02
FLAG_MODE64BIT = 0x04


def attributes(flags: int, xfrm: int) -> bytes:
    """The 16-byte ATTRIBUTES field: FLAGS then XFRM, little-endian."""
    return struct.pack("<QQ", flags, xfrm)


@dataclass(frozen=True)
class ReportFields:
    """The fields of an SGX report body (``sgx_report_body_t``)."""

    mr_enclave: bytes = hashlib.sha256(b"blindai test enclave").digest()
    mr_signer: bytes = hashlib.sha256(b"blindai test enclave signer").digest()
    attributes: bytes = attributes(FLAG_INIT | FLAG_MODE64BIT, 0x03)
    misc_select: int = 0
    isv_prod_id: int = 0
    isv_svn: int = 0
    cpusvn: bytes = bytes(16)
    isv_ext_prod_id: bytes = bytes(16)
    config_id: bytes = bytes(64)
    config_svn: int = 0
    isv_family_id: bytes = bytes(16)

    def body(self, report_data: bytes) -> bytes:
        """The 384-byte report body carrying ``report_data`` (64 bytes)."""
        _expect_size("report data", report_data, 64)
        _expect_size("MRENCLAVE", self.mr_enclave, 32)
        _expect_size("MRSIGNER", self.mr_signer, 32)
        _expect_size("ATTRIBUTES", self.attributes, 16)
        _expect_size("CPUSVN", self.cpusvn, 16)
        body = b"".join(
            [
                self.cpusvn,
                struct.pack("<I", self.misc_select),
                bytes(12),
                self.isv_ext_prod_id,
                self.attributes,
                self.mr_enclave,
                bytes(32),
                self.mr_signer,
                bytes(32),
                self.config_id,
                struct.pack("<HHH", self.isv_prod_id, self.isv_svn, self.config_svn),
                bytes(42),
                self.isv_family_id,
                report_data,
            ]
        )
        assert len(body) == REPORT_BODY_SIZE
        return body


def _expect_size(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")


TEST_QE = ReportFields(
    mr_enclave=hashlib.sha256(b"blindai test quoting enclave").digest(),
    mr_signer=hashlib.sha256(b"blindai test quoting enclave signer").digest(),
    attributes=attributes(0x15, 0x07),
    isv_prod_id=1,
    isv_svn=8,
)


@dataclass
class QuoteBuilder:
    """Signs quotes for one platform: its PCK key and chain, its QE, its att key.

    ``pck_chain_pem`` is the certification data: leaf, PCK CA and root as PEM.
    """

    pck: Issued
    pck_chain_pem: bytes
    qe: ReportFields = TEST_QE
    attestation_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    qe_svn: int = 8
    pce_svn: int = 11
    qe_auth_data: bytes = bytes(range(32))
    user_data: bytes = bytes(20)
    nul_terminate: bool = True

    def attestation_public_key(self) -> bytes:
        """The raw 64-byte ``x || y`` of the attestation key."""
        numbers = self.attestation_key.public_key().public_numbers()
        return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")

    def header(self) -> bytes:
        """The 48-byte quote header."""
        fixed = struct.pack(
            "<HHIHH", QUOTE_VERSION, ECDSA_P256_KEY_TYPE, 0, self.qe_svn, self.pce_svn
        )
        header = fixed + INTEL_QE_VENDOR_ID + self.user_data
        assert len(header) == HEADER_SIZE
        return header

    def qe_report(self) -> bytes:
        """The QE report binding the attestation key (and the QE auth data)."""
        digest = hashlib.sha256(self.attestation_public_key() + self.qe_auth_data)
        return self.qe.body(digest.digest() + bytes(32))

    def certification_data(self) -> bytes:
        """Type-5 certification data: the PEM chain, NUL-terminated."""
        return self.pck_chain_pem + (b"\x00" if self.nul_terminate else b"")

    def build(self, report_data: bytes, enclave: ReportFields) -> bytes:
        """A complete quote for ``enclave`` carrying ``report_data`` (64 bytes)."""
        signed = self.header() + enclave.body(report_data)
        qe_report = self.qe_report()
        cert_data = self.certification_data()
        signature_data = b"".join(
            [
                raw_signature(self.attestation_key, signed),
                self.attestation_public_key(),
                qe_report,
                raw_signature(self.pck.key, qe_report),
                struct.pack("<H", len(self.qe_auth_data)),
                self.qe_auth_data,
                struct.pack("<HI", CERT_DATA_PCK_CHAIN, len(cert_data)),
                cert_data,
            ]
        )
        return signed + struct.pack("<I", len(signature_data)) + signature_data
