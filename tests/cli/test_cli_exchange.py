"""``blindai upload``, ``run`` and ``verify`` against a real simulation server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def proofs(cli_server, sim_options, affine_files, tmp_path_factory):
    """Upload and run once through ``main``; the proofs and what was printed."""
    from blindai.cli import main

    folder = tmp_path_factory.mktemp("proofs")
    upload_proof, run_proof = folder / "upload.proof", folder / "run.proof"
    status = main(
        [
            "upload",
            str(affine_files["model"]),
            "--shape",
            "1,4",
            "--proof",
            str(upload_proof),
            *sim_options,
        ]
    )
    assert status == 0
    status = main(
        [
            "run",
            "--input",
            str(affine_files["npy"]),
            "--proof",
            str(run_proof),
            *sim_options,
        ]
    )
    assert status == 0
    return {"upload": upload_proof, "run": run_proof}


def test_upload_prints_hash_and_saves_proof_and_key(
    run_cli, sim_options, affine_files, tmp_path
):
    proof = tmp_path / "upload.proof"
    result = run_cli(
        "upload",
        affine_files["model"],
        "--shape",
        "1,4",
        "--json",
        "--proof",
        proof,
        *sim_options,
    )
    assert result.status == 0, result.err
    out = result.json()
    expected = hashlib.sha256(affine_files["model"].read_bytes()).hexdigest()
    assert out["model_hash"] == expected and out["input_shape"] == [1, 4]
    assert out["simulation"] is True and out["signed"] is True
    key_file = Path(out["signing_key_file"])
    assert key_file == tmp_path / "upload.proof.key"
    assert key_file.read_text().strip() == out["signing_key"]
    assert len(bytes.fromhex(out["signing_key"])) == 32


def test_run_prints_the_output(run_cli, proofs, sim_options, affine_files):
    result = run_cli("run", "--input", affine_files["json"], "--json", *sim_options)
    assert result.status == 0, result.err
    out = result.json()
    assert out["output"] == [3.0, 5.0, 7.0, 9.0]
    assert out["output_shape"] == [1, 4] and out["output_dtype"] == "F32"
    assert out["signed"] is False and "proof" not in out
    human = run_cli("run", "--input", affine_files["npy"], *sim_options)
    assert "[[3. 5. 7. 9.]]" in human.out


def test_verify_simulation_run_proof(run_cli, proofs, affine_files):
    key = f"{proofs['run']}.key"
    result = run_cli(
        "verify",
        proofs["run"],
        "--input",
        affine_files["json"],
        "--model",
        affine_files["model"],
        "--allow-simulation",
        "--signing-key",
        key,
    )
    assert result.status == 0, result.out + result.err
    assert "SIMULATION PROOF" in result.out
    assert result.out.splitlines()[-1].startswith("VALID as a SIMULATION proof")
    hex_key = Path(key).read_text().strip()
    as_hex = run_cli(
        "verify",
        proofs["run"],
        "--input",
        affine_files["npy"],
        "--allow-simulation",
        "--signing-key",
        hex_key,
        "--json",
    )
    assert as_hex.status == 0 and as_hex.json()["valid"] is True


def test_verify_upload_proof_against_model(run_cli, proofs, affine_files):
    key = f"{proofs['upload']}.key"
    ok = run_cli(
        "verify",
        proofs["upload"],
        "--model",
        affine_files["model"],
        "--allow-simulation",
        "--signing-key",
        key,
    )
    assert ok.status == 0, ok.out
    other = run_cli(
        "verify",
        proofs["upload"],
        "--model-hash",
        "00" * 32,
        "--allow-simulation",
        "--signing-key",
        key,
    )
    assert other.status == 1 and "MISMATCH" in other.out


def test_verify_run_proof_without_input_is_not_valid(run_cli, proofs, affine_files):
    """A run proof compared with no input proves nothing about your data."""
    key = f"{proofs['run']}.key"
    for extra in ([], ["--model", affine_files["model"]]):
        result = run_cli(
            "verify", proofs["run"], "--allow-simulation", "--signing-key", key, *extra
        )
        assert result.status == 1
        verdict = result.out.splitlines()[-1]
        assert verdict.startswith(
            "NOT VALID: the content was not checked; give --input"
        )
    skipped = run_cli(
        "verify",
        proofs["run"],
        "--allow-simulation",
        "--signing-key",
        key,
        "--skip-content-check",
    )
    assert skipped.status == 0
    assert "CONTENT NOT CHECKED" in skipped.out


def test_verify_refuses_another_input(run_cli, proofs, affine_files):
    result = run_cli(
        "verify",
        proofs["run"],
        "--input",
        affine_files["other"],
        "--allow-simulation",
        "--signing-key",
        f"{proofs['run']}.key",
    )
    assert result.status == 1
    assert "another input" in result.out and "NOT VALID" in result.out


def test_verify_refuses_a_forged_key(run_cli, proofs, affine_files):
    result = run_cli(
        "verify",
        proofs["run"],
        "--input",
        affine_files["json"],
        "--allow-simulation",
        "--signing-key",
        "11" * 32,
        "--json",
    )
    assert result.status == 1
    checks = {c["name"]: c for c in result.json()["checks"]}
    assert checks["signature"]["ok"] is False
    # The content was never compared: it must not read as a mismatch.
    assert checks["content"]["ok"] is None
    assert "MISMATCH" not in checks["content"]["summary"]


def test_simulation_proof_needs_explicit_consent(run_cli, proofs, affine_files):
    result = run_cli("verify", proofs["run"], "--input", affine_files["json"])
    assert result.status == 1
    assert "--allow-simulation" in result.err and result.err.count("\n") == 1
    no_key = run_cli("verify", proofs["run"], "--allow-simulation")
    assert no_key.status == 1 and "--signing-key" in no_key.err


def test_inspect_simulation_proof(run_cli, proofs):
    result = run_cli("inspect", proofs["run"], "--json")
    assert result.status == 0
    info = result.json()
    assert info["kind"] == "inference" and info["mode"] == "simulation"
    assert info["output_shape"] == [1, 4] and info["signed"] is True
    assert len(bytes.fromhex(info["input_hash"])) == 32
    if "input_tensor" in info:  # a numpy input travels as a raw tensor
        assert info["input_tensor"] == {"dtype": "F32", "shape": [1, 4]}
    assert "host" in info["issued_at_source"]


def test_unreachable_server_is_one_line(run_cli, affine_files):
    result = run_cli(
        "run",
        "--input",
        affine_files["json"],
        "--simulation",
        "--untrusted-port",
        "1",
        "--attested-port",
        "2",
    )
    assert result.status == 1
    assert result.err.startswith("blindai run: error:")
    assert "Traceback" not in result.err
    verbose = run_cli(
        "-v",
        "run",
        "--input",
        affine_files["json"],
        "--simulation",
        "--untrusted-port",
        "1",
        "--attested-port",
        "2",
    )
    assert verbose.status == 1 and "Traceback" in verbose.err


def test_missing_file_is_one_line(run_cli, tmp_path):
    result = run_cli("inspect", tmp_path / "absent.proof")
    assert result.status == 1
    assert result.err.strip().endswith(str(tmp_path / "absent.proof"))
    assert result.err.count("\n") == 1


def test_bad_input_file_kind(run_cli, sim_options, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("1,2")
    result = run_cli("run", "--input", path, *sim_options)
    assert result.status == 1 and ".npy or a .json" in result.err


def test_hardware_mode_needs_a_policy(run_cli, cli_server, affine_files):
    result = run_cli(
        "run",
        "--input",
        affine_files["json"],
        "--untrusted-port",
        cli_server.untrusted_port,
        "--attested-port",
        cli_server.attested_port,
    )
    assert result.status == 1 and "policy" in result.err


def test_installed_command_runs_as_a_process(proofs, sim_options, affine_files):
    script = Path(sys.executable).with_name("blindai")
    command = (
        [str(script)] if script.exists() else [sys.executable, "-m", "blindai.cli"]
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [*command, "run", "--input", str(affine_files["json"]), "--json", *sim_options],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == [3.0, 5.0, 7.0, 9.0]
    assert "SIMULATION MODE" in done.stderr
    failed = subprocess.run(
        [*command, "inspect", "/nonexistent/run.proof"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("blindai inspect: error:")


def test_a_proof_path_that_cannot_be_written_is_refused_before_the_call(
    run_cli, sim_options, affine_files, tmp_path
):
    """The model on the server stays as it was: nothing is sent when the proof
    could not be saved afterwards."""
    from models import affine_model

    other = tmp_path / "other.onnx"
    other.write_bytes(affine_model(4, batch=1, scale=10.0))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    for proof in (tmp_path, not_a_dir / "up.proof", tmp_path / "absent" / "p"):
        result = run_cli(
            "upload", other, "--shape", "1,4", "--proof", proof, *sim_options
        )
        assert result.status == 1, result.err
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
        assert str(proof) in result.err
    out = run_cli("run", "--input", affine_files["json"], "--json", *sim_options)
    assert out.json()["output"] == [3.0, 5.0, 7.0, 9.0]
    run = run_cli(
        "run", "--input", affine_files["json"], "--proof", tmp_path, *sim_options
    )
    assert run.status == 1 and "Traceback" not in run.err


def test_an_output_file_that_cannot_be_written_is_one_line(run_cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "policy.toml"
    result = run_cli("policy", "create", "--mr-enclave", "ab" * 32, "-o", target)
    assert result.status == 1
    assert "Traceback" not in result.err and str(target) in result.err


def test_a_policy_given_for_a_simulation_proof_is_not_ignored(
    run_cli, proofs, affine_files, tmp_path
):
    """A simulation proof has no attestation: a --policy with it is a mistake
    to say, not an option to drop silently."""
    for policy in (tmp_path / "nope.toml", affine_files["json"]):
        result = run_cli(
            "verify",
            proofs["run"],
            "--input",
            affine_files["npy"],
            "--allow-simulation",
            "--signing-key",
            f"{proofs['run']}.key",
            "--policy",
            policy,
        )
        assert result.status == 1
        assert "--policy" in result.err and "simulation" in result.err


def test_arguments_that_a_proof_would_not_use_are_refused(
    run_cli, proofs, affine_files
):
    """Each of these was dropped silently: --input with an upload proof, --at
    with a simulation proof (it has no collateral to date)."""
    key = ["--allow-simulation", "--signing-key", f"{proofs['upload']}.key"]
    result = run_cli(
        "verify", proofs["upload"], "--model", affine_files["model"],
        "--input", affine_files["json"], *key,
    )  # fmt: skip
    assert result.status == 1 and "--input" in result.err
    result = run_cli(
        "verify", proofs["upload"], "--model", affine_files["model"],
        "--at", "2030-01-01T00:00:00Z", *key,
    )  # fmt: skip
    assert result.status == 1 and "--at" in result.err
    run_key = ["--allow-simulation", "--signing-key", f"{proofs['run']}.key"]
    result = run_cli(
        "verify", proofs["run"], "--input", affine_files["json"],
        "--model-hash", "ab" * 32, *run_key,
    )  # fmt: skip
    assert result.status in (0, 1) and "--model-hash" not in result.err
