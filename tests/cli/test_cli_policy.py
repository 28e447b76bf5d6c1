"""``blindai policy show`` and ``create``, the progress bar and callback."""

from __future__ import annotations

import io
import warnings

import pytest

from blindai.attestation import Policy, TcbStatus

from .conftest import PROOFS

MR = "ab" * 32


def test_create_writes_a_policy_that_loads(run_cli, tmp_path):
    path = tmp_path / "policy.toml"
    result = run_cli(
        "policy",
        "create",
        "--mr-enclave",
        MR,
        "--mr-signer",
        "cd" * 32,
        "--min-isv-svn",
        "2",
        "--accept-tcb-status",
        "UpToDate",
        "--output",
        path,
    )
    assert result.status == 0, result.err
    policy = Policy.from_file(path)
    assert policy.mr_enclave.hex() == MR and policy.mr_signer.hex() == "cd" * 32
    assert policy.min_isv_svn == 2 and policy.allow_debug is False
    assert policy.accepted_tcb_statuses == (TcbStatus.UP_TO_DATE,)
    assert policy.attributes_mask_flags == 0xFFFFFFFFFFFFFFFD


def test_create_refuses_to_overwrite(run_cli, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("keep me")
    result = run_cli("policy", "create", "--mr-enclave", MR, "-o", path)
    assert result.status == 1 and "--force" in result.err
    assert path.read_text() == "keep me"


def test_create_to_stdout_and_bad_values(run_cli):
    result = run_cli("policy", "create", "--mr-enclave", MR, "--allow-debug")
    assert result.status == 0 and "allow_debug = true" in result.out
    bad = run_cli("policy", "create", "--mr-enclave", "12")
    assert bad.status == 1 and "64 hex digits" in bad.err
    none = run_cli("policy", "create")
    assert none.status == 1 and "--mr-enclave" in none.err


def _sigstruct(flags: int = 0x4) -> bytes:
    """A SIGSTRUCT laid out as the SDM says (signature bytes left as filler)."""
    import struct

    data = bytearray(1808)
    data[0:16] = bytes.fromhex("06000000e10000000000010000000000")
    data[24:40] = bytes.fromhex("01010000600000006000000001000000")
    data[128:512] = bytes(range(256)) + bytes(range(128))
    struct.pack_into("<I", data, 512, 3)
    struct.pack_into("<II", data, 900, 0, 0xFFFFFFFF)
    struct.pack_into(
        "<QQQQ", data, 928, flags, 0x3, 0xFFFFFFFFFFFFFFFD, 0xFFFFFFFFFFFFFF1B
    )
    data[960:992] = bytes.fromhex(MR)
    struct.pack_into("<HH", data, 1024, 7, 2)
    return bytes(data)


def test_create_from_sigstruct(run_cli, tmp_path):
    pytest.importorskip("blindai._sigstruct", reason="no SIGSTRUCT reader")
    sig, path = tmp_path / "blindai-server.sig", tmp_path / "policy.toml"
    sig.write_bytes(_sigstruct())
    result = run_cli(
        "policy", "create", "--sigstruct", sig, "--min-isv-svn", "3", "-o", path
    )
    assert result.status == 0, result.err
    policy = Policy.from_file(path)
    assert policy.mr_enclave.hex() == MR and policy.isv_prod_id == 7
    assert policy.min_isv_svn == 3 and policy.mr_signer is not None
    assert policy.allow_debug is False


def test_create_from_a_debug_sigstruct_needs_allow_debug(run_cli, tmp_path):
    pytest.importorskip("blindai._sigstruct", reason="no SIGSTRUCT reader")
    sig = tmp_path / "debug.sig"
    sig.write_bytes(_sigstruct(flags=0x6))
    refused = run_cli("policy", "create", "--sigstruct", sig)
    assert refused.status == 1 and "allow_debug" in refused.err
    allowed = run_cli("policy", "create", "--sigstruct", sig, "--allow-debug")
    assert allowed.status == 0 and "allow_debug = true" in allowed.out


def test_show_explains_in_words(run_cli, tmp_path):
    path = tmp_path / "policy.toml"
    run_cli(
        "policy",
        "create",
        "--mr-enclave",
        MR,
        "--allow-debug",
        "--accept-advisory",
        "INTEL-SA-00615",
        "-o",
        path,
    )
    result = run_cli("policy", "show", path)
    assert result.status == 0
    assert f"MRENCLAVE is {MR}" in result.out
    assert "DEBUG enclave" in result.out and "never for real data" in result.out
    assert "INTEL-SA-00615" in result.out and "MODE64BIT" in result.out
    assert run_cli("policy", "show", path, "--json").json()["explanation"]


@pytest.mark.skipif(not PROOFS.exists(), reason="needs ../shared")
def test_show_the_real_0_3_policy(run_cli):
    result = run_cli("policy", "show", PROOFS / "policy.toml")
    assert result.status == 0 and "MRSIGNER is anything" in result.out


def test_progress_bar_draws_only_on_a_terminal():
    from blindai.cli._progress import ProgressBar, progress_bar, render

    assert progress_bar("uploading", io.StringIO()) is None
    stream = io.StringIO()
    bar = ProgressBar("uploading", stream, interval=0)
    bar(512 * 1024, 1024 * 1024)
    bar(1024 * 1024, 1024 * 1024)
    bar.close()
    assert "50%" in stream.getvalue() and stream.getvalue().endswith("\n")
    assert "100%" in render("x", 3, 3)


def test_upload_reports_progress(fresh_sim_server):
    from models import affine_model

    import blindai
    from blindai.client import CHUNK_SIZE

    model = affine_model(4, batch=1) + b""  # one chunk
    calls: list[tuple[int, int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blindai.SimulationModeWarning)
        with blindai.connect(
            "127.0.0.1", simulation=True, **fresh_sim_server.ports
        ) as client:
            client.upload_model(model, progress=lambda s, t: calls.append((s, t)))
    assert calls[-1] == (len(model), len(model))
    assert len(model) < CHUNK_SIZE and len(calls) == 1
