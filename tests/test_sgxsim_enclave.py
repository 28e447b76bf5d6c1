"""GramineAttestation against a fake ``/dev/attestation`` (FIFO-backed)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sgxsim import FakeAttestationDir, FakePccs, ReportFields, SgxPlatform, threads_left

from blindai.attestation import TcbStatus, verify_attestation, verify_quote
from blindai.attestation.policy import Policy
from blindai.server.enclave import (
    DcapPlatform,
    EnclaveUnavailable,
    GramineAttestation,
    report_data_for_certificate,
)
from blindai.server.pccs import PccsClient, PccsError
from blindai.server.untrusted import AttestationUnavailable

pytestmark = pytest.mark.sgx_sim


@pytest.fixture(autouse=True, scope="module")
def _no_thread_left_behind() -> Iterator[None]:
    yield
    assert (
        threads_left(
            "gramine-quote", "fake-attestation-dir", "collateral-refresher", "fake-pccs"
        )
        == []
    )


ENCLAVE = ReportFields(mr_enclave=hashlib.sha256(b"blindai-server").digest())


@pytest.fixture(scope="module")
def platform() -> SgxPlatform:
    return SgxPlatform()


@pytest.fixture
def device(tmp_path: Path, platform: SgxPlatform) -> Iterator[FakeAttestationDir]:
    with FakeAttestationDir(tmp_path / "attestation", platform, ENCLAVE) as fake:
        yield fake


def test_quote_carries_the_certificate_hash_and_verifies(
    device: FakeAttestationDir, platform: SgxPlatform
) -> None:
    attestation = GramineAttestation(device.path, timeout=5)
    attestation.check()
    report_data = report_data_for_certificate(b"enclave certificate DER")
    quote = attestation.quote_for(report_data)
    verified = verify_quote(
        quote, platform.collateral(), at=platform.at, trusted_root=platform.root_pem
    )
    assert verified.report_data == report_data
    assert verified.report_data[32:] == bytes(32)
    assert verified.mr_enclave == ENCLAVE.mr_enclave
    assert verified.tcb_status == TcbStatus.UP_TO_DATE


def test_each_quote_reflects_the_last_report_data(device: FakeAttestationDir) -> None:
    attestation = GramineAttestation(device.path, timeout=5)
    for index in range(10):
        data = bytes([index]) * 64
        assert attestation.quote_for(data)[368:432] == data
    assert device.quotes_served == 10


def test_concurrent_requests_never_mix_report_data(device: FakeAttestationDir) -> None:
    attestation = GramineAttestation(device.path, timeout=5)
    mismatches: list[int] = []

    def ask(index: int) -> None:
        data = bytes([index]) * 64
        if attestation.quote_for(data)[368:432] != data:
            mismatches.append(index)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not mismatches


def test_report_data_must_be_64_bytes(device: FakeAttestationDir) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        GramineAttestation(device.path).quote_for(bytes(32))


def test_no_enclave_says_what_is_missing_and_mentions_simulation(
    tmp_path: Path,
) -> None:
    with pytest.raises(EnclaveUnavailable, match="does not exist.*--simulation"):
        GramineAttestation(tmp_path / "nothing").check()


def test_non_dcap_gramine_is_refused(tmp_path: Path) -> None:
    with FakeAttestationDir(tmp_path / "att", attestation_type="none") as fake:
        with pytest.raises(EnclaveUnavailable, match='"dcap".*none'):
            GramineAttestation(fake.path).check()


def test_silent_quoting_enclave_times_out(tmp_path: Path) -> None:
    """A FIFO nobody serves blocks its reader: the timeout must fire."""
    directory = tmp_path / "stuck"
    directory.mkdir()
    (directory / "attestation_type").write_text("dcap")
    (directory / "user_report_data").write_bytes(bytes(64))
    os.mkfifo(directory / "quote")
    attestation = GramineAttestation(directory, timeout=0.2)
    attestation.check()
    try:
        with pytest.raises(EnclaveUnavailable, match="within 0.2 s"):
            attestation.quote_for(bytes(64))
        with pytest.raises(EnclaveUnavailable, match="previous quote request"):
            attestation.quote_for(bytes(64))
    finally:
        # Release the stuck reader so that no thread outlives the test.
        fd = os.open(directory / "quote", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)


def test_unreadable_quote_is_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "empty"
    directory.mkdir()
    (directory / "attestation_type").write_text("dcap")
    (directory / "user_report_data").write_bytes(bytes(64))
    (directory / "quote").write_bytes(b"")
    with pytest.raises(EnclaveUnavailable, match="no data"):
        GramineAttestation(directory, timeout=2).quote_for(bytes(64))


# -- the hardware-mode platform, end to end -----------------------------------


def _policy(enclave: ReportFields) -> Policy:
    return Policy.from_dict(
        {
            "mr_enclave": enclave.mr_enclave.hex(),
            "misc_select_hex": "0x0",
            "misc_mask_hex": "0xffffffff",
            "attributes_flags_hex": "0x4",
            "attributes_xfrm_hex": "0x3",
            "attributes_mask_flags_hex": "0xffffffffffffffff",
            "attributes_mask_xfrm_hex": "0xffffffffffffff1b",
            "allow_debug": False,
        }
    )


def test_dcap_platform_serves_evidence_a_client_accepts(
    device: FakeAttestationDir, platform: SgxPlatform
) -> None:
    cert = b"enclave TLS certificate (DER)"
    with FakePccs(platform) as pccs:
        client = PccsClient(pccs.url, ca_file=pccs.ca_file, timeout=5)
        server = DcapPlatform.start(GramineAttestation(device.path), client, cert)
        try:
            first = server.attestation()
            second = server.attestation()
        finally:
            server.close()
    assert pccs.total_requests == 4  # cached
    assert first.quote == second.quote and device.quotes_served == 1
    verified = verify_attestation(
        first, _policy(ENCLAVE), at=platform.at, trusted_root=platform.root_pem
    )
    assert verified.enclave_certificate_der == cert


def test_dcap_platform_without_collateral_is_unavailable(
    device: FakeAttestationDir, platform: SgxPlatform
) -> None:
    with FakePccs(platform) as pccs:
        pccs.mode = "503"
        client = PccsClient(pccs.url, ca_file=pccs.ca_file, timeout=5)
        server = DcapPlatform.start(GramineAttestation(device.path), client, b"c")
        try:
            with pytest.raises(AttestationUnavailable) as caught:
                server.attestation()
        finally:
            server.close()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "503" in caught.value.message


def test_dcap_platform_refuses_to_start_outside_an_enclave(tmp_path: Path) -> None:
    client = PccsClient("https://127.0.0.1:9")
    with pytest.raises(EnclaveUnavailable, match="--simulation"):
        DcapPlatform.start(GramineAttestation(tmp_path), client, b"c")


def test_dcap_platform_publishes_its_attestation_state(
    device: FakeAttestationDir, platform: SgxPlatform
) -> None:
    from prometheus_client import CollectorRegistry

    from blindai.server.metrics import AttestationGauges

    registry = CollectorRegistry()
    gauges = AttestationGauges(registry)
    with FakePccs(platform) as pccs:
        client = PccsClient(pccs.url, ca_file=pccs.ca_file, timeout=5)
        server = DcapPlatform.start(GramineAttestation(device.path), client, b"c")
        try:
            server.set_attestation_gauges(gauges, trusted_root=platform.root_pem)
            status = registry.get_sample_value(
                "blindai_attestation_tcb_status", {"status": "UpToDate"}
            )
            expiry = registry.get_sample_value(
                "blindai_attestation_collateral_expiry_timestamp_seconds"
            )
            # Against Intel's root the test platform's quote cannot verify: the
            # failed self-check is counted, and no status is claimed.
            server.set_attestation_gauges(gauges)
            pccs.mode = "503"
            with pytest.raises(PccsError, match="503"):
                server._cache.refresh()
        finally:
            server.close()
    assert status == 1
    assert expiry == (platform.at + platform.validity).timestamp()
    failures = {
        s.labels["error"]: s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name == "blindai_attestation_refresh_failures_total"
    }
    assert failures.get("self-check CollateralError") == 1
    assert failures.get("PccsError") == 1
