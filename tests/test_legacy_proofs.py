"""The real BlindAI proofs of the shared fixtures, read by our response classes.

The attestation half of these proofs is checked in tests/attestation; here the
signature and the payload layouts are.
"""

from __future__ import annotations

import pytest
from support import ATTESTATION_FIXTURES

from blindai import RunModelResponse, SignatureError, UploadModelResponse
from blindai._certs import signing_key_from_certificate

CASE = ATTESTATION_FIXTURES / "blindai-0.3-proofs"
pytestmark = pytest.mark.skipif(
    not CASE.exists(),
    reason="../shared/fixtures/attestation not found: fixture tests need the shared "
    "folder beside the repository",
)


def _key():
    return signing_key_from_certificate((CASE / "enclave_held_data.der").read_bytes())


def test_upload_proof_signature_and_layout():
    proof = UploadModelResponse().load_from_file(CASE / "exec_upload.proof")
    assert proof.is_signed() and not proof.is_simulation_mode()
    model_hash = proof.model_hash
    assert len(model_hash) == 32
    proof.validate(model_hash, validate_quote=False, enclave_signing_key=_key())
    with pytest.raises(SignatureError):
        proof.validate(b"\0" * 32, validate_quote=False, enclave_signing_key=_key())


@pytest.mark.parametrize("data", [[], [0.0], [1.0, 2.0, 3.0], list(range(10))])
def test_legacy_run_proof_is_refused_cleanly(data):
    proof = RunModelResponse().load_from_file(CASE / "exec_run.proof")
    assert proof.is_signed()
    with pytest.raises(SignatureError):
        proof.validate(data, validate_quote=False, enclave_signing_key=_key())


def test_legacy_run_proof_signature_is_genuine():
    from blindai.responses import _verify_signature

    proof = RunModelResponse().load_from_file(CASE / "exec_run.proof")
    _verify_signature(_key(), proof.signature, proof.payload)


def test_garbage_is_not_a_proof():
    with pytest.raises(SignatureError):
        RunModelResponse().load_from_bytes(b"\xff\xff\xff")


def _instant():
    import datetime as dt
    import tomllib

    case = tomllib.loads((CASE / "case.toml").read_text())
    return dt.datetime.fromtimestamp(case["verification"]["instant"], dt.UTC)


def test_upload_proof_validates_with_policy_at_its_instant():
    proof = UploadModelResponse().load_from_file(CASE / "exec_upload.proof")
    proof.validate(proof.model_hash, policy_file=CASE / "policy.toml", at=_instant())


def test_upload_proof_fails_now():
    from blindai import AttestationError

    proof = UploadModelResponse().load_from_file(CASE / "exec_upload.proof")
    with pytest.raises(AttestationError):
        proof.validate(proof.model_hash, policy_file=CASE / "policy.toml")


def test_attested_proof_needs_a_policy():
    from blindai import AttestationError

    proof = UploadModelResponse().load_from_file(CASE / "exec_upload.proof")
    with pytest.raises(AttestationError, match="policy is required"):
        proof.validate(proof.model_hash, at=_instant())


def test_legacy_run_proof_refused_with_full_validation():
    proof = RunModelResponse().load_from_file(CASE / "exec_run.proof")
    with pytest.raises(SignatureError):
        proof.validate([1.0, 2.0], policy_file=CASE / "policy.toml", at=_instant())


def test_missing_policy_file():
    proof = UploadModelResponse().load_from_file(CASE / "exec_upload.proof")
    with pytest.raises(FileNotFoundError):
        proof.validate(proof.model_hash, policy_file=CASE / "nope.toml", at=_instant())


def test_policy_may_be_a_path_as_connect_takes_it():
    """validate(policy=...) took only a Policy: a path raised a bare
    AttributeError, while connect(policy="policy.toml") takes one."""
    proof = UploadModelResponse().load_from_file(CASE / "exec_upload.proof")
    for policy in (CASE / "policy.toml", str(CASE / "policy.toml")):
        proof.validate(proof.model_hash, policy=policy, at=_instant())
    with pytest.raises(TypeError, match="Policy"):
        proof.validate(proof.model_hash, policy=42, at=_instant())
