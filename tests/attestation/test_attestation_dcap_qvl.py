"""Cross-check with an independent verifier: dcap-qvl 0.7.0 (TCB info v3 only).

dcap-qvl takes the document bodies and signatures apart and CRLs as DER; the
bodies are cut from the envelopes at the raw substring, never re-serialised.
"""

from __future__ import annotations

import pytest
from attestation_cases import Case, load_case, params, sgx_case_names

from blindai.attestation import verify_quote
from blindai.attestation.collateral import split_envelope

dcap_qvl = pytest.importorskip("dcap_qvl")

V3 = params([n for n in sgx_case_names() if load_case(n).meta["tcb_info_version"] == 3])


def _dcap_qvl(case: Case, at: int):
    tcb, tcb_sig = split_envelope(case.text("tcb_info.json"), "tcbInfo", "tcb")
    qe, qe_sig = split_envelope(case.text("qe_identity.json"), "enclaveIdentity", "qe")
    collateral = case.collateral()
    qvl_collateral = dcap_qvl.QuoteCollateralV3(
        collateral.pck_crl_issuer_chain,
        case.read("root_ca_crl.der"),
        case.read("pck_crl.der"),
        collateral.tcb_info_issuer_chain,
        tcb.decode(),
        tcb_sig,
        collateral.qe_identity_issuer_chain or collateral.tcb_info_issuer_chain,
        qe.decode(),
        qe_sig,
    )
    return dcap_qvl.verify(case.quote, qvl_collateral, at)


@pytest.mark.parametrize("case", V3, indirect=True)
def test_same_status_and_advisories_as_dcap_qvl(case: Case) -> None:
    ours = verify_quote(case.quote, case.collateral(), at=case.instant)
    theirs = _dcap_qvl(case, case.meta["verification"]["instant"])
    assert ours.tcb_status == theirs.status
    assert ours.advisory_ids == tuple(sorted(set(theirs.advisory_ids)))
    assert theirs.status == case.meta["oracle"]["dcap_qvl"]["status"]
