"""How long one DCAP quote verification takes, per fixture case.

Run ``python benchmarks/bench_verify.py``: every SGX case of
../shared/fixtures/attestation is verified at its recorded instant, repeatedly,
and the median and 90th percentile are printed in milliseconds. The trusted root
is parsed once (cached, as in a client); everything else is parsed per call, as
a fresh reply from a server would be. No assertions: this measures, tests test.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from blindai.attestation import verify_quote
from blindai.pb import untrusted_pb2

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared/fixtures/attestation"
ROUNDS = 200


def _collateral(case: Path) -> untrusted_pb2.SgxCollateral:
    def text(name: str) -> str:
        path = case / name
        return path.read_text() if path.exists() else ""

    def crl(name: str) -> str:
        der = (case / name).read_bytes()
        return x509.load_der_x509_crl(der).public_bytes(Encoding.PEM).decode()

    return untrusted_pb2.SgxCollateral(
        version=3,
        pck_crl_issuer_chain=text("pck_crl_issuer_chain.pem"),
        root_ca_crl=crl("root_ca_crl.der"),
        pck_crl=crl("pck_crl.der"),
        tcb_info_issuer_chain=text("tcb_info_issuer_chain.pem"),
        tcb_info=text("tcb_info.json"),
        qe_identity_issuer_chain=text("qe_identity_issuer_chain.pem"),
        qe_identity=text("qe_identity.json"),
        pck_certificate=text("pck_cert.pem"),
        pck_signing_chain=text("pck_cert_chain.pem"),
    )


def measure(case: Path, rounds: int = ROUNDS) -> list[float]:
    """Milliseconds of each of ``rounds`` verifications of ``case``."""
    meta = tomllib.loads((case / "case.toml").read_text())
    at = dt.datetime.fromtimestamp(meta["verification"]["instant"], dt.UTC)
    quote = (case / "quote.bin").read_bytes()
    root = (case / "trusted_root_ca.pem").read_bytes()
    collateral = _collateral(case)
    verify_quote(quote, collateral, at=at, trusted_root=root)  # warm the caches
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        verify_quote(quote, collateral, at=at, trusted_root=root)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    """Print median and p90 per case; exit 1 when the fixtures are absent."""
    rounds = int(argv[0]) if argv else ROUNDS
    if not FIXTURES.is_dir():
        print(f"{FIXTURES} not found", file=sys.stderr)
        return 1
    print(f"verify_quote, {rounds} rounds per case (ms)")
    for case in sorted(FIXTURES.iterdir()):
        meta_path = case / "case.toml"
        if not meta_path.exists():
            continue
        if tomllib.loads(meta_path.read_text())["tee"] != "sgx":
            continue  # TDX quotes are refused at parsing
        times = measure(case, rounds)
        p90 = statistics.quantiles(times, n=10)[-1]
        median = statistics.median(times)
        print(f"  {case.name:40s} median {median:6.2f}  p90 {p90:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
