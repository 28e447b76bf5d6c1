"""PccsClient and CollateralCache against a fake PCCS on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sgxsim import FakePccs, PckInfo, SgxPlatform, threads_left

from blindai.attestation import TcbStatus, verify_quote
from blindai.server.pccs import (
    CollateralCache,
    CollateralUnavailable,
    PccsClient,
    PccsError,
    PckChain,
    collateral_expiry,
)

pytestmark = pytest.mark.sgx_sim


@pytest.fixture(autouse=True, scope="module")
def _no_thread_left_behind() -> Iterator[None]:
    yield
    assert threads_left("collateral-refresher", "fake-pccs") == []


SECOND = dt.timedelta(seconds=1)


class Clock:
    """A settable clock for the cache."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def platform() -> SgxPlatform:
    return SgxPlatform()


@pytest.fixture
def pccs(platform: SgxPlatform) -> Iterator[FakePccs]:
    with FakePccs(platform) as server:
        yield server


def _client(pccs: FakePccs, **kw: object) -> PccsClient:
    return PccsClient(pccs.url, ca_file=pccs.ca_file, timeout=5, **kw)  # type: ignore[arg-type]


def _wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


# -- fetching -----------------------------------------------------------------


@pytest.mark.parametrize("api_version, tcb_version", [(3, 2), (4, 3)])
def test_fetched_collateral_verifies(
    pccs: FakePccs, platform: SgxPlatform, api_version: int, tcb_version: int
) -> None:
    quote = platform.make_quote()
    collateral = _client(pccs, api_version=api_version).fetch_collateral(quote)
    assert collateral.version == api_version
    verified = verify_quote(
        quote, collateral, at=platform.at, trusted_root=platform.root_pem
    )
    assert verified.tcb_status == TcbStatus.UP_TO_DATE
    assert verified.tcb_info_version == tcb_version
    assert collateral.pck_certificate.encode() == platform.pck.pem
    assert set(pccs.requests) == {
        f"/sgx/certification/v{api_version}/{route}"
        for route in ("pckcrl", "tcb", "qe/identity", "rootcacrl")
    }


def test_platform_ca_quote_gets_the_platform_crl() -> None:
    platform = SgxPlatform(ca_type="platform")
    with FakePccs(platform) as pccs:
        quote = platform.make_quote()
        collateral = _client(pccs).fetch_collateral(quote)
    verify_quote(quote, collateral, at=platform.at, trusted_root=platform.root_pem)


@pytest.mark.parametrize("encoding", ["pem", "der", "hex"])
def test_crl_in_any_pccs_encoding_becomes_pem(
    pccs: FakePccs, platform: SgxPlatform, encoding: str
) -> None:
    pccs.pck_crl_format = encoding
    collateral = _client(pccs).fetch_collateral(platform.make_quote())
    assert collateral.pck_crl.startswith("-----BEGIN X509 CRL-----")


def test_unknown_fmspc_is_a_pccs_error(pccs: FakePccs) -> None:
    other = SgxPlatform(pck_info=PckInfo(fmspc=b"\x01" * 6))
    with pytest.raises(PccsError, match="404"):
        _client(pccs).fetch_collateral(other.make_quote())


def test_pccs_down_is_a_pccs_error(pccs: FakePccs, platform: SgxPlatform) -> None:
    for mode in ("503", "drop"):
        pccs.mode = mode
        with pytest.raises(PccsError):
            _client(pccs).fetch_collateral(platform.make_quote())


def test_attack_pccs_impersonated_with_another_tls_ca(
    pccs: FakePccs, platform: SgxPlatform
) -> None:
    with FakePccs(platform) as impostor:
        client = PccsClient(impostor.url, ca_file=pccs.ca_file, timeout=5)
        with pytest.raises(PccsError, match="(?i)certificate"):
            client.fetch_collateral(platform.make_quote())
        with pytest.raises(PccsError):
            PccsClient(impostor.url, timeout=5).fetch_collateral(platform.make_quote())
    assert impostor.total_requests == 0


def test_plain_http_is_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        PccsClient("http://127.0.0.1:8081")


def test_missing_issuer_chain_is_a_pccs_error(
    pccs: FakePccs, platform: SgxPlatform
) -> None:
    original = pccs.answer

    def without_headers(path, query):
        status, headers, body = original(path, query)
        return status, {}, body

    pccs.answer = without_headers  # type: ignore[method-assign]
    with pytest.raises(PccsError, match="Issuer-Chain"):
        _client(pccs).fetch_collateral(platform.make_quote())


# -- caching -------------------------------------------------------------------


def test_expiry_is_the_earliest_next_update(
    pccs: FakePccs, platform: SgxPlatform
) -> None:
    soon = platform.at + dt.timedelta(hours=3)
    pccs.qe_identity_args = {"next_update": soon}
    collateral = _client(pccs).fetch_collateral(platform.make_quote())
    assert collateral_expiry(collateral) == soon


def test_cache_serves_without_asking_again(
    pccs: FakePccs, platform: SgxPlatform
) -> None:
    cache = CollateralCache(
        _client(pccs), platform.make_quote(), clock=Clock(platform.at)
    )
    first = cache.get()
    assert cache.get() is first
    assert pccs.total_requests == 4


def test_outage_while_valid_changes_nothing(
    pccs: FakePccs, platform: SgxPlatform
) -> None:
    clock = Clock(platform.at)
    cache = CollateralCache(_client(pccs), platform.make_quote(), clock=clock)
    first = cache.get()
    pccs.mode = "503"
    clock.now = cache.expires_at - SECOND  # type: ignore[operator]
    assert cache.get() is first


def test_expiry_with_pccs_down_is_unavailable(
    pccs: FakePccs, platform: SgxPlatform
) -> None:
    clock = Clock(platform.at)
    cache = CollateralCache(_client(pccs), platform.make_quote(), clock=clock)
    cache.get()
    pccs.mode = "drop"
    clock.now = cache.expires_at  # type: ignore[assignment]
    with pytest.raises(CollateralUnavailable, match="expired at"):
        cache.get()
    pccs.mode = "up"
    pccs.tcb_info_args = {"next_update": clock.now + dt.timedelta(days=60)}
    pccs.qe_identity_args = dict(pccs.tcb_info_args)
    pccs.pck_crl_args = dict(pccs.tcb_info_args)
    pccs.root_crl_args = dict(pccs.tcb_info_args)
    assert cache.get() is not None
    assert cache.expires_at > clock.now  # type: ignore[operator]


def test_attack_stale_pccs_collateral_is_not_served(
    pccs: FakePccs, platform: SgxPlatform
) -> None:
    clock = Clock(platform.at + dt.timedelta(days=31))
    cache = CollateralCache(_client(pccs), platform.make_quote(), clock=clock)
    with pytest.raises(CollateralUnavailable, match="expired"):
        cache.get()


def test_refresher_renews_before_expiry(pccs: FakePccs, platform: SgxPlatform) -> None:
    clock = Clock(platform.at)
    cache = CollateralCache(
        _client(pccs), platform.make_quote(), clock=clock, min_interval=0.01
    )
    cache.refresh()
    first_expiry = cache.expires_at
    clock.now = first_expiry - dt.timedelta(seconds=0.2)  # type: ignore[operator]
    later = first_expiry + dt.timedelta(days=1)  # type: ignore[operator]
    for args in ("tcb_info_args", "qe_identity_args", "pck_crl_args", "root_crl_args"):
        setattr(pccs, args, {"next_update": later})
    cache.start()
    try:
        assert _wait_for(lambda: cache.expires_at != first_expiry)
    finally:
        cache.stop()
    assert cache.get() is not None


def test_refresher_retries_with_backoff_during_an_outage(
    pccs: FakePccs, platform: SgxPlatform
) -> None:
    clock = Clock(platform.at)
    cache = CollateralCache(
        _client(pccs),
        platform.make_quote(),
        clock=clock,
        min_interval=0.02,
        refresh_fraction=1e-9,
        max_backoff=0.1,
    )
    first = cache.get()
    pccs.mode = "503"
    cache.start()
    try:
        assert _wait_for(lambda: pccs.total_requests >= 4 + 3)
        assert cache.get() is first
    finally:
        cache.stop()


def test_untrusted_quote_without_chain_is_refused(pccs: FakePccs) -> None:
    with pytest.raises(ValueError):
        _client(pccs).fetch_collateral(b"\x03\x00" + bytes(100))
    assert pccs.total_requests == 0


FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/attestation"


@pytest.mark.parametrize(
    "case, ca_type, fmspc",
    [
        ("blindai-0.3-proofs", "processor", "00906ea10000"),
        ("automata-sgx-00606a-2025-08-tcbv3", "platform", "00606a000000"),
    ],
)
def test_real_quotes_name_their_pck_ca_and_fmspc(
    case: str, ca_type: str, fmspc: str
) -> None:
    """Real quotes (fixtures, see their case.toml) select the right PCCS requests."""
    quote_file = FIXTURES / case / "quote.bin"
    if not quote_file.exists():
        pytest.skip(f"fixture {quote_file} not available")
    chain = PckChain.from_quote(quote_file.read_bytes())
    assert (chain.ca_type, chain.fmspc) == (ca_type, fmspc)
    assert len(chain.issuers) == 2


def test_redirects_are_not_followed(pccs: FakePccs, platform: SgxPlatform) -> None:
    original = pccs.answer

    def redirecting(path, query):
        if path.endswith("/tcb"):
            return 302, {"Location": "http://127.0.0.1:9/elsewhere"}, b""
        return original(path, query)

    pccs.answer = redirecting  # type: ignore[method-assign]
    with pytest.raises(PccsError, match="302"):
        _client(pccs).fetch_collateral(platform.make_quote())
