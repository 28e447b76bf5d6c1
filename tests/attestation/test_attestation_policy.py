"""The enclave policy: the 0.3 fixture policy, each field, and malformed files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from attestation_cases import FIXTURES, MISSING_REASON, load_case

from blindai.attestation import Policy, TcbStatus, verify_attestation, verify_quote
from blindai.dcap_attestation import Policy as LegacyPolicy
from blindai.errors import (
    AttestationError,
    PolicyFormatError,
    PolicyMismatchError,
    QuoteVerificationError,
)
from blindai.pb import proof_files_pb2

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=MISSING_REASON)

BLINDAI = "blindai-0.3-proofs"


@pytest.fixture(scope="module")
def verified():
    case = load_case(BLINDAI)
    return verify_quote(case.quote, case.collateral(), at=case.instant)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.from_file(load_case(BLINDAI).path / "policy.toml")


def test_fixture_policy_accepts_the_0_3_enclave(policy, verified) -> None:
    assert LegacyPolicy is Policy
    assert policy.allow_debug and verified.debug
    policy.check(verified)


def test_saved_0_3_proof_verifies_with_its_policy(policy) -> None:
    case = load_case(BLINDAI)
    proof = proof_files_pb2.ResponseProof()
    proof.ParseFromString(case.read("exec_upload.proof"))
    result = verify_attestation(proof.attestation, policy, at=case.instant)
    assert result.enclave_certificate_der == case.read("enclave_held_data.der")
    assert result.quote.mr_enclave == policy.mr_enclave


def test_other_enclave_certificate_is_refused(policy) -> None:
    case = load_case(BLINDAI)
    proof = proof_files_pb2.ResponseProof()
    proof.ParseFromString(case.read("exec_upload.proof"))
    proof.attestation.enclave_held_data = case.read("host_server.pem")
    with pytest.raises(QuoteVerificationError, match="SHA-256 of the enclave"):
        verify_attestation(proof.attestation, policy, at=case.instant)


def test_policy_is_required() -> None:
    case = load_case(BLINDAI)
    proof = proof_files_pb2.ResponseProof()
    proof.ParseFromString(case.read("exec_upload.proof"))
    with pytest.raises(AttestationError, match="a policy is required"):
        verify_attestation(proof.attestation, None, at=case.instant)


MISMATCHES = {
    "other_mr_enclave": ({"mr_enclave": bytes(32)}, "MRENCLAVE 4000659c"),
    "other_mr_signer": ({"mr_signer": bytes(32)}, "MRSIGNER 37a45cbe"),
    "other_isv_prod_id": ({"isv_prod_id": 7}, "ISVPRODID 0 is not the policy's 7"),
    "newer_isv_svn_required": ({"min_isv_svn": 1}, "ISVSVN 0 is below"),
    "other_misc_select": ({"misc_select": 1}, "MISCSELECT"),
    "sgx_key_flags_required": ({"attributes_flags": 0x84}, "ATTRIBUTES.FLAGS"),
    "debug_bit_in_mask": ({"attributes_mask_flags": 2**64 - 1}, "ATTRIBUTES.FLAGS"),
    "avx512_required": ({"attributes_xfrm": 0xE7}, "ATTRIBUTES.XFRM"),
    "debug_not_allowed": ({"allow_debug": False}, "debug mode"),
    "out_of_date_only": (
        {"accepted_tcb_statuses": (TcbStatus.UP_TO_DATE,)},
        "TCB status SWHardeningNeeded",
    ),
}


@pytest.mark.parametrize("attack", sorted(MISMATCHES))
def test_policy_mismatch_names_field_and_values(attack, policy, verified) -> None:
    changes, message = MISMATCHES[attack]
    with pytest.raises(PolicyMismatchError, match=message):
        dataclasses.replace(policy, **changes).check(verified)


def test_advisory_restriction() -> None:
    case = load_case("automata-sgx-00606a-2025-08-tcbv3")
    verified = verify_quote(case.quote, case.collateral(), at=case.instant)
    base = Policy.from_dict({**_table(verified.mr_enclave.hex()), "allow_debug": False})
    base.check(verified)
    allowed = dataclasses.replace(base, accepted_advisory_ids=("INTEL-SA-00615",))
    allowed.check(verified)
    refused = dataclasses.replace(base, accepted_advisory_ids=("INTEL-SA-00289",))
    with pytest.raises(PolicyMismatchError, match="INTEL-SA-00615"):
        refused.check(verified)


def test_out_of_date_platform_refused_by_default() -> None:
    case = load_case("dcaprs-sgx-00606a-2025-02-tcbv2")
    verified = verify_quote(case.quote, case.collateral(), at=case.instant)
    policy = Policy.from_dict(_table(verified.mr_enclave.hex()))
    with pytest.raises(PolicyMismatchError, match="TCB status OutOfDate"):
        policy.check(verified)
    lenient = dataclasses.replace(
        policy, accepted_tcb_statuses=(TcbStatus.OUT_OF_DATE,)
    )
    lenient.check(verified)


def _table(mr_enclave: str = "00" * 32) -> dict:
    return {
        "mr_enclave": mr_enclave,
        "misc_select_hex": "0x0",
        "misc_mask_hex": "0xffffffff",
        "attributes_flags_hex": "0x4",
        "attributes_xfrm_hex": "0x3",
        "attributes_mask_flags_hex": "0xfffffffffffffffd",
        "attributes_mask_xfrm_hex": "0xffffffffffffff1b",
        "allow_debug": False,
    }


def test_unknown_key_is_refused() -> None:
    with pytest.raises(PolicyFormatError, match="unknown policy key 'mr_enclav'"):
        Policy.from_dict({**_table(), "mr_enclav": "00"})


@pytest.mark.parametrize("key", sorted(_table()))
def test_missing_key_is_refused(key: str) -> None:
    table = _table()
    del table[key]
    with pytest.raises(PolicyFormatError, match=f"required key '{key}'"):
        Policy.from_dict(table)


BAD_VALUES = {
    "mr_enclave": "abcd",
    "misc_select_hex": "0x1ffffffff",
    "attributes_flags_hex": "zz",
    "attributes_xfrm_hex": 3,
    "allow_debug": "yes",
    "isv_prod_id": -1,
    "min_isv_svn": True,
    "accepted_tcb_statuses": ["Revoked"],
    "accepted_advisory_ids": "INTEL-SA-00615",
}


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_bad_value_is_refused(key: str) -> None:
    with pytest.raises(PolicyFormatError, match=key):
        Policy.from_dict({**_table(), key: BAD_VALUES[key]})


def test_unknown_status_and_empty_status_list() -> None:
    with pytest.raises(PolicyFormatError, match="unknown status 'Fine'"):
        Policy.from_dict({**_table(), "accepted_tcb_statuses": ["Fine"]})
    with pytest.raises(PolicyFormatError, match="empty"):
        Policy.from_dict({**_table(), "accepted_tcb_statuses": []})


def test_policy_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        Policy.from_toml("mr_enclave = ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Policy.from_file(tmp_path / "policy.toml")


def test_to_toml_round_trips(policy: Policy, tmp_path: Path) -> None:
    full = dataclasses.replace(
        policy,
        mr_signer=bytes(range(32)),
        isv_prod_id=3,
        min_isv_svn=2,
        accepted_tcb_statuses=(TcbStatus.UP_TO_DATE,),
        accepted_advisory_ids=("INTEL-SA-00615",),
    )
    for original in (policy, full):
        path = tmp_path / "policy.toml"
        path.write_text(original.to_toml())
        assert Policy.from_file(path) == original


def _quote_of(name: str):
    case = load_case(name)
    return verify_quote(
        case.quote, case.collateral(), at=case.instant, trusted_root=case.root_pem
    )


def test_attack_relaying_older_tcb_evaluation_data():
    """The same quote, at the same instant, with genuine collateral of two TCB
    evaluations: eval 16 says SWHardeningNeeded (accepted by default), eval 17
    says OutOfDate. The host chooses which to relay; a minimum evaluation data
    number in the policy takes that choice away."""
    older = _quote_of("dcaprs-sgx-00606a-2024-05-tcbv2")
    newer = _quote_of("dcaprs-sgx-00606a-2024-05-tcbv3")
    assert older.tcb_status == TcbStatus.SW_HARDENING_NEEDED
    assert older.tcb_evaluation_data_number == 16
    assert newer.tcb_evaluation_data_number == 17
    base = {
        "mr_enclave": older.mr_enclave.hex(),
        "misc_select_hex": "0x0",
        "misc_mask_hex": "0x0",
        "attributes_flags_hex": "0x0",
        "attributes_xfrm_hex": "0x0",
        "attributes_mask_flags_hex": "0x1",  # INIT is always required
        "attributes_mask_xfrm_hex": "0x0",
        "allow_debug": True,
    }
    Policy.from_dict(base).check(older)
    strict = Policy.from_dict({**base, "min_tcb_evaluation_data_number": 17})
    with pytest.raises(PolicyMismatchError, match="evaluation data number 16"):
        strict.check(older)
    assert "min_tcb_evaluation_data_number = 17" in strict.to_toml()
    assert Policy.from_toml(strict.to_toml()) == strict


@pytest.mark.parametrize("bad", [-1, "17", True, 1.5])
def test_min_tcb_evaluation_data_number_must_be_a_count(bad):
    with pytest.raises(PolicyFormatError, match="min_tcb_evaluation_data_number"):
        Policy.from_dict(
            {
                "mr_enclave": "00" * 32,
                "misc_select_hex": "0x0",
                "misc_mask_hex": "0x0",
                "attributes_flags_hex": "0x0",
                "attributes_xfrm_hex": "0x0",
                "attributes_mask_flags_hex": "0x0",
                "attributes_mask_xfrm_hex": "0x0",
                "allow_debug": False,
                "min_tcb_evaluation_data_number": bad,
            }
        )
