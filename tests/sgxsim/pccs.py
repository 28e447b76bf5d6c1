"""A fake PCCS: Intel's PCS API (v3 and v4) over HTTPS on 127.0.0.1.

Serves, from an :class:`SgxPlatform`, freshly signed on every request:

* ``/sgx/certification/v{3,4}/pckcrl?ca=processor|platform&encoding=pem|der``:
  the PCK CRL, issuer chain in ``SGX-PCK-CRL-Issuer-Chain``;
* ``/sgx/certification/v{3,4}/tcb?fmspc=<hex>``: TCB info (v2 on API v3, v3 on
  API v4), issuer chain in ``SGX-TCB-Info-Issuer-Chain`` (v3) or
  ``TCB-Info-Issuer-Chain`` (v4);
* ``/sgx/certification/v{3,4}/qe/identity``: QE identity v2, issuer chain in
  ``SGX-Enclave-Identity-Issuer-Chain``;
* ``/sgx/certification/v{3,4}/rootcacrl``: the root CA CRL as hex text of its DER,
  which is what Intel's PCCS answers there.

Issuer chains are URL-encoded PEM, as PCS sends them. The TLS certificate comes
from a throwaway test CA whose PEM is :attr:`FakePccs.ca_file`. ``mode`` switches
the service "down" ("503" answers 503, "drop" closes connections without an
answer) and ``requests`` counts what was asked, so tests can check caching.
"""

from __future__ import annotations

import collections
import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .pki import crl_der, utc_now
from .platform import SgxPlatform

_PREFIX = "/sgx/certification/v"


class FakePccs:
    """A PCCS on 127.0.0.1 for one synthetic platform; start/stop or ``with``.

    Document options are plain attributes read at each request: ``tcb_info_args``
    and ``qe_identity_args`` (keyword arguments of the platform's makers),
    ``pck_crl_args`` and ``root_crl_args`` (of ``TestPki.crl``), and
    ``pck_crl_format`` to force "pem", "der" or "hex" whatever was asked.
    """

    def __init__(self, platform: SgxPlatform) -> None:
        self.platform = platform
        self.mode = "up"
        self.requests: collections.Counter[str] = collections.Counter()
        self.tcb_info_args: dict[str, Any] = {}
        self.qe_identity_args: dict[str, Any] = {}
        self.pck_crl_args: dict[str, Any] = {}
        self.root_crl_args: dict[str, Any] = {}
        self.pck_crl_format: str | None = None
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="fake-pccs-"))
        self.ca_file, self._tls = _make_tls(self._dir)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``, the base URL to give a PCCS client."""
        if self._server is None:
            raise RuntimeError("the fake PCCS is not started")
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def start(self) -> FakePccs:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-pccs",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the TLS files."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakePccs:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- answers ---------------------------------------------------------------

    def count(self, path: str) -> None:
        """Record one request for ``path`` (whatever the mode)."""
        with self._lock:
            self.requests[path] += 1

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict, bytes]:
        """(status, headers, body) for a GET of ``path`` with ``query``."""
        if not path.startswith(_PREFIX) or path[
            len(_PREFIX) : len(_PREFIX) + 2
        ] not in (
            "3/",
            "4/",
        ):
            return 404, {}, b""
        api = int(path[len(_PREFIX)])
        route = path[len(_PREFIX) + 2 :]
        handler = {
            "pckcrl": self._pck_crl,
            "tcb": self._tcb,
            "qe/identity": self._qe_identity,
            "rootcacrl": self._root_crl,
        }.get(route)
        if handler is None:
            return 404, {}, b""
        return handler(api, query)

    def _pck_crl(self, api: int, query: dict[str, str]) -> tuple[int, dict, bytes]:
        ca = query.get("ca", "")
        if ca not in ("processor", "platform"):
            return 400, {}, b""
        crl = self.platform.pki.crl(ca, **self.pck_crl_args)
        fmt = self.pck_crl_format or query.get("encoding", "pem")
        if fmt == "der":
            body = crl_der(crl)
        elif fmt == "hex":
            body = crl_der(crl).hex().encode()
        else:
            body = crl.public_bytes(serialization.Encoding.PEM)
        chain = self.platform.pki.pck_ca_chain_pem(ca)
        return 200, {"SGX-PCK-CRL-Issuer-Chain": _quote(chain)}, body

    def _tcb(self, api: int, query: dict[str, str]) -> tuple[int, dict, bytes]:
        fmspc = query.get("fmspc", "").lower()
        if fmspc != self.platform.pck_info.fmspc.hex():
            return 404, {}, b""
        version = 2 if api == 3 else 3
        body = self.platform.tcb_info(version=version, **self.tcb_info_args)
        header = "SGX-TCB-Info-Issuer-Chain" if api == 3 else "TCB-Info-Issuer-Chain"
        chain = self.platform.pki.tcb_chain_pem()
        return 200, {header: _quote(chain)}, body.encode()

    def _qe_identity(self, api: int, query: dict[str, str]) -> tuple[int, dict, bytes]:
        body = self.platform.qe_identity(**self.qe_identity_args)
        chain = self.platform.pki.tcb_chain_pem()
        headers = {"SGX-Enclave-Identity-Issuer-Chain": _quote(chain)}
        return 200, headers, body.encode()

    def _root_crl(self, api: int, query: dict[str, str]) -> tuple[int, dict, bytes]:
        crl = self.platform.pki.crl("root", **self.root_crl_args)
        return 200, {}, crl_der(crl).hex().encode()


def _quote(pem: bytes) -> str:
    return urllib.parse.quote(pem.decode(), safe="")


def _handler_for(pccs: FakePccs) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parsed = urllib.parse.urlsplit(self.path)
            pccs.count(parsed.path)
            if pccs.mode == "drop":
                self.close_connection = True
                return
            if pccs.mode == "503":
                self._send(503, {}, b"service unavailable")
                return
            query = dict(urllib.parse.parse_qsl(parsed.query))
            self._send(*pccs.answer(parsed.path, query))

        def _send(self, status: int, headers: dict, body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # keep test output quiet

    return Handler


def _make_tls(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A test CA and a server certificate for 127.0.0.1; returns (CA file, context)."""
    now = utc_now()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake PCCS test CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert = (
        _builder(name, ca_name, key.public_key(), now)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "pccs-ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = directory / "pccs.pem"
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file)
    return ca_file, context


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
    )
