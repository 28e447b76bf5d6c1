"""The enclave's attestation interface under Gramine (``/dev/attestation``).

With ``sgx.remote_attestation = "dcap"`` in the manifest, Gramine exposes a
pseudo-directory: ``attestation_type`` reads "dcap", writing 64 bytes to
``user_report_data`` sets the report data of the next quote, and reading
``quote`` returns an SGX quote v3 made by the platform's Quoting Enclave over that
report data. The server puts SHA-256 of its enclave TLS certificate (DER) there,
zero-padded to 64 bytes, which is what clients check.

Nothing here works outside an SGX enclave; :class:`EnclaveUnavailable` says so and
points at ``--simulation`` for development. :class:`DcapPlatform` is the server's
hardware-mode platform: the quote from here, the collateral from a PCCS.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import grpc

from blindai.attestation import verify_quote
from blindai.errors import AttestationError
from blindai.pb import untrusted_pb2
from blindai.server.pccs import (
    CollateralCache,
    CollateralUnavailable,
    PccsClient,
    PccsError,
)
from blindai.server.untrusted import AttestationUnavailable

log = logging.getLogger(__name__)

REPORT_DATA_SIZE = 64
#: A quote with a PEM chain is ~5 KB; anything beyond this is not a quote.
MAX_QUOTE_SIZE = 64 * 1024
DEFAULT_DIRECTORY = "/dev/attestation"
_SIMULATION_HINT = (
    'run the server under gramine-sgx with sgx.remote_attestation = "dcap" '
    "in its manifest; for development without SGX, start it with --simulation "
    "(not secure)"
)


class EnclaveUnavailable(RuntimeError):
    """The Gramine DCAP attestation interface is missing or not answering."""


def report_data_for_certificate(certificate_der: bytes) -> bytes:
    """SHA-256 of the enclave certificate's DER, zero-padded to 64 bytes."""
    return hashlib.sha256(certificate_der).digest().ljust(REPORT_DATA_SIZE, b"\0")


class GramineAttestation:
    """Quotes from Gramine's attestation directory (``/dev/attestation``).

    ``timeout`` bounds each quote request: a Quoting Enclave that does not answer
    (no AESM / QE service on the host) raises :class:`EnclaveUnavailable` instead
    of hanging the server. Requests are serialised: the directory holds one
    report data for the whole process.
    """

    def __init__(
        self, directory: str | Path = DEFAULT_DIRECTORY, *, timeout: float = 30.0
    ) -> None:
        self.directory = Path(directory)
        self.timeout = timeout
        self._lock = threading.Lock()

    def check(self) -> None:
        """Make sure this is a Gramine SGX enclave with DCAP attestation.

        Raises :class:`EnclaveUnavailable` naming what is missing.
        """
        type_file = self.directory / "attestation_type"
        try:
            kind = type_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise EnclaveUnavailable(
                f"no SGX enclave: {type_file} does not exist; {_SIMULATION_HINT}"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise EnclaveUnavailable(
                f"cannot read {type_file}: {exc}; {_SIMULATION_HINT}"
            ) from exc
        if kind != "dcap":
            raise EnclaveUnavailable(
                f'expected attestation type "dcap" in {type_file}, found {kind!r}; '
                f"{_SIMULATION_HINT}"
            )
        for name in ("user_report_data", "quote"):
            if not (self.directory / name).exists():
                raise EnclaveUnavailable(
                    f"{self.directory / name} does not exist; {_SIMULATION_HINT}"
                )

    def quote_for(self, report_data: bytes) -> bytes:
        """A quote carrying ``report_data`` (exactly 64 bytes).

        Raises ``ValueError`` for another size and :class:`EnclaveUnavailable`
        when the quote cannot be obtained within ``timeout`` seconds.
        """
        if len(report_data) != REPORT_DATA_SIZE:
            raise ValueError(
                f"expected {REPORT_DATA_SIZE} bytes of report data, "
                f"got {len(report_data)}"
            )
        if not self._lock.acquire(timeout=self.timeout):
            raise EnclaveUnavailable(
                f"a previous quote request has held {self.directory} for more "
                f"than {self.timeout:g} s"
            )
        quote = self._run_with_timeout(report_data)
        log.debug("obtained a quote of %d bytes", len(quote))
        return quote

    def _run_with_timeout(self, report_data: bytes) -> bytes:
        """Do the file I/O in a worker thread so that a stuck read cannot hang us.

        The worker releases the lock when it finishes. A worker stuck in the kernel
        cannot be cancelled: it is a daemon thread and keeps the lock, so further
        requests fail after their own timeout instead of piling up.
        """
        result: list[bytes] = []
        error: list[Exception] = []
        done = threading.Event()

        def work() -> None:
            try:
                result.append(self._exchange(report_data))
            except Exception as exc:  # noqa: BLE001 (re-raised by the caller)
                error.append(exc)
            finally:
                self._lock.release()
                done.set()

        threading.Thread(target=work, name="gramine-quote", daemon=True).start()
        if not done.wait(self.timeout):
            raise EnclaveUnavailable(
                f"no quote from {self.directory / 'quote'} within {self.timeout:g} s "
                "(is the host's quoting service, AESM with the DCAP QE, running?)"
            )
        if error:
            exc = error[0]
            if isinstance(exc, EnclaveUnavailable):
                raise exc
            raise EnclaveUnavailable(
                f"cannot obtain a quote from {self.directory}: {exc}"
            ) from exc
        return result[0]

    def _exchange(self, report_data: bytes) -> bytes:
        with open(self.directory / "user_report_data", "wb", buffering=0) as sink:
            sink.write(report_data)
        with open(self.directory / "quote", "rb", buffering=0) as source:
            quote = _read_limited(source.fileno(), MAX_QUOTE_SIZE)
        if not quote:
            raise EnclaveUnavailable(f"{self.directory / 'quote'} returned no data")
        return quote


def _read_limited(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise EnclaveUnavailable(f"the quote exceeds {limit} bytes")
        chunks.append(chunk)


class DcapPlatform:
    """The server's ``Platform`` in an SGX enclave: one quote, fresh collateral.

    The quote is taken once, at start: its report data binds the enclave TLS
    certificate, which lives as long as the process. The collateral comes from a
    :class:`~blindai.server.pccs.CollateralCache`. :meth:`attestation` raises
    ``AttestationUnavailable`` with gRPC status UNAVAILABLE while no valid
    collateral can be had. Call :meth:`close` at shutdown.
    """

    mode = "sgx"

    def __init__(
        self, quote: bytes, cache: CollateralCache, enclave_cert_der: bytes
    ) -> None:
        self._quote = quote
        self._cache = cache
        self._cert = enclave_cert_der

    @classmethod
    def start(
        cls,
        attestation: GramineAttestation,
        client: PccsClient,
        enclave_cert_der: bytes,
    ) -> DcapPlatform:
        """Check the enclave, get its quote, fetch collateral, start refreshing.

        Raises :class:`EnclaveUnavailable` (not an enclave, no quote) and
        ``ValueError`` (the quote carries no PCK chain). A PCCS that fails at
        start is logged and retried in the background: the server still starts,
        and answers UNAVAILABLE until collateral arrives.
        """
        attestation.check()
        quote = attestation.quote_for(report_data_for_certificate(enclave_cert_der))
        cache = CollateralCache(client, quote)
        try:
            cache.refresh()
        except PccsError as exc:
            log.warning("no attestation collateral yet, will retry: %s", exc)
        cache.start()
        return cls(quote, cache, enclave_cert_der)

    def attestation(self) -> untrusted_pb2.GetSgxQuoteWithCollateralReply:
        """The quote, valid collateral and the enclave certificate (DER)."""
        try:
            collateral = self._cache.get()
        except CollateralUnavailable as exc:
            raise AttestationUnavailable(
                grpc.StatusCode.UNAVAILABLE, exc.reason
            ) from exc
        return untrusted_pb2.GetSgxQuoteWithCollateralReply(
            quote=self._quote, collateral=collateral, enclave_held_data=self._cert
        )

    def close(self) -> None:
        """Stop refreshing the collateral."""
        self._cache.stop()

    def set_attestation_gauges(
        self, gauges: Any, trusted_root: bytes | None = None
    ) -> None:
        """Publish the attestation state after every collateral refresh.

        The server checks its own quote against each new collateral (with
        Intel's root unless ``trusted_root`` is given) to learn its TCB status;
        a check that fails is counted as a failure and names no status.
        """

        def refreshed(collateral: untrusted_pb2.SgxCollateral) -> None:
            try:
                verified = verify_quote(
                    self._quote, collateral, trusted_root=trusted_root
                )
            except AttestationError as exc:
                log.warning("the server's own quote does not verify: %s", exc)
                gauges.record_failure(f"self-check {type(exc).__name__}")
                return
            gauges.record_refresh(
                tcb_status=str(verified.tcb_status),
                advisory_ids=verified.advisory_ids,
                collateral_expires=verified.collateral_expires,
            )

        self._cache.on_refresh = refreshed
        self._cache.on_failure = gauges.record_failure
        current = self._cache.current
        if current is not None:
            refreshed(current)
