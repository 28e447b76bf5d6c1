"""One synthetic SGX machine: its PKI, PCK certificate, QE, quotes and collateral.

:class:`SgxPlatform` ties :mod:`.pki`, :mod:`.documents` and :mod:`.quote`
together with consistent values (the PCK certificate's FMSPC and TCB match the TCB
info, the QE report matches the QE identity), so a quote it makes verifies as
UpToDate against the collateral it makes, with :attr:`SgxPlatform.root_pem` as the
trust anchor. Every part can be replaced to build a failing case.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from blindai.pb import untrusted_pb2

from . import documents as docs
from .pki import Issued, PckInfo, TestPki, crl_pem, utc_now
from .quote import TEST_QE, QuoteBuilder, ReportFields

DAY = dt.timedelta(days=1)


def default_qe_levels(isvsvn: int, *, at: dt.datetime) -> list[docs.QeTcbLevel]:
    """QE levels: UpToDate from ``isvsvn``, OutOfDate below (newest first)."""
    return [
        docs.QeTcbLevel(isvsvn, "UpToDate", at - 30 * DAY),
        docs.QeTcbLevel(
            max(isvsvn - 2, 0), "OutOfDate", at - 400 * DAY, ("INTEL-SA-00615",)
        ),
    ]


@dataclass
class SgxPlatform:
    """A synthetic SGX platform valid around ``at``.

    Documents are issued an hour before ``at`` and next updated ``validity`` after
    it, unless the call that makes them says otherwise.
    """

    at: dt.datetime = field(default_factory=utc_now)
    ca_type: str = "processor"
    pck_info: PckInfo = field(default_factory=PckInfo)
    intel_names: bool = False
    validity: dt.timedelta = 30 * DAY
    pki: TestPki = field(init=False)
    pck: Issued = field(init=False)
    builder: QuoteBuilder = field(init=False)
    tcb_levels: list[docs.TcbLevel] = field(init=False)
    qe_levels: list[docs.QeTcbLevel] = field(init=False)

    def __post_init__(self) -> None:
        self.pki = TestPki(at=self.at, intel_names=self.intel_names)
        self.pck = self.pki.issue_pck(self.pck_info, ca=self.ca_type)
        self.builder = QuoteBuilder(self.pck, self.pck_chain_pem)
        info = self.pck_info
        self.tcb_levels = docs.default_tcb_levels(info.cpusvn, info.pcesvn, at=self.at)
        self.qe_levels = default_qe_levels(TEST_QE.isv_svn, at=self.at)

    # -- certificates ----------------------------------------------------------

    @property
    def root_pem(self) -> bytes:
        """The trust anchor to give a verifier (PEM)."""
        return self.pki.root.pem

    @property
    def pck_chain_pem(self) -> bytes:
        """Leaf, PCK CA, root: what the quote's certification data carries."""
        return self.pck.pem + self.pki.pck_ca_chain_pem(self.ca_type)

    def replace_pck(self, pck: Issued) -> None:
        """Use another PCK leaf (expired, revoked, from another CA...) in quotes."""
        self.pck = pck
        self.builder = dataclasses.replace(
            self.builder, pck=pck, pck_chain_pem=self.pck_chain_pem
        )

    # -- quotes ----------------------------------------------------------------

    def make_quote(
        self,
        report_data: bytes = bytes(64),
        *,
        enclave: ReportFields | None = None,
        **fields: object,
    ) -> bytes:
        """A quote v3 for ``enclave`` (or the default one with ``fields`` changed).

        ``fields`` are :class:`ReportFields` names: ``mr_enclave``, ``mr_signer``,
        ``attributes``, ``misc_select``, ``isv_prod_id``, ``isv_svn``...
        """
        enclave = dataclasses.replace(enclave or ReportFields(), **fields)  # type: ignore[arg-type]
        return self.builder.build(report_data, enclave)

    # -- documents -------------------------------------------------------------

    def tcb_info(
        self,
        *,
        version: int = 3,
        issue_date: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        levels: Sequence[docs.TcbLevel] | None = None,
        signer: Issued | None = None,
        fmspc: bytes | None = None,
    ) -> str:
        """The signed TCB info (v3 for PCS API v4, v2 for API v3)."""
        body = docs.tcb_info_body(
            fmspc=fmspc or self.pck_info.fmspc,
            pce_id=self.pck_info.pce_id,
            levels=self.tcb_levels if levels is None else levels,
            issue_date=issue_date or self.at - dt.timedelta(hours=1),
            next_update=next_update or self.at + self.validity,
            version=version,
        )
        key = (signer or self.pki.tcb_signing).key
        return docs.signed_document("tcbInfo", body, key)

    def qe_identity(
        self,
        *,
        issue_date: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        levels: Sequence[docs.QeTcbLevel] | None = None,
        signer: Issued | None = None,
        mrsigner: bytes | None = None,
    ) -> str:
        """The signed QE identity v2 of the QE that signs this platform's quotes."""
        qe = self.builder.qe
        body = docs.qe_identity_body(
            mrsigner=mrsigner or qe.mr_signer,
            isvprodid=qe.isv_prod_id,
            levels=self.qe_levels if levels is None else levels,
            issue_date=issue_date or self.at - dt.timedelta(hours=1),
            next_update=next_update or self.at + self.validity,
        )
        key = (signer or self.pki.tcb_signing).key
        return docs.signed_document("enclaveIdentity", body, key)

    def pck_crl_pem(self, **crl_args: object) -> bytes:
        """The CRL of the CA that issued the PCK certificate (PEM)."""
        return crl_pem(self.pki.crl(self.ca_type, **crl_args))  # type: ignore[arg-type]

    def root_crl_pem(self, **crl_args: object) -> bytes:
        """The root CA's CRL (PEM)."""
        return crl_pem(self.pki.crl("root", **crl_args))  # type: ignore[arg-type]

    # -- collateral ------------------------------------------------------------

    def collateral(
        self, *, api_version: int = 3, crlf: bool = True, **fields: str
    ) -> untrusted_pb2.SgxCollateral:
        """The collateral a BlindAI 0.3 server ships with this platform's quotes.

        API version 3 gives TCB info v2 (what the 0.3 client reads), 4 gives v3.
        With ``crlf`` the CRLs and PCK certificates use CRLF line ends, as in the
        0.3 fixtures. ``fields`` replace any member (a text value).
        """
        tcb_chain = self.pki.tcb_chain_pem().decode()
        values = {
            "version": api_version,
            "pck_crl_issuer_chain": self.pki.pck_ca_chain_pem(self.ca_type).decode(),
            "root_ca_crl": _line_ends(self.root_crl_pem(), crlf),
            "pck_crl": _line_ends(self.pck_crl_pem(), crlf),
            "tcb_info_issuer_chain": tcb_chain,
            "tcb_info": self.tcb_info(version=2 if api_version == 3 else 3),
            "qe_identity_issuer_chain": tcb_chain,
            "qe_identity": self.qe_identity(),
            "pck_certificate": _line_ends(self.pck.pem, crlf),
            "pck_signing_chain": _line_ends(
                self.pki.pck_ca_chain_pem(self.ca_type), crlf
            ),
        }
        values.update(fields)
        return untrusted_pb2.SgxCollateral(**values)  # type: ignore[arg-type]


def _line_ends(pem: bytes, crlf: bool) -> str:
    text = pem.decode()
    return text.replace("\n", "\r\n") if crlf else text
