"""Hardware mode end to end on the synthetic SGX platform.

A real ``blindai-server`` process runs without ``--simulation``: its quotes come
from a fake Gramine attestation directory and its collateral from a fake PCCS over
HTTPS, both signed by a test root CA. The client verifies them with the
production verifier, given that root as ``trusted_root``. Each refusal is checked
to happen before anything reaches the attested port.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
from models import affine_model
from sgxsim import FakeAttestationDir, FakePccs, ReportFields, SgxPlatform, attributes
from sgxsim.documents import default_tcb_levels

import blindai
from blindai import AttestationError, Policy, RunModelResponse, UploadModelResponse
from blindai.errors import CollateralExpiredError
from blindai.pb import untrusted_pb2, untrusted_pb2_grpc
from blindai.server.launcher import LocalServer

pytestmark = pytest.mark.sgx_sim

FLAG_INIT, FLAG_DEBUG, FLAG_MODE64BIT = 0x1, 0x2, 0x4
ENCLAVE = ReportFields()


def policy_for(enclave: ReportFields = ENCLAVE, **overrides) -> Policy:
    flags = int.from_bytes(enclave.attributes[:8], "little")
    xfrm = int.from_bytes(enclave.attributes[8:], "little")
    table = {
        "mr_enclave": enclave.mr_enclave.hex(),
        "misc_select_hex": hex(enclave.misc_select),
        "misc_mask_hex": "0xffffffff",
        "attributes_flags_hex": hex(flags & ~FLAG_DEBUG & ~FLAG_INIT),
        "attributes_xfrm_hex": hex(xfrm),
        "attributes_mask_flags_hex": hex(0xFFFFFFFFFFFFFFFF & ~FLAG_DEBUG),
        "attributes_mask_xfrm_hex": "0xffffffffffffffff",
        "allow_debug": False,
        "mr_signer": enclave.mr_signer.hex(),
    }
    table.update(overrides)
    return Policy.from_dict(table)


class HardwareRig:
    """Platform, fake PCCS, fake attestation directory and a hardware-mode server."""

    def __init__(
        self,
        tmp: Path,
        platform: SgxPlatform | None = None,
        enclave: ReportFields = ENCLAVE,
        pccs_api_version: int = 4,
        tcb_info_args: dict | None = None,
    ) -> None:
        self.platform = platform or SgxPlatform()
        self.pccs = FakePccs(self.platform)
        self.pccs.tcb_info_args = tcb_info_args or {}
        self.pccs.start()
        self.device = FakeAttestationDir(
            tmp / "attestation", self.platform, enclave
        ).start()
        self.server = LocalServer(
            [
                "--attestation-dir",
                str(self.device.path),
                "--pccs-url",
                self.pccs.url,
                "--pccs-ca",
                str(self.pccs.ca_file),
                "--pccs-api-version",
                str(pccs_api_version),
            ]
        )
        try:
            self.server.start()
        except Exception:
            self.close()
            raise

    @property
    def root(self) -> bytes:
        return self.platform.root_pem

    def connect(self, policy: Policy | None = None, **kwargs) -> blindai.BlindAiClient:
        args = dict(
            policy=policy or policy_for(),
            certificate=str(self.server.host_certificate),
            trusted_root=self.root,
            **self.server.ports,
        )
        args.update(kwargs)
        return blindai.connect("127.0.0.1", **args)

    def close(self) -> None:
        self.server.stop()
        self.device.stop()
        self.pccs.stop()


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Iterator[HardwareRig]:
    rig = HardwareRig(tmp_path_factory.mktemp("sgx"))
    yield rig
    rig.close()


class ConnectionCounter:
    """A TCP listener standing in for the attested port: counts who connects."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> int:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return self.accepted


def refused(rig: HardwareRig, match: str, **kwargs) -> AttestationError:
    """Connect with the attested port replaced by a counter; expect a refusal."""
    counter = ConnectionCounter()
    try:
        with pytest.raises(AttestationError, match=match) as info:
            rig.connect(attested_port=counter.port, **kwargs)
    finally:
        assert counter.close() == 0, "something reached the attested port"
    return info.value


# --- the happy path --------------------------------------------------------------


def test_attested_upload_run_and_proofs_later(rig, tmp_path):
    model = affine_model()
    with rig.connect() as client:
        assert client.server_info.mode == "sgx"
        assert client.verified_quote.mr_enclave == ENCLAVE.mr_enclave
        assert client.verified_quote.tcb_status == "UpToDate"
        upload = client.upload_model(model, shape=(1, 4), sign=True)
        x = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
        run = client.run_model(x, sign=True)
        assert run.output == [3.0, 5.0, 7.0, 9.0]
        assert not run.is_simulation_mode()
        upload.save_to_file(tmp_path / "upload.proof")
        run.save_to_file(tmp_path / "run.proof")
    at = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    model_hash = hashlib.sha256(model).digest()
    loaded_upload = UploadModelResponse().load_from_file(tmp_path / "upload.proof")
    loaded_upload.validate(
        model_hash, policy=policy_for(), at=at, trusted_root=rig.root
    )
    loaded_run = RunModelResponse().load_from_file(tmp_path / "run.proof")
    loaded_run.validate(
        x, policy=policy_for(), at=at, trusted_root=rig.root, model_hash=model_hash
    )


def test_proof_fails_after_its_collateral_expires(rig, tmp_path):
    with rig.connect() as client:
        client.upload_model(affine_model(), shape=(1, 4))
        run = client.run_model([1.0, 2.0, 3.0, 4.0], sign=True)
    later = rig.platform.at + rig.platform.validity + dt.timedelta(seconds=1)
    with pytest.raises(CollateralExpiredError):
        run.validate(
            [1.0, 2.0, 3.0, 4.0], policy=policy_for(), at=later, trusted_root=rig.root
        )


def test_proof_against_a_tampered_policy_file(rig, tmp_path):
    with rig.connect() as client:
        client.upload_model(affine_model(), shape=(1, 4))
        run = client.run_model([1.0, 2.0, 3.0, 4.0], sign=True)
    other = policy_for(mr_enclave="11" * 32)
    with pytest.raises(AttestationError, match="(?i)mrenclave"):
        run.validate([1.0, 2.0, 3.0, 4.0], policy=other, trusted_root=rig.root)


# --- refusals, nothing sent to the attested port ------------------------------------


def test_attack_wrong_mrenclave_in_policy(rig):
    error = refused(rig, "(?i)mrenclave", policy=policy_for(mr_enclave="ab" * 32))
    assert ENCLAVE.mr_enclave.hex()[:8] in str(error)


def test_attack_wrong_mrsigner_in_policy(rig):
    refused(rig, "(?i)mrsigner", policy=policy_for(mr_signer="cd" * 32))


def test_attack_quote_chained_to_another_root(rig):
    other = SgxPlatform()
    refused(rig, "not signed by .Test SGX Root CA", trusted_root=other.root_pem)


def test_attack_test_platform_against_intels_root(rig):
    refused(rig, "not signed by .Intel SGX Root CA", trusted_root=None)


def test_attack_certificate_not_in_the_quote(rig, tmp_path):
    """The host swaps the enclave certificate for its own: the binding fails."""
    with MitmUntrusted(rig) as mitm:
        refused(rig, "(?i)sha-256", untrusted_port=mitm.port)


def test_attack_debug_enclave_with_allow_debug_false(tmp_path):
    debug = dataclasses.replace(
        ENCLAVE, attributes=attributes(FLAG_INIT | FLAG_DEBUG | FLAG_MODE64BIT, 0x03)
    )
    rig = HardwareRig(tmp_path, enclave=debug)
    try:
        refused(rig, "(?i)debug", policy=policy_for(debug))
        with rig.connect(policy=policy_for(debug, allow_debug=True)) as client:
            assert client.verified_quote.debug
    finally:
        rig.close()


def test_attack_revoked_pck_certificate(tmp_path):
    platform = SgxPlatform()
    platform.pki.revoke(platform.pck.serial, issuer="processor")
    rig = HardwareRig(tmp_path, platform=platform)
    try:
        refused(rig, "(?i)revoked")
    finally:
        rig.close()


def test_attack_tcb_status_the_policy_does_not_accept(tmp_path):
    platform = SgxPlatform()
    info = platform.pck_info
    platform.tcb_levels = default_tcb_levels(
        info.cpusvn, info.pcesvn + 1, at=platform.at
    )
    rig = HardwareRig(tmp_path, platform=platform)
    try:
        strict = policy_for(accepted_tcb_statuses=["UpToDate"])
        refused(rig, "SWHardeningNeeded", policy=strict)
        with rig.connect() as client:
            assert "INTEL-SA-00615" in client.verified_quote.advisory_ids
    finally:
        rig.close()


def test_attack_expired_tcb_info(tmp_path):
    """The PCCS serves a TCB info that expired an hour ago: the server will not
    serve stale collateral, and the client refuses to go on."""
    platform = SgxPlatform()
    stale = {
        "next_update": platform.at - dt.timedelta(hours=1),
        "issue_date": platform.at - dt.timedelta(days=30),
    }
    rig = HardwareRig(tmp_path, platform=platform, tcb_info_args=stale)
    try:
        refused(rig, "(?i)UNAVAILABLE|expired")
    finally:
        rig.close()


# --- the server side ---------------------------------------------------------------


def test_server_refuses_to_start_without_attestation_dir(tmp_path):
    server = LocalServer(
        [
            "--attestation-dir",
            str(tmp_path / "missing"),
            "--pccs-url",
            "https://127.0.0.1:9",
        ],
        start_timeout=30,
    )
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="--simulation"):
        server.start()
    assert time.monotonic() - started < 30
    assert server.process.returncode != 0


def test_server_refuses_a_non_dcap_enclave(tmp_path):
    device = FakeAttestationDir(tmp_path / "att", attestation_type="epid").start()
    try:
        server = LocalServer(
            ["--attestation-dir", str(device.path), "--pccs-url", "https://127.0.0.1:9"]
        )
        with pytest.raises(RuntimeError, match="dcap"):
            server.start()
    finally:
        device.stop()


def test_unavailable_when_collateral_expired_and_pccs_down(tmp_path):
    platform = SgxPlatform(validity=dt.timedelta(seconds=6))
    rig = HardwareRig(tmp_path, platform=platform)
    try:
        with rig.connect() as client:
            assert client.verified_quote.tcb_status == "UpToDate"
        rig.pccs.mode = "503"
        deadline = time.monotonic() + 20
        stub_channel = _untrusted_channel(rig.server)
        stub = untrusted_pb2_grpc.AttestationStub(stub_channel)
        code = None
        while time.monotonic() < deadline:
            try:
                stub.GetSgxQuoteWithCollateral(
                    untrusted_pb2.GetSgxQuoteWithCollateralRequest(), timeout=5
                )
            except grpc.RpcError as err:
                code, details = err.code(), err.details()
                break
            time.sleep(0.5)
        stub_channel.close()
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "expire" in details.lower() or "collateral" in details.lower()
        refused(rig, "UNAVAILABLE")
    finally:
        rig.close()


def _untrusted_channel(server: LocalServer) -> grpc.Channel:
    return grpc.secure_channel(
        f"127.0.0.1:{server.untrusted_port}",
        grpc.ssl_channel_credentials(server.host_certificate.read_bytes()),
        [("grpc.ssl_target_name_override", "blindai-srv")],
    )


class MitmUntrusted(untrusted_pb2_grpc.AttestationServicer):
    """The host's own untrusted service that relays the real quote with another
    enclave certificate (an attack only the binding check stops)."""

    def __init__(self, rig: HardwareRig) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from blindai._certs import self_signed_certificate

        key = ec.generate_private_key(ec.SECP256R1())
        cert = self_signed_certificate(
            key, "attacker", signing_key=Ed25519PrivateKey.generate().public_key()
        )
        self.fake_der = cert.public_bytes(serialization.Encoding.DER)
        self.channel = _untrusted_channel(rig.server)
        self.real = untrusted_pb2_grpc.AttestationStub(self.channel)
        state = rig.server.state_dir
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        untrusted_pb2_grpc.add_AttestationServicer_to_server(self, self.server)
        creds = grpc.ssl_server_credentials(
            [
                (
                    (state / "host_server.key").read_bytes(),
                    (state / "host_server.pem").read_bytes(),
                )
            ]
        )
        self.port = self.server.add_secure_port("127.0.0.1:0", creds)

    def GetServerInfo(self, request, context):  # noqa: N802
        return self.real.GetServerInfo(request, timeout=10)

    def GetCertificate(self, request, context):  # noqa: N802
        return untrusted_pb2.GetCertificateReply(enclave_tls_certificate=self.fake_der)

    def GetSgxQuoteWithCollateral(self, request, context):  # noqa: N802
        reply = self.real.GetSgxQuoteWithCollateral(request, timeout=10)
        reply.enclave_held_data = self.fake_der
        return reply

    def __enter__(self) -> MitmUntrusted:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(0).wait(5)
        self.channel.close()
