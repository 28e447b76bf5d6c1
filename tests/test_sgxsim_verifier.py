"""Our synthetic evidence through our DCAP verifier (``blindai.attestation``).

Each negative case is the attack it stands for, made on the synthetic platform
and checked one second either side of the boundary where there is one.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sgxsim import SgxPlatform, TestPki
from sgxsim.documents import default_tcb_levels
from sgxsim.pki import crl_pem

from blindai.attestation import TcbStatus, verify_attestation, verify_quote
from blindai.attestation.policy import Policy
from blindai.errors import AttestationError, CollateralError, QuoteVerificationError
from blindai.pb import untrusted_pb2

pytestmark = pytest.mark.sgx_sim

SECOND = dt.timedelta(seconds=1)


@pytest.fixture(scope="module")
def platform() -> SgxPlatform:
    return SgxPlatform()


def _verify(platform: SgxPlatform, quote: bytes, at: dt.datetime | None = None, **kw):
    collateral = kw.pop("collateral", None) or platform.collateral(**kw)
    return verify_quote(
        quote, collateral, at=at or platform.at, trusted_root=platform.root_pem
    )


@pytest.mark.parametrize("api_version", [3, 4])
@pytest.mark.parametrize("ca_type", ["processor", "platform"])
def test_synthetic_evidence_is_up_to_date(api_version: int, ca_type: str) -> None:
    platform = SgxPlatform(ca_type=ca_type)
    verified = _verify(platform, platform.make_quote(), api_version=api_version)
    assert verified.tcb_status == TcbStatus.UP_TO_DATE
    assert verified.tcb_info_version == (2 if api_version == 3 else 3)
    assert verified.fmspc == "00906ea10000"


def test_claims_are_the_report_fields(platform: SgxPlatform) -> None:
    quote = platform.make_quote(b"\x07" * 64, isv_prod_id=5, isv_svn=9)
    verified = _verify(platform, quote)
    assert verified.report_data == b"\x07" * 64
    assert (verified.isv_prod_id, verified.isv_svn) == (5, 9)


def test_sw_hardening_level_carries_its_advisory() -> None:
    platform = SgxPlatform()
    info = platform.pck_info
    platform.tcb_levels = default_tcb_levels(
        info.cpusvn, info.pcesvn + 1, at=platform.at
    )
    verified = _verify(platform, platform.make_quote(), api_version=4)
    assert verified.tcb_status == TcbStatus.SW_HARDENING_NEEDED
    assert "INTEL-SA-00615" in verified.advisory_ids


def test_attack_expired_tcb_info(platform: SgxPlatform) -> None:
    end = platform.at + dt.timedelta(hours=2)
    quote = platform.make_quote()
    tcb_info = platform.tcb_info(version=2, next_update=end)
    _verify(platform, quote, end, tcb_info=tcb_info)
    with pytest.raises(CollateralError):
        _verify(platform, quote, end + SECOND, tcb_info=tcb_info)


def test_attack_expired_tcb_signing_certificate() -> None:
    platform = SgxPlatform()
    end = platform.at + dt.timedelta(hours=2)
    platform.pki.tcb_signing = platform.pki.issue_tcb_signing(not_after=end)
    quote = platform.make_quote()
    _verify(platform, quote, end)
    with pytest.raises(CollateralError):
        _verify(platform, quote, end + SECOND)


def test_attack_revoked_pck_certificate() -> None:
    platform = SgxPlatform()
    quote = platform.make_quote()
    platform.pki.revoke(platform.pck.serial, issuer="processor")
    with pytest.raises(AttestationError, match="(?i)revoked"):
        _verify(platform, quote)


def test_attack_pck_crl_from_the_other_ca(platform: SgxPlatform) -> None:
    other = platform.pki.crl("platform")
    collateral = platform.collateral(pck_crl=crl_pem(other).decode())
    with pytest.raises(AttestationError):
        _verify(platform, platform.make_quote(), collateral=collateral)


def test_attack_evidence_from_another_root(platform: SgxPlatform) -> None:
    quote = platform.make_quote()
    with pytest.raises(AttestationError):
        verify_quote(
            quote,
            platform.collateral(),
            at=platform.at,
            trusted_root=TestPki().root.pem,
        )


def test_attack_test_evidence_against_intels_pinned_root(platform: SgxPlatform) -> None:
    with pytest.raises(AttestationError):
        verify_quote(platform.make_quote(), platform.collateral(), at=platform.at)


def test_attack_tcb_info_signed_by_another_key(platform: SgxPlatform) -> None:
    forged = platform.tcb_info(version=2, signer=TestPki().tcb_signing)
    with pytest.raises(AttestationError):
        _verify(platform, platform.make_quote(), tcb_info=forged)


def test_attack_quote_from_another_quoting_enclave(platform: SgxPlatform) -> None:
    identity = platform.qe_identity(mrsigner=hashlib.sha256(b"other QE").digest())
    with pytest.raises(QuoteVerificationError):
        _verify(platform, platform.make_quote(), qe_identity=identity)


def test_verify_attestation_binds_the_enclave_certificate(
    platform: SgxPlatform,
) -> None:
    held = b"enclave certificate DER stand-in"
    report_data = hashlib.sha256(held).digest() + bytes(32)
    quote = platform.make_quote(report_data)
    reply = untrusted_pb2.GetSgxQuoteWithCollateralReply(
        quote=quote, collateral=platform.collateral(), enclave_held_data=held
    )
    policy = Policy.from_dict(
        {
            "mr_enclave": quote[112:144].hex(),
            "misc_select_hex": "0x0",
            "misc_mask_hex": "0xffffffff",
            "attributes_flags_hex": "0x4",
            "attributes_xfrm_hex": "0x3",
            "attributes_mask_flags_hex": "0xfffffffffffffffd",
            "attributes_mask_xfrm_hex": "0xffffffffffffff1b",
            "allow_debug": False,
        }
    )
    kw = {"at": platform.at, "trusted_root": platform.root_pem}
    verify_attestation(reply, policy, **kw)
    reply.enclave_held_data = b"another certificate"
    with pytest.raises(QuoteVerificationError):
        verify_attestation(reply, policy, **kw)
