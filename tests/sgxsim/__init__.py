"""A synthetic Intel SGX platform for tests (no SGX hardware needed).

* :class:`TestPki`: root CA, PCK Processor/Platform CAs, TCB signing, CRLs.
* :mod:`.documents`: signed TCB info (v2/v3) and QE identity (v2).
* :class:`QuoteBuilder`, :class:`ReportFields`: SGX quotes v3.
* :class:`SgxPlatform`: all of the above, consistent, plus ``collateral()``.
* :class:`FakeAttestationDir`: Gramine's ``/dev/attestation`` for DCAP.
* :class:`FakePccs`: a PCCS on 127.0.0.1 over HTTPS with its own test CA.

Nothing here is production code; the production code under test is only given
paths, URLs and CA files that point here.
"""

from __future__ import annotations

from .attestation_dir import FakeAttestationDir
from .pccs import FakePccs
from .pki import Issued, PckInfo, TestPki
from .platform import SgxPlatform
from .quote import QuoteBuilder, ReportFields, attributes

__all__ = [
    "FakeAttestationDir",
    "FakePccs",
    "Issued",
    "PckInfo",
    "QuoteBuilder",
    "ReportFields",
    "SgxPlatform",
    "TestPki",
    "attributes",
    "threads_left",
]


def threads_left(*names: str, wait: float = 2.0) -> list[str]:
    """Names of live threads called one of ``names``, after waiting up to ``wait`` s.

    Tests call it at the end to check that every server and worker they started
    has stopped.
    """
    import threading
    import time

    deadline = time.monotonic() + wait
    while True:
        alive = [t.name for t in threading.enumerate() if t.name in names]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.01)
