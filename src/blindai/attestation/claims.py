"""What a successful verification returns: claims whose origin has been proven."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from blindai.attestation.pki import INTEL_SGX_ROOT_CA_SHA256
from blindai.attestation.tcb import TcbStatus

DEBUG_FLAG = 0x2
INIT_FLAG = 0x1


@dataclass(frozen=True)
class VerifiedQuote:
    """The enclave's identity and the platform's TCB, as proven by a DCAP quote.

    Only :func:`~blindai.attestation.verify_quote` creates it. Byte fields are raw
    ``bytes`` in the quote's order; ``fmspc`` and ``pce_id`` are lowercase hex
    strings (as in the TCB info and in our fixture files). ``tcb_status`` is the
    platform status converged with the quoting enclave's (Intel QVL's rule);
    ``advisory_ids`` merges both levels' advisories, sorted and unique.
    ``collateral_valid_from``/``collateral_expires`` bound the window in which every
    certificate, CRL and signed document used was valid.
    """

    mr_enclave: bytes
    mr_signer: bytes
    report_data: bytes
    isv_prod_id: int
    isv_svn: int
    attributes: bytes
    misc_select: int
    cpu_svn: bytes
    tcb_status: TcbStatus
    platform_tcb_status: TcbStatus
    qe_tcb_status: TcbStatus
    advisory_ids: tuple[str, ...]
    tcb_date: dt.datetime
    tcb_evaluation_data_number: int
    tcb_info_version: int
    fmspc: str
    pce_id: str
    qe_isv_svn: int
    collateral_valid_from: dt.datetime
    collateral_expires: dt.datetime
    verified_at: dt.datetime
    trusted_root_sha256: str

    @property
    def flags(self) -> int:
        """ATTRIBUTES.FLAGS as a little-endian integer."""
        return int.from_bytes(self.attributes[:8], "little")

    @property
    def xfrm(self) -> int:
        """ATTRIBUTES.XFRM as a little-endian integer."""
        return int.from_bytes(self.attributes[8:16], "little")

    @property
    def debug(self) -> bool:
        """Whether the enclave runs in debug mode (its memory is readable)."""
        return bool(self.flags & DEBUG_FLAG)

    @property
    def uses_intel_root(self) -> bool:
        """Whether the chain ended at Intel's production SGX Root CA."""
        return self.trusted_root_sha256 == INTEL_SGX_ROOT_CA_SHA256


@dataclass(frozen=True)
class VerifiedAttestation:
    """A verified quote bound to the enclave's TLS certificate, accepted by a policy.

    ``enclave_certificate_der`` is the certificate whose SHA-256 the quote's report
    data starts with: the certificate to pin for the attested connection.
    """

    quote: VerifiedQuote
    enclave_certificate_der: bytes
