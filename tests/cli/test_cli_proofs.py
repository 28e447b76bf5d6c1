"""``blindai verify`` and ``inspect`` on the real BlindAI 0.3 proofs (SGX, 2022).

Source: ../shared/fixtures/attestation/blindai-0.3-proofs (see its case.toml):
exec_upload.proof validates with policy.toml at 2022-04-11T13:05:28Z; its
collateral has long expired, so it fails now.
"""

from __future__ import annotations

import pytest

from .conftest import NO_SHARED, PROOF_INSTANT, PROOFS

pytestmark = pytest.mark.skipif(not PROOFS.exists(), reason=NO_SHARED)

UPLOAD = PROOFS / "exec_upload.proof"
POLICY = PROOFS / "policy.toml"
MODEL_HASH = "52302a8fa69169e3dddae573aaca42e4d1c2d887411f93116ff8e2967d0bd184"
MR_ENCLAVE = "4000659c8f1c3094f9eefa7fb9ccc5bdb21b6f2893cdb5081f179e737d0c7247"


def test_upload_proof_valid_at_its_instant(run_cli):
    result = run_cli(
        "verify",
        UPLOAD,
        "--policy",
        POLICY,
        "--at",
        PROOF_INSTANT,
        "--model-hash",
        MODEL_HASH,
    )
    assert result.status == 0, result.out + result.err
    assert "TCB status SWHardeningNeeded" in result.out
    assert f"MRENCLAVE {MR_ENCLAVE} (policy {MR_ENCLAVE})" in result.out
    assert (
        "collateral valid from 2022-04-11T08:24:29Z until 2022-04-26T13:37:47Z"
        in result.out
    )
    assert result.out.splitlines()[-1] == "VALID"


def test_upload_proof_json_report(run_cli):
    result = run_cli(
        "verify",
        UPLOAD,
        "--policy",
        POLICY,
        "--at",
        PROOF_INSTANT,
        "--skip-content-check",
        "--json",
    )
    assert result.status == 0
    report = result.json()
    assert report["valid"] is True and report["mode"] == "attested"
    assert report["content_check_skipped"] is True
    checks = {c["name"]: c["ok"] for c in report["checks"]}
    assert checks == {
        "signed": True,
        "attestation": True,
        "signature": True,
        "content": None,
    }


def test_proof_never_compared_with_a_model_is_not_valid(run_cli):
    """`blindai verify ... && trust` must not accept content nobody checked."""
    result = run_cli("verify", UPLOAD, "--policy", POLICY, "--at", PROOF_INSTANT)
    assert result.status == 1
    verdict = result.out.splitlines()[-1]
    assert verdict.startswith("NOT VALID: the content was not checked")
    assert "--model or --model-hash" in verdict and "--skip-content-check" in verdict
    as_json = run_cli(
        "verify", UPLOAD, "--policy", POLICY, "--at", PROOF_INSTANT, "--json"
    )
    assert as_json.status == 1 and as_json.json()["valid"] is False


def test_skipped_content_check_is_said_loudly(run_cli):
    result = run_cli(
        "verify",
        UPLOAD,
        "--policy",
        POLICY,
        "--at",
        PROOF_INSTANT,
        "--skip-content-check",
    )
    assert result.status == 0
    assert "WARNING: CONTENT NOT CHECKED (--skip-content-check)" in result.out
    assert result.out.splitlines()[-1] == "VALID; not checked: content"


def test_upload_proof_fails_now(run_cli):
    result = run_cli("verify", UPLOAD, "--policy", POLICY)
    assert result.status == 1
    assert "CollateralExpiredError" in result.out and "NOT VALID" in result.out


def test_upload_proof_fails_one_second_before_its_window(run_cli):
    result = run_cli(
        "verify", UPLOAD, "--policy", POLICY, "--at", "2022-04-11T08:24:28Z"
    )
    assert result.status == 1 and "NOT VALID" in result.out


def test_upload_proof_for_another_model(run_cli):
    result = run_cli(
        "verify",
        UPLOAD,
        "--policy",
        POLICY,
        "--at",
        PROOF_INSTANT,
        "--model-hash",
        "00" * 32,
    )
    assert result.status == 1 and "MISMATCH" in result.out


def test_policy_for_another_enclave_is_refused(run_cli, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(POLICY.read_text().replace(MR_ENCLAVE, "11" * 32))
    result = run_cli("verify", UPLOAD, "--policy", other, "--at", PROOF_INSTANT)
    assert result.status == 1
    assert f"MRENCLAVE {MR_ENCLAVE} is not the policy's" in result.out


def test_attested_proof_needs_a_policy(run_cli):
    result = run_cli("verify", UPLOAD, "--at", PROOF_INSTANT)
    assert result.status == 1 and "--policy" in result.err


def test_naive_instant_is_refused(run_cli):
    result = run_cli(
        "verify", UPLOAD, "--policy", POLICY, "--at", "2022-04-11T13:05:28"
    )
    assert result.status == 1 and "timezone" in result.err


def test_legacy_run_proof_is_refused_for_any_input(run_cli, tmp_path):
    data = tmp_path / "x.json"
    data.write_text("[0.0]")
    result = run_cli(
        "verify",
        PROOFS / "exec_run.proof",
        "--policy",
        POLICY,
        "--at",
        PROOF_INSTANT,
        "--input",
        data,
    )
    assert result.status == 1 and "0.3.0 layout" in result.out


def test_inspect_attested_proof(run_cli):
    result = run_cli("inspect", UPLOAD, "--json")
    assert result.status == 0
    info = result.json()
    assert info["kind"] == "upload" and info["mode"] == "attested"
    assert info["model_hash"] == MODEL_HASH
    assert info["issued_at"] == "2022-04-11T13:05:26Z"
    quote = info["attestation"]["quote"]
    assert quote["mr_enclave"] == MR_ENCLAVE and quote["debug"] is True
    assert quote["fmspc"] == "00906ea10000" and quote["verified"] is False
    assert info["attestation"]["report_data_binds_certificate"] is True
    human = run_cli("inspect", UPLOAD)
    assert "UNVERIFIED" in human.out and "host's clock" in human.out


def test_inspect_raw_quote(run_cli):
    result = run_cli("inspect", PROOFS / "quote.bin", "--json")
    assert result.status == 0
    info = result.json()
    assert info["type"] == "quote" and info["mr_enclave"] == MR_ENCLAVE
    assert info["isv_prod_id"] == 0 and info["attributes_flags"] == "0x7"


def test_inspect_something_else(run_cli):
    result = run_cli("inspect", POLICY)
    assert result.status == 1 and "not a proof" in result.err


def test_a_signing_key_given_with_an_attested_proof_is_refused(run_cli):
    result = run_cli(
        "verify", UPLOAD, "--policy", POLICY, "--at", PROOF_INSTANT,
        "--skip-content-check", "--signing-key", "11" * 32,
    )  # fmt: skip
    assert result.status == 1 and "--signing-key" in result.err
