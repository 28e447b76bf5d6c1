"""Attestation collateral from a PCCS (Intel's Provisioning Certificate Caching
Service, or any server with Intel's PCS API v3/v4), and a cache that keeps it
fresh.

The collateral of a quote is: the CRL of the CA that issued its PCK certificate,
the TCB info for its FMSPC, the QE identity, the root CA CRL, and their issuer
chains (response headers). :class:`PccsClient` fetches it with the standard
library over verified TLS and returns it as the ``SgxCollateral`` message that
BlindAI 0.3 clients expect; :class:`CollateralCache` serves it while it is valid
and refreshes it in the background before it expires.

``SgxCollateral.version`` is set to the PCS API version used: 3 gives TCB info v2,
the only version the published 0.3.0 client reads (and what 0.3 servers sent),
which is why 3 is the default; 4 gives TCB info v3.

::

    PccsError                the PCCS could not be asked or gave an unusable answer
    CollateralUnavailable    no valid collateral to serve (expired, refresh failed)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from blindai.attestation.pck import read_pck_extension
from blindai.attestation.quote import Quote
from blindai.errors import AttestationError
from blindai.pb import untrusted_pb2

log = logging.getLogger(__name__)

#: Largest answer accepted from the PCCS (a TCB info is ~10 KB, a CRL < 1 MB).
MAX_RESPONSE_SIZE = 4 * 1024 * 1024
API_VERSIONS = (3, 4)
_CHAIN_HEADERS = {
    "pckcrl": ("SGX-PCK-CRL-Issuer-Chain",),
    "tcb": ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"),
    "qe/identity": ("SGX-Enclave-Identity-Issuer-Chain",),
}


class PccsError(RuntimeError):
    """The PCCS could not be reached, refused, or answered something unusable."""


class CollateralUnavailable(RuntimeError):
    """There is no valid collateral to serve; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


# -- what the quote says -------------------------------------------------------


@dataclass(frozen=True)
class PckChain:
    """The PCK certificate chain carried in a quote, and what it implies."""

    leaf: x509.Certificate
    issuers: tuple[x509.Certificate, ...]
    ca_type: str
    fmspc: str

    @classmethod
    def from_quote(cls, quote: bytes) -> PckChain:
        """Read the type-5 certification data of ``quote``; raises ``ValueError``."""
        try:
            parsed = Quote.from_bytes(quote)
        except AttestationError as exc:
            raise ValueError(f"cannot read the enclave's quote: {exc}") from exc
        if parsed.cert_data_type != 5:
            raise ValueError(
                "expected the quote to carry its PCK chain (certification data "
                f"type 5), found type {parsed.cert_data_type}"
            )
        certs = x509.load_pem_x509_certificates(parsed.cert_data.rstrip(b"\x00"))
        if len(certs) < 2:
            raise ValueError(f"expected leaf, PCK CA and root, found {len(certs)}")
        leaf = certs[0]
        try:
            fmspc = read_pck_extension(leaf).fmspc.hex()
        except AttestationError as exc:
            raise ValueError(str(exc)) from exc
        return cls(leaf, tuple(certs[1:]), _ca_type(leaf), fmspc)


def _ca_type(leaf: x509.Certificate) -> str:
    """``processor`` or ``platform``, from the common name of the PCK's issuer."""
    names = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else ""
    for ca_type in ("processor", "platform"):
        if ca_type in common_name.lower():
            return ca_type
    raise ValueError(
        "expected the PCK certificate's issuer to be a PCK Processor CA or PCK "
        f"Platform CA, found {common_name!r}"
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# -- fetching ------------------------------------------------------------------


class PccsClient:
    """Fetches a quote's collateral from a PCCS at ``base_url`` (``https://`` only).

    ``ca_file`` is the CA that issued the PCCS's TLS certificate when it is not in
    the system's store (a PCCS usually has a private one). Certificate and host name
    verification are always on. Proxies from the environment are not used and
    redirects are not followed: the PCCS is expected on the local network.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: str | Path | None = None,
        api_version: int = 3,
        timeout: float = 10.0,
    ) -> None:
        if urllib.parse.urlsplit(base_url).scheme != "https":
            raise ValueError(f"expected an https:// PCCS URL, got {base_url!r}")
        if api_version not in API_VERSIONS:
            raise ValueError(f"expected PCS API version 3 or 4, got {api_version}")
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.timeout = timeout
        context = ssl.create_default_context(
            cafile=str(ca_file) if ca_file is not None else None
        )
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            _NoRedirect(),
            urllib.request.HTTPSHandler(context=context),
        )

    def fetch_collateral(self, quote: bytes) -> untrusted_pb2.SgxCollateral:
        """The collateral for ``quote``, as a 0.3 server ships it.

        Raises ``ValueError`` when the quote carries no usable PCK chain and
        :class:`PccsError` when the PCCS fails or answers something unusable.
        """
        chain = PckChain.from_quote(quote)
        pck_crl, pck_crl_chain = self._get(
            "pckcrl", {"ca": chain.ca_type, "encoding": "der"}
        )
        tcb_info, tcb_chain = self._get("tcb", {"fmspc": chain.fmspc})
        qe_identity, qe_chain = self._get("qe/identity", {})
        root_crl, _ = self._get("rootcacrl", {})
        return untrusted_pb2.SgxCollateral(
            version=self.api_version,
            pck_crl_issuer_chain=pck_crl_chain,
            root_ca_crl=_crl_pem(root_crl, "root CA CRL"),
            pck_crl=_crl_pem(pck_crl, "PCK CRL"),
            tcb_info_issuer_chain=tcb_chain,
            tcb_info=_document(tcb_info, "tcbInfo"),
            qe_identity_issuer_chain=qe_chain,
            qe_identity=_document(qe_identity, "enclaveIdentity"),
            pck_certificate=_pem(chain.leaf),
            pck_signing_chain="".join(_pem(cert) for cert in chain.issuers),
        )

    def _get(self, route: str, query: dict[str, str]) -> tuple[bytes, str]:
        """(body, issuer chain PEM or "") of one PCS API call."""
        url = f"{self.base_url}/sgx/certification/v{self.api_version}/{route}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        log.debug("PCCS request %s", url)
        try:
            with self._opener.open(url, timeout=self.timeout) as response:
                body = response.read(MAX_RESPONSE_SIZE + 1)
                headers = response.headers
        except urllib.error.HTTPError as exc:
            raise PccsError(
                f"the PCCS answered {exc.code} {exc.reason} to {url}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PccsError(f"cannot fetch {url} from the PCCS: {reason}") from exc
        if len(body) > MAX_RESPONSE_SIZE:
            raise PccsError(
                f"the PCCS answer to {url} exceeds {MAX_RESPONSE_SIZE} bytes"
            )
        chain = ""
        for name in _CHAIN_HEADERS.get(route, ()):
            if headers.get(name):
                chain = urllib.parse.unquote(headers[name])
                break
        if route in _CHAIN_HEADERS:
            _check_chain(chain, f"{_CHAIN_HEADERS[route][0]} of {url}")
        return body, chain


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answered as errors: the client talks to one PCCS only."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _check_chain(chain: str, name: str) -> None:
    try:
        certs = x509.load_pem_x509_certificates(chain.encode())
    except ValueError as exc:
        raise PccsError(f"expected a PEM certificate chain in {name}") from exc
    if len(certs) < 2:
        raise PccsError(f"expected issuer and root in {name}, found {len(certs)}")


def _crl_pem(body: bytes, name: str) -> str:
    """A CRL answered as PEM, DER or hex text of DER (PCCS), as PEM text."""
    data = body.strip()  # for the text forms only: DER may end in a space byte
    try:
        if body[:1] == b"\x30":
            crl = x509.load_der_x509_crl(body)
        elif data.startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(bytes.fromhex(data.decode("ascii")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PccsError(
            f"expected the {name} as PEM, DER or hex, got {data[:16]!r}"
        ) from exc
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def _document(body: bytes, member: str) -> str:
    """The JSON document exactly as served, after checking it has ``member``."""
    try:
        text = body.decode("utf-8")
        parsed = json.loads(text)
        next_update(parsed[member])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise PccsError(
            f'expected a {{"{member}":{{...}},"signature":...}} document with a '
            f"nextUpdate, got {body[:40]!r}"
        ) from exc
    return text


def next_update(body: dict) -> dt.datetime:
    """The ``nextUpdate`` of a TCB info or enclave identity body."""
    value = body["nextUpdate"]
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


def collateral_expiry(collateral: untrusted_pb2.SgxCollateral) -> dt.datetime:
    """When the first piece of ``collateral`` expires.

    The earliest of the TCB info's and QE identity's ``nextUpdate``, the CRLs'
    next update and the certificates' ``notAfter``. Raises ``ValueError`` when a
    piece cannot be read.
    """
    moments = [
        next_update(json.loads(collateral.tcb_info)["tcbInfo"]),
        next_update(json.loads(collateral.qe_identity)["enclaveIdentity"]),
    ]
    for text in (collateral.pck_crl, collateral.root_ca_crl):
        crl_next = x509.load_pem_x509_crl(text.encode()).next_update_utc
        if crl_next is None:
            raise ValueError("a CRL has no next update")
        moments.append(crl_next)
    for text in (
        collateral.pck_certificate,
        collateral.pck_signing_chain,
        collateral.tcb_info_issuer_chain,
        collateral.qe_identity_issuer_chain,
        collateral.pck_crl_issuer_chain,
    ):
        certs = x509.load_pem_x509_certificates(text.encode())
        moments.extend(cert.not_valid_after_utc for cert in certs)
    return min(moments)


# -- caching -------------------------------------------------------------------


class CollateralCache:
    """The current collateral of one quote, refreshed before it expires.

    :meth:`get` returns the cached collateral while it is valid (no request); once
    it has expired it tries one refresh and raises :class:`CollateralUnavailable`
    if that fails. The thread started by :meth:`start` refreshes at
    ``refresh_fraction`` of the remaining validity (never sooner than
    ``min_interval`` seconds), and on failure retries with exponential backoff up
    to ``max_backoff`` seconds; a PCCS outage while the collateral is valid changes
    nothing for clients. ``clock`` returns an aware UTC datetime (tests pass a
    fake one). Call :meth:`refresh` once at startup to fail fast.
    """

    def __init__(
        self,
        client: PccsClient,
        quote: bytes,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        refresh_fraction: float = 0.8,
        min_interval: float = 60.0,
        max_backoff: float = 3600.0,
    ) -> None:
        if not 0 < refresh_fraction <= 1:
            raise ValueError(f"expected 0 < refresh_fraction <= 1: {refresh_fraction}")
        self._client = client
        self._quote = quote
        self._clock = clock
        self._fraction = refresh_fraction
        self._min_interval = min_interval
        self._max_backoff = max_backoff
        self._state_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._current: untrusted_pb2.SgxCollateral | None = None
        self._expires: dt.datetime | None = None
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Called with the fresh collateral after each successful refresh.
        self.on_refresh: Callable[[untrusted_pb2.SgxCollateral], None] | None = None
        #: Called with the error after each failed refresh.
        self.on_failure: Callable[[BaseException], None] | None = None

    @property
    def current(self) -> untrusted_pb2.SgxCollateral | None:
        """The cached collateral, valid or not (None before the first fetch)."""
        with self._state_lock:
            return self._current

    @property
    def expires_at(self) -> dt.datetime | None:
        """When the cached collateral expires (None before the first fetch)."""
        with self._state_lock:
            return self._expires

    def get(self) -> untrusted_pb2.SgxCollateral:
        """Valid collateral for the quote; raises :class:`CollateralUnavailable`."""
        current = self._valid_current(self._clock())
        if current is not None:
            return current
        try:
            return self.refresh()
        except PccsError as exc:
            expired = self.expires_at
            state = (
                f"expired at {expired:%Y-%m-%dT%H:%M:%SZ}" if expired else "none yet"
            )
            raise CollateralUnavailable(
                f"no valid attestation collateral ({state}) and the PCCS could "
                f"not provide it: {exc}"
            ) from exc

    def refresh(self) -> untrusted_pb2.SgxCollateral:
        """Fetch the collateral now and keep it; raises :class:`PccsError`.

        Collateral that is already expired when fetched is refused (a stale PCCS),
        and the cached one is kept.
        """
        with self._refresh_lock:
            try:
                fresh = self._fetch_checked()
            except PccsError as exc:
                if self.on_failure is not None:
                    self.on_failure(exc)
                raise
            if self.on_refresh is not None:
                self.on_refresh(fresh)
            return fresh

    def _fetch_checked(self) -> untrusted_pb2.SgxCollateral:
        """Fetch, check the expiry and keep the collateral (lock held)."""
        fresh = self._client.fetch_collateral(self._quote)
        try:
            expires = collateral_expiry(fresh)
        except ValueError as exc:
            raise PccsError(f"the PCCS served unreadable collateral: {exc}") from exc
        now = self._clock()
        if expires <= now:
            raise PccsError(
                "the PCCS served collateral that expired at "
                f"{expires:%Y-%m-%dT%H:%M:%SZ}"
            )
        with self._state_lock:
            self._current, self._expires = fresh, expires
        log.debug("attestation collateral refreshed, valid until %s", expires)
        return fresh

    def start(self) -> None:
        """Start the background refresher (a daemon thread)."""
        if self._thread is not None:
            raise RuntimeError("the collateral refresher is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="collateral-refresher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background refresher and wait up to ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _valid_current(self, now: dt.datetime) -> untrusted_pb2.SgxCollateral | None:
        with self._state_lock:
            if self._current is not None and self._expires and now < self._expires:
                return self._current
            return None

    def _run(self) -> None:
        while not self._stop.wait(self._next_delay()):
            try:
                self.refresh()
                self._failures = 0
            except (PccsError, ValueError) as exc:
                self._failures += 1
                log.warning(
                    "cannot refresh the attestation collateral (attempt %d): %s",
                    self._failures,
                    exc,
                )

    def _next_delay(self) -> float:
        """Seconds until the next refresh attempt."""
        if self._failures:
            backoff = self._min_interval * 2 ** (self._failures - 1)
            return min(backoff, self._max_backoff)
        expires = self.expires_at
        if expires is None:
            return 0.0
        remaining = (expires - self._clock()).total_seconds()
        return max(remaining * self._fraction, self._min_interval)
