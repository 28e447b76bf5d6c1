"""The real fixture cases: expected verdicts, validity windows, listed mutations.

Source of the vectors: ../shared/fixtures/attestation (each case.toml names the
public repository, commit and path of every file).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from attestation_cases import (
    Case,
    crl_pem,
    load_case,
    params,
    sgx_case_names,
    tdx_case_names,
    utc,
)

from blindai.attestation import TcbStatus, verify_quote
from blindai.errors import (
    AttestationError,
    CollateralError,
    CollateralExpiredError,
    QuoteFormatError,
    QuoteVerificationError,
)

SGX = params(sgx_case_names())
TDX = params(tdx_case_names())


def verify(case: Case, at: dt.datetime | None = None, **changes):
    collateral = case.collateral()
    quote = changes.pop("quote", case.quote)
    root = changes.pop("trusted_root", case.root_pem)
    for field, value in changes.items():
        setattr(collateral, field, value)
    return verify_quote(quote, collateral, at=at or case.instant, trusted_root=root)


@pytest.mark.parametrize("case", SGX, indirect=True)
def test_case_gives_expected_verdict_and_measurements(case: Case) -> None:
    verified = verify(case)
    expected = case.expected

    assert verified.tcb_status == TcbStatus(expected["platform_tcb_status"])
    assert verified.platform_tcb_status == expected["platform_tcb_status"]
    assert verified.qe_tcb_status == expected["qe_tcb_status"]
    assert verified.advisory_ids == tuple(sorted(set(expected["advisory_ids"])))
    assert verified.mr_enclave.hex() == expected["mr_enclave"]
    assert verified.mr_signer.hex() == expected["mr_signer"]
    assert verified.report_data.hex() == expected["report_data"]
    assert verified.attributes.hex() == expected["attributes"]
    assert verified.misc_select == expected["misc_select"]
    assert verified.isv_prod_id == expected["isv_prod_id"]
    assert verified.isv_svn == expected["isv_svn"]
    assert verified.debug is expected["debug"]
    assert verified.fmspc == expected["fmspc"]
    assert verified.pce_id == expected["pceid"]
    assert verified.qe_isv_svn == expected["qe_isvsvn"]
    assert verified.tcb_date == dt.datetime.fromisoformat(expected["platform_tcb_date"])
    assert verified.tcb_info_version == case.meta["tcb_info_version"]


@pytest.mark.parametrize("case", SGX, indirect=True)
def test_window_matches_case_toml(case: Case) -> None:
    verified = verify(case)
    start, end = case.window
    assert verified.collateral_valid_from == utc(start)
    assert verified.collateral_expires == utc(end)


@pytest.mark.parametrize("case", SGX, indirect=True)
def test_passes_at_exact_window_bounds(case: Case) -> None:
    start, end = case.window
    verify(case, at=utc(start))
    verify(case, at=utc(end))


def _culprit(set_by: str) -> str:
    kind, _, name = set_by.partition(":")
    return {
        "crl:pck_crl": "pck_crl",
        "crl:root_ca_crl": "root_ca_crl",
        "json:tcbInfo": "the TCB info",
        "json:qeIdentity": "the QE identity",
    }.get(set_by, f"'{name}'" if kind == "cert" else name)


@pytest.mark.parametrize("case", SGX, indirect=True)
def test_refused_one_second_before_window(case: Case) -> None:
    start, _ = case.window
    with pytest.raises(CollateralExpiredError, match="not valid before") as info:
        verify(case, at=utc(start - 1))
    names = [_culprit(s) for s in case.meta["verification"]["window_start_set_by"]]
    assert any(name in str(info.value) for name in names), str(info.value)


@pytest.mark.parametrize("case", SGX, indirect=True)
def test_refused_one_second_after_window(case: Case) -> None:
    _, end = case.window
    with pytest.raises(CollateralExpiredError, match="expired at") as info:
        verify(case, at=utc(end + 1))
    names = [_culprit(s) for s in case.meta["verification"]["window_end_set_by"]]
    assert any(name in str(info.value) for name in names), str(info.value)


@pytest.mark.parametrize("case", SGX, indirect=True)
def test_refused_now_with_stale_collateral(case: Case) -> None:
    collateral = case.collateral()
    with pytest.raises(CollateralExpiredError):
        verify_quote(case.quote, collateral, trusted_root=case.root_pem)


@pytest.mark.parametrize("case", TDX, indirect=True)
def test_tdx_quote_is_refused_cleanly(case: Case) -> None:
    with pytest.raises(QuoteFormatError, match="TDX"):
        verify(case)
    with pytest.raises(QuoteFormatError, match="TDX"):
        verify(case, at=utc(case.window[0]))


def test_naive_instant_is_a_programming_error() -> None:
    names = sgx_case_names()
    if not names:
        pytest.skip("no fixtures")
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(load_case(names[0]), at=dt.datetime(2022, 4, 11, 13, 5, 28))


# --- the [[mutation]] entries of each case.toml ----------------------------------

_QE_REPORT = 436 + 128


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1 :]


def _bump_issue_date(document: str, member: str) -> str:
    start = document.index(f'"{member}":')
    match = re.compile(r'"issueDate":"([^"]*?)(\d)Z"').search(document, start)
    assert match is not None
    digit = str((int(match.group(2)) + 1) % 10)
    return document[: match.start(2)] + digit + document[match.end(2) :]


def _space_after_first_comma(document: str, member: str) -> str:
    comma = document.index(",", document.index(f'"{member}":'))
    return document[: comma + 1] + " " + document[comma + 1 :]


def _apply(case: Case, edit: str) -> dict:
    """The verify() arguments that reproduce one mutation from its description."""
    quote_offsets = {
        "quote.report_data[0]^=1": 48 + 320,
        "quote.isv_signature[0]^=1": 436,
        "quote.qe_report.isvsvn^=1": _QE_REPORT + 258,
        "quote.qe_report_signature[0]^=1": _QE_REPORT + 384,
    }
    if edit in quote_offsets:
        return {"quote": _flip(case.quote, quote_offsets[edit])}
    if edit.startswith("tcb_info.issueDate"):
        return {"tcb_info": _bump_issue_date(case.text("tcb_info.json"), "tcbInfo")}
    if edit.startswith("qe_identity.issueDate"):
        document = case.text("qe_identity.json")
        return {"qe_identity": _bump_issue_date(document, "enclaveIdentity")}
    if edit.startswith("tcb_info: one space inserted"):
        document = case.text("tcb_info.json")
        return {"tcb_info": _space_after_first_comma(document, "tcbInfo")}
    if edit.startswith("trusted_root_ca.pem replaced by Intel's QVL test root"):
        other = load_case("intel-qvl-sampledata-dcap1.9")
        return {"trusted_root": other.root_pem}
    if edit.startswith("pck_crl.der replaced by the 2025-08 PCK *Platform* CA CRL"):
        other = load_case("automata-sgx-00606a-2025-08-tcbv3")
        return {"pck_crl": crl_pem(other.read("pck_crl.der"))}
    raise AssertionError(f"unknown mutation {edit!r}: teach _apply about it")


def _mutations() -> list:
    found = [
        pytest.param(name, index, id=f"{name}-{index}")
        for name in sgx_case_names()
        for index, _ in enumerate(load_case(name).mutations)
    ]
    return found or [pytest.param(None, 0, marks=pytest.mark.skip("no fixtures"))]


@pytest.mark.parametrize(("name", "index"), _mutations())
def test_listed_mutation_is_refused(name: str, index: int) -> None:
    """Every mutation is refused, including the two QVL accepts: whitespace in the
    signed TCB info (we verify raw bytes) and a PCK CRL issued after the instant
    (we check thisUpdate)."""
    case = load_case(name)
    edit = case.mutations[index]["edit"]
    with pytest.raises(AttestationError) as info:
        verify(case, **_apply(case, edit))
    expected = {
        "quote.": QuoteVerificationError,
        "tcb_info": CollateralError,
        "qe_identity": CollateralError,
        "trusted_root": CollateralError,
        "pck_crl": CollateralError,
    }
    kind = next(v for k, v in expected.items() if edit.startswith(k))
    assert isinstance(info.value, kind), (edit, repr(info.value))


def test_enclave_held_data_hash_is_report_data() -> None:
    if "blindai-0.3-proofs" not in sgx_case_names():
        pytest.skip("no fixtures")
    case = load_case("blindai-0.3-proofs")
    digest = hashlib.sha256(case.read("enclave_held_data.der")).hexdigest()
    assert case.expected["report_data"].startswith(digest)
