"""Derived tamperings of real evidence, each named after the attack it stands for.

Base evidence: the BlindAI 0.3 proof (PCK chain shipped in the collateral) and the
dcap-rs quote of 2024-05 (PCK chain taken from the quote's certification data).
Every tampering must raise an AttestationError subclass, never anything else.
"""

from __future__ import annotations

import datetime as dt

import pytest
from attestation_cases import FIXTURES, MISSING_REASON, Case, crl_pem, load_case
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from blindai.attestation import verify_quote
from blindai.attestation.quote import MAX_QUOTE_SIZE, Quote
from blindai.errors import (
    AttestationError,
    CollateralError,
    QuoteFormatError,
    QuoteVerificationError,
)

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=MISSING_REASON)

BLINDAI = "blindai-0.3-proofs"
DCAPRS = "dcaprs-sgx-00606a-2024-05-tcbv2"
OTHER = "phala-sgx-00a067-2025-06-tcbv3"


def verify(
    case: Case,
    *,
    quote: bytes | None = None,
    root: bytes | None = None,
    **fields: object,
):
    collateral = case.collateral()
    for name, value in fields.items():
        setattr(collateral, name, value)
    return verify_quote(
        case.quote if quote is None else quote,
        collateral,
        at=case.instant,
        trusted_root=case.root_pem if root is None else root,
    )


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def cert_data_offset(quote: bytes) -> int:
    return 1014 + Quote.from_bytes(quote).qe_auth_data.__len__() + 6


# --- the quote ---------------------------------------------------------------------

QUOTE_REGIONS = {
    "forged_qe_svn_in_header": 8,
    "forged_user_data_in_header": 30,
    "forged_cpu_svn": 48 + 0,
    "forged_misc_select": 48 + 16,
    "cleared_debug_attribute": 48 + 48,
    "forged_mr_enclave": 48 + 64 + 5,
    "forged_mr_signer": 48 + 128 + 5,
    "forged_isv_prod_id": 48 + 256,
    "forged_isv_svn": 48 + 258,
    "forged_report_data": 48 + 320 + 7,
    "forged_quote_signature": 436 + 10,
    "substituted_attestation_key": 500 + 5,
    "forged_qe_report": 564 + 64,
    "forged_qe_report_signature": 948 + 3,
    "forged_qe_auth_data": 1014 + 2,
}


@pytest.mark.parametrize("name", [BLINDAI, DCAPRS])
@pytest.mark.parametrize("attack", sorted(QUOTE_REGIONS))
def test_flipped_quote_byte_is_refused(attack: str, name: str) -> None:
    case = load_case(name)
    with pytest.raises(QuoteVerificationError):
        verify(case, quote=flip(case.quote, QUOTE_REGIONS[attack]))


def test_forged_version_is_refused_as_format() -> None:
    case = load_case(BLINDAI)
    with pytest.raises(QuoteFormatError, match="version"):
        verify(case, quote=flip(case.quote, 0))


def test_forged_pck_chain_in_certification_data_is_refused() -> None:
    case = load_case(DCAPRS)
    start = cert_data_offset(case.quote)
    for delta in (100, 700, 1500, 2500):  # inside the leaf, the CA and the root
        with pytest.raises(CollateralError):
            verify(case, quote=flip(case.quote, start + delta))


def test_forged_certification_data_type_is_refused() -> None:
    case = load_case(DCAPRS)
    with pytest.raises(CollateralError, match="type"):
        verify(case, quote=flip(case.quote, cert_data_offset(case.quote) - 6))


def test_forged_length_fields_are_refused() -> None:
    case = load_case(DCAPRS)
    for offset in (432, 1012, cert_data_offset(case.quote) - 4):
        with pytest.raises(QuoteFormatError):
            verify(case, quote=flip(case.quote, offset))


@pytest.mark.parametrize("name", [BLINDAI, DCAPRS])
def test_truncated_quote_is_refused(name: str) -> None:
    quote = load_case(name).quote
    lengths = [*range(0, 1100, 7), *range(1100, len(quote), 97), len(quote) - 1]
    for length in lengths:
        with pytest.raises(QuoteFormatError):
            Quote.from_bytes(quote[:length])


@pytest.mark.parametrize("padding", [b"\x00", b"\x00" * 64, b"junk"])
def test_padded_quote_is_refused(padding: bytes) -> None:
    case = load_case(BLINDAI)
    with pytest.raises(QuoteFormatError, match="truncated or padded"):
        verify(case, quote=case.quote + padding)


def test_quote_size_limit() -> None:
    quote = load_case(BLINDAI).quote
    at_limit = quote + bytes(MAX_QUOTE_SIZE - len(quote))
    with pytest.raises(QuoteFormatError, match="padded"):
        Quote.from_bytes(at_limit)
    with pytest.raises(QuoteFormatError, match="more than"):
        Quote.from_bytes(at_limit + b"\x00")


def test_non_bytes_quote_is_refused() -> None:
    with pytest.raises(QuoteFormatError, match="bytes"):
        Quote.from_bytes("not bytes")  # type: ignore[arg-type]


# --- the collateral ----------------------------------------------------------------

REQUIRED = [
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "qe_identity",
]
OPTIONAL = [
    "pck_crl_issuer_chain",
    "qe_identity_issuer_chain",
    "pck_certificate",
    "pck_signing_chain",
]


@pytest.mark.parametrize("field", REQUIRED)
def test_emptied_required_collateral_is_refused(field: str) -> None:
    with pytest.raises(CollateralError, match="empty|not a JSON"):
        verify(load_case(BLINDAI), **{field: ""})


@pytest.mark.parametrize("field", OPTIONAL)
def test_emptied_optional_collateral_falls_back(field: str) -> None:
    """Empty PCK fields come from the quote; empty QE chain is the TCB chain."""
    verify(load_case(BLINDAI), **{field: ""})


def _corrupt(text: str) -> str:
    """Change one character a third of the way into the first PEM body or JSON."""
    start = text.index("\n", text.index("-----BEGIN")) if "-----BEGIN" in text else 0
    first_end = text.find("-----END")
    end = first_end if first_end > 0 else len(text)
    offset = start + (end - start) // 3
    char = text[offset]
    replacement = "B" if char != "B" else "C"
    return text[:offset] + replacement + text[offset + 1 :]


@pytest.mark.parametrize("field", REQUIRED + OPTIONAL)
def test_corrupted_collateral_field_is_refused(field: str) -> None:
    case = load_case(BLINDAI)
    value = getattr(case.collateral(), field)
    with pytest.raises(CollateralError):
        verify(case, **{field: _corrupt(value)})


FOREIGN = {  # field -> a case whose value for it must not serve the BlindAI quote
    "root_ca_crl": DCAPRS,  # genuine root CRL of 2024: not yet valid in 2022
    "pck_crl": DCAPRS,  # the Platform CA's CRL
    "tcb_info": DCAPRS,  # another FMSPC
    "qe_identity": DCAPRS,  # genuine, but issued two years later
    # the TCB signing certificate re-issued in 2025 (same key and serial)
    "tcb_info_issuer_chain": "automata-sgx-00606a-2025-08-tcbv3",
    "pck_crl_issuer_chain": "phala-tdx-b0c06f-2025-06-v4",  # the Platform CA
}


@pytest.mark.parametrize("field", sorted(FOREIGN))
def test_collateral_of_another_platform_is_refused(field: str) -> None:
    case = load_case(BLINDAI)
    value = getattr(load_case(FOREIGN[field]).collateral(), field)
    with pytest.raises(AttestationError):
        verify(case, **{field: value})


def test_tcb_info_of_another_fmspc_is_refused() -> None:
    """A genuine TCB info for another CPU family (perhaps a kinder verdict)."""
    case = load_case(DCAPRS)
    phala = load_case(OTHER)
    with pytest.raises(CollateralError, match="FMSPC"):
        verify(case, tcb_info=phala.text("tcb_info.json"))


SWAPS = [
    ("pck_signing_chain", "tcb_info_issuer_chain"),
    ("tcb_info_issuer_chain", "pck_signing_chain"),
    ("qe_identity_issuer_chain", "pck_signing_chain"),
    ("pck_certificate", "pck_signing_chain"),
    ("root_ca_crl", "pck_crl"),
    ("pck_crl", "root_ca_crl"),
    ("tcb_info", "qe_identity"),
    ("qe_identity", "tcb_info"),
]


@pytest.mark.parametrize(("target", "source"), SWAPS)
def test_swapped_collateral_is_refused(target: str, source: str) -> None:
    case = load_case(BLINDAI)
    value = getattr(case.collateral(), source)
    with pytest.raises(CollateralError):
        verify(case, **{target: value})


def test_tdx_tcb_info_and_td_qe_identity_are_refused() -> None:
    """Genuinely signed TDX documents must not stand in for SGX ones."""
    tdx = load_case("phala-tdx-b0c06f-2025-06-v4")
    case = load_case("phala-sgx-00a067-2025-06-tcbv3")
    with pytest.raises(CollateralError, match="not SGX"):
        verify(case, tcb_info=tdx.text("tcb_info.json"))
    with pytest.raises(CollateralError, match="TD_QE"):
        verify(case, qe_identity=tdx.text("qe_identity.json"))


# --- trust anchors and CRLs ----------------------------------------------------------


def test_another_root_is_refused() -> None:
    case = load_case(BLINDAI)
    other_root = load_case("intel-qvl-sampledata-dcap1.9").root_pem
    with pytest.raises(CollateralError, match="not signed by"):
        verify(case, root=other_root)


def test_intermediate_as_root_is_refused() -> None:
    case = load_case(BLINDAI)
    pck_ca = case.text("pck_cert_chain.pem").split("-----END CERTIFICATE-----")[0]
    with pytest.raises(CollateralError):
        verify(case, root=(pck_ca + "-----END CERTIFICATE-----\n").encode())


def test_garbage_root_is_refused() -> None:
    with pytest.raises(CollateralError, match="trusted root"):
        verify(load_case(BLINDAI), root=b"-----BEGIN CERTIFICATE-----\nAAAA\n")


def test_default_root_is_intel_and_pinned() -> None:
    case = load_case(BLINDAI)
    verified = verify_quote(case.quote, case.collateral(), at=case.instant)
    assert verified.uses_intel_root
    sample = load_case("intel-qvl-sampledata-dcap1.9")
    with pytest.raises(CollateralError):
        verify_quote(sample.quote, sample.collateral(), at=sample.instant)


def test_pck_crl_of_the_other_pck_ca_is_refused() -> None:
    """A Platform-CA CRL cannot clear a Processor-CA PCK certificate."""
    case = load_case(BLINDAI)
    platform_crl = load_case(DCAPRS).read("pck_crl.der")
    with pytest.raises(CollateralError, match="pck_crl is issued by"):
        verify(case, pck_crl=crl_pem(platform_crl))


def test_crl_issuer_chain_of_the_other_pck_ca_is_refused() -> None:
    case = load_case(DCAPRS)  # Platform CA
    processor_chain = load_case(BLINDAI).text("pck_crl_issuer_chain.pem")
    with pytest.raises(CollateralError, match="pck_crl_issuer_chain"):
        verify(case, pck_crl_issuer_chain=processor_chain)


def _forged_crl(genuine_der: bytes, instant: dt.datetime) -> str:
    """A CRL naming the genuine issuer, listing nothing, signed by a throwaway key."""
    genuine = x509.load_der_x509_crl(genuine_der)
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(genuine.issuer)
        .last_update(instant - dt.timedelta(days=1))
        .next_update(instant + dt.timedelta(days=1))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return forged.public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize("field", ["pck_crl", "root_ca_crl"])
def test_crl_signed_by_throwaway_key_is_refused(field: str) -> None:
    case = load_case(BLINDAI)
    file = "pck_crl.der" if field == "pck_crl" else "root_ca_crl.der"
    forged = _forged_crl(case.read(file), case.instant)
    with pytest.raises(CollateralError, match="is not signed by"):
        verify(case, **{field: forged})


def test_crl_as_der_bytes_and_lf_pem_are_accepted() -> None:
    """Transport variants: DER CRLs (bytes), LF-only PEM, NUL-terminated chains."""
    case = load_case(BLINDAI)
    collateral = case.collateral()
    lf = {f: getattr(collateral, f).replace("\r\n", "\n") for f in OPTIONAL}
    verify_quote(
        case.quote,
        type(
            "Collateral",
            (),
            {
                **lf,
                "root_ca_crl": case.read("root_ca_crl.der"),
                "pck_crl": case.read("pck_crl.der"),
                "tcb_info_issuer_chain": collateral.tcb_info_issuer_chain + "\x00",
                "tcb_info": collateral.tcb_info.encode(),
                "qe_identity": collateral.qe_identity,
            },
        )(),
        at=case.instant,
        trusted_root=case.root_pem.decode(),
    )
