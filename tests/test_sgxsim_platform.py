"""The synthetic SGX platform produces evidence with the real formats.

Structure is checked against DCAP-FORMATS.md (offsets, sizes, encodings), the
signatures with ``cryptography`` directly, and the whole evidence with dcap-qvl
0.7.0, an independent DCAP verifier (it reads TCB info v3, i.e. API v4 collateral).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sgxsim import PckInfo, SgxPlatform, TestPki
from sgxsim.documents import default_tcb_levels, signed_body_bytes
from sgxsim.oracle import dcap_qvl_verify
from sgxsim.pki import SGX_EXTENSION_OID
from sgxsim.quote import INTEL_QE_VENDOR_ID

pytestmark = pytest.mark.sgx_sim

REPORT_DATA = bytes(range(64))
SECOND = dt.timedelta(seconds=1)


@pytest.fixture(scope="module")
def platform() -> SgxPlatform:
    return SgxPlatform()


@pytest.fixture(scope="module")
def quote(platform: SgxPlatform) -> bytes:
    return platform.make_quote(REPORT_DATA, isv_svn=3, isv_prod_id=7)


def _verify_raw(public_key: ec.EllipticCurvePublicKey, sig: bytes, data: bytes) -> None:
    der = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
    public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))


def _point(raw: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)


# -- quote layout ------------------------------------------------------------


def test_quote_header_and_report_body_offsets(quote: bytes) -> None:
    version, key_type, tee, qe_svn, pce_svn = struct.unpack_from("<HHIHH", quote)
    assert (version, key_type, tee) == (3, 2, 0)
    assert quote[12:28] == INTEL_QE_VENDOR_ID
    assert quote[368:432] == REPORT_DATA
    assert quote[112:144] == hashlib.sha256(b"blindai test enclave").digest()
    assert struct.unpack_from("<HH", quote, 48 + 256) == (7, 3)
    assert struct.unpack_from("<I", quote, 432)[0] == len(quote) - 436


def test_quote_signatures_chain_to_the_pck_key(
    quote: bytes, platform: SgxPlatform
) -> None:
    att_key = quote[500:564]
    _verify_raw(_point(att_key), quote[436:500], quote[:432])
    qe_report = quote[564:948]
    pck_key = platform.pck.certificate.public_key()
    assert isinstance(pck_key, ec.EllipticCurvePublicKey)
    _verify_raw(pck_key, quote[948:1012], qe_report)
    auth_size = struct.unpack_from("<H", quote, 1012)[0]
    auth = quote[1014 : 1014 + auth_size]
    assert auth_size == 32
    assert qe_report[320:352] == hashlib.sha256(att_key + auth).digest()
    assert qe_report[352:384] == bytes(32)


def test_certification_data_is_a_nul_terminated_pem_chain(
    quote: bytes, platform: SgxPlatform
) -> None:
    cert_type, size = struct.unpack_from("<HI", quote, 1046)
    data = quote[1052 : 1052 + size]
    assert cert_type == 5 and 1052 + size == len(quote)
    assert data.endswith(b"-----END CERTIFICATE-----\n\x00")
    chain = x509.load_pem_x509_certificates(data.rstrip(b"\x00"))
    assert [c.subject for c in chain] == [
        platform.pck.certificate.subject,
        platform.pki.processor_ca.certificate.subject,
        platform.pki.root.certificate.subject,
    ]
    for child, parent in zip(chain, chain[1:], strict=False):
        child.verify_directly_issued_by(parent)


# -- PKI ---------------------------------------------------------------------


def test_sgx_extension_is_encoded_like_intels() -> None:
    """Same bytes as the 0.3 fixture's PCK extension, PPID aside."""
    fixture_hex = (
        "308201c1301e060a2a864886f84d010d01010410" + "4479a28f74ec8cce3a0c670f9b09bdfa"
    )
    info = PckInfo(ppid=bytes.fromhex("4479a28f74ec8cce3a0c670f9b09bdfa"))
    der = info.extension_der("processor")
    assert der.hex().startswith(fixture_hex)
    assert der.hex().endswith(
        "3014060a2a864886f84d010d0104040600906ea10000300f060a2a864886f84d010d01050a0100"
    )
    assert len(der) == 4 + 0x1C1


def test_pck_certificate_carries_the_extension_non_critical() -> None:
    pki = TestPki()
    pck = pki.issue_pck(ca="platform")
    ext = pck.certificate.extensions.get_extension_for_oid(
        x509.ObjectIdentifier(SGX_EXTENSION_OID)
    )
    assert not ext.critical
    assert b"\x0a\x01\x01" in ext.value.value  # SGX Type 1 on the Platform CA
    pck.certificate.verify_directly_issued_by(pki.platform_ca.certificate)
    assert "Test" in pki.root.certificate.subject.rfc4514_string()


def test_crl_lists_a_revoked_serial_and_parses_from_crlf_pem() -> None:
    platform = SgxPlatform()
    platform.pki.revoke(platform.pck.serial, issuer="processor")
    collateral = platform.collateral()
    assert "\r\n" in collateral.pck_crl
    crl = x509.load_pem_x509_crl(collateral.pck_crl.encode())
    assert crl.get_revoked_certificate_by_serial_number(platform.pck.serial)
    assert crl.is_signature_valid(platform.pki.processor_ca.key.public_key())


# -- documents -----------------------------------------------------------------


@pytest.mark.parametrize("api_version, tcb_version", [(3, 2), (4, 3)])
def test_documents_are_signed_over_their_exact_bytes(
    platform: SgxPlatform, api_version: int, tcb_version: int
) -> None:
    collateral = platform.collateral(api_version=api_version)
    key = platform.pki.tcb_signing.certificate.public_key()
    for text, member in [
        (collateral.tcb_info, "tcbInfo"),
        (collateral.qe_identity, "enclaveIdentity"),
    ]:
        signature = bytes.fromhex(json.loads(text)["signature"])
        _verify_raw(key, signature, signed_body_bytes(text, member))
    tcb = json.loads(collateral.tcb_info)["tcbInfo"]
    assert tcb["version"] == tcb_version
    assert tcb["fmspc"] == "00906ea10000"
    statuses = [level["tcbStatus"] for level in tcb["tcbLevels"]]
    assert statuses[:3] == ["UpToDate", "SWHardeningNeeded", "OutOfDate"]
    qe = json.loads(collateral.qe_identity)["enclaveIdentity"]
    assert (qe["id"], qe["version"], qe["isvprodid"]) == ("QE", 2, 1)


def test_collateral_fields_are_filled_like_a_0_3_server(platform: SgxPlatform) -> None:
    collateral = platform.collateral()
    assert collateral.version == 3
    for name in ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "pck_signing_chain"):
        assert (
            len(x509.load_pem_x509_certificates(getattr(collateral, name).encode()))
            == 2
        )
    leaf = x509.load_pem_x509_certificate(collateral.pck_certificate.encode())
    assert leaf == platform.pck.certificate
    x509.load_pem_x509_crl(collateral.root_ca_crl.encode())


# -- the whole evidence, through an independent verifier ---------------------


def _oracle(platform: SgxPlatform, quote: bytes, at: dt.datetime, **fields: str):
    collateral = platform.collateral(api_version=4, crlf=False, **fields)
    return dcap_qvl_verify(quote, collateral, platform.pki.root.der, at)


def test_dcap_qvl_says_up_to_date(platform: SgxPlatform, quote: bytes) -> None:
    assert _oracle(platform, quote, platform.at) == ("UpToDate", [])


def test_dcap_qvl_says_up_to_date_on_a_platform_ca_pck() -> None:
    platform = SgxPlatform(ca_type="platform")
    assert _oracle(platform, platform.make_quote(), platform.at)[0] == "UpToDate"


def test_dcap_qvl_reports_the_sw_hardening_level_and_its_advisory() -> None:
    platform = SgxPlatform()
    info = platform.pck_info
    platform.tcb_levels = default_tcb_levels(
        info.cpusvn, info.pcesvn + 1, at=platform.at
    )
    status = _oracle(platform, platform.make_quote(), platform.at)
    assert status == ("SWHardeningNeeded", ["INTEL-SA-00615"])


def test_attack_expired_tcb_info_is_refused(
    platform: SgxPlatform, quote: bytes
) -> None:
    end = platform.at + dt.timedelta(hours=1)
    tcb_info = platform.tcb_info(next_update=end)
    assert _oracle(platform, quote, end, tcb_info=tcb_info)[0] == "UpToDate"
    with pytest.raises(ValueError, match="(?i)expired"):
        _oracle(platform, quote, end + SECOND, tcb_info=tcb_info)


def test_attack_revoked_pck_is_refused() -> None:
    platform = SgxPlatform()
    platform.pki.revoke(platform.pck.serial, issuer="processor")
    with pytest.raises(ValueError):
        _oracle(platform, platform.make_quote(), platform.at)


def test_attack_evidence_from_another_root_is_refused(
    platform: SgxPlatform, quote: bytes
) -> None:
    other = TestPki()
    collateral = platform.collateral(api_version=4, crlf=False)
    with pytest.raises(ValueError):
        dcap_qvl_verify(quote, collateral, other.root.der, platform.at)
