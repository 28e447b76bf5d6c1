"""Loading the real attestation fixtures (../shared/fixtures/attestation).

Each case directory holds a quote, its collateral and a ``case.toml`` with the
instant at which the collateral was valid and the expected verdict (see the
folder's README). The collateral is rebuilt as the 0.3 server sends it: an
``untrusted_pb2.SgxCollateral`` with PEM text everywhere (CRLs converted from the
stored DER).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from blindai.pb import untrusted_pb2

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "attestation"
MISSING_REASON = (
    "../shared/fixtures/attestation not found: fixture tests need the shared "
    "folder beside the repository"
)


def case_names() -> list[str]:
    """Every case directory, or none when the shared folder is absent."""
    if not FIXTURES.is_dir():
        return []
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "case.toml").exists())


def utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def crl_pem(der: bytes) -> str:
    return x509.load_der_x509_crl(der).public_bytes(Encoding.PEM).decode()


@dataclass(frozen=True)
class Case:
    """One fixture case: files, metadata and helpers to build inputs."""

    name: str
    path: Path
    meta: dict[str, Any]

    def read(self, file: str) -> bytes:
        path = self.path / file
        return path.read_bytes() if path.exists() else b""

    def text(self, file: str) -> str:
        return self.read(file).decode()

    @property
    def quote(self) -> bytes:
        return self.read("quote.bin")

    @property
    def root_pem(self) -> bytes:
        return self.read("trusted_root_ca.pem")

    @property
    def instant(self) -> dt.datetime:
        return utc(self.meta["verification"]["instant"])

    @property
    def window(self) -> tuple[int, int]:
        verification = self.meta["verification"]
        return verification["window_start"], verification["window_end"]

    @property
    def expected(self) -> dict[str, Any]:
        return self.meta["expected"]

    @property
    def is_tdx(self) -> bool:
        return self.meta["tee"] == "tdx"

    @property
    def mutations(self) -> list[dict[str, Any]]:
        return self.meta.get("mutation", [])

    def collateral(self) -> untrusted_pb2.SgxCollateral:
        """The collateral as a 0.3 server ships it (PEM CRLs, JSON verbatim)."""
        return untrusted_pb2.SgxCollateral(
            version=3,
            pck_crl_issuer_chain=self.text("pck_crl_issuer_chain.pem"),
            root_ca_crl=crl_pem(self.read("root_ca_crl.der")),
            pck_crl=crl_pem(self.read("pck_crl.der")),
            tcb_info_issuer_chain=self.text("tcb_info_issuer_chain.pem"),
            tcb_info=self.text("tcb_info.json"),
            qe_identity_issuer_chain=self.text("qe_identity_issuer_chain.pem"),
            qe_identity=self.text("qe_identity.json"),
            pck_certificate=self.text("pck_cert.pem"),
            pck_signing_chain=self.text("pck_cert_chain.pem"),
        )


@cache
def load_case(name: str) -> Case:
    path = FIXTURES / name
    return Case(name, path, tomllib.loads((path / "case.toml").read_text()))


def sgx_case_names() -> list[str]:
    return [n for n in case_names() if not load_case(n).is_tdx]


def tdx_case_names() -> list[str]:
    return [n for n in case_names() if load_case(n).is_tdx]


def params(names: list[str]) -> list[Any]:
    """pytest parameters for ``names``; one skipped parameter if there are none."""
    import pytest

    if names:
        return names
    return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING_REASON))]
