"""The server's keys.

* The enclave identity (TLS key of the attested port and the Ed25519 key that
  signs responses) is generated in memory at every start and never written
  anywhere: inside an enclave, only the enclave can use it.
* The host certificate of the untrusted port is not secret to the enclave: it is
  kept in the state directory (key file mode 0600) so that clients can pin it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blindai._certs import self_signed_certificate
from blindai.server.errors import StartupError

T = TypeVar("T")

log = logging.getLogger(__name__)

HOST_CERT_NAME = "host_server.pem"
HOST_KEY_NAME = "host_server.key"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True, repr=False)
class TlsIdentity:
    """A TLS key and certificate as gRPC takes them (PEM)."""

    key_pem: bytes
    cert_pem: bytes
    cert_der: bytes

    def __repr__(self) -> str:
        return "TlsIdentity(<private key hidden>)"


@dataclass(frozen=True, repr=False)
class EnclaveIdentity:
    """The in-memory keys of the enclave."""

    tls: TlsIdentity
    signing_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> EnclaveIdentity:
        tls_key = ec.generate_private_key(ec.SECP256R1())
        signing_key = Ed25519PrivateKey.generate()
        cert = self_signed_certificate(
            tls_key, "blindai enclave", signing_key=signing_key.public_key()
        )
        tls = TlsIdentity(
            key_pem=_pem_key(tls_key),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            cert_der=cert.public_bytes(serialization.Encoding.DER),
        )
        return cls(tls=tls, signing_key=signing_key)

    def sign(self, payload: bytes) -> bytes:
        return self.signing_key.sign(payload)

    def __repr__(self) -> str:
        return "EnclaveIdentity(<keys hidden>)"


def load_or_create_host_identity(state_dir: Path) -> TlsIdentity:
    """The untrusted port's certificate, created on first start.

    Raises :class:`StartupError` when the state directory cannot be created,
    read or written, naming the path and the system's reason.
    """
    try:
        return _load_or_create(state_dir)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else state_dir
        reason = exc.strerror or type(exc).__name__
        raise StartupError(f"--state-dir {state_dir}: {where}: {reason}") from exc


def _load_or_create(state_dir: Path) -> TlsIdentity:
    state_dir.mkdir(parents=True, exist_ok=True)
    cert_path = state_dir / HOST_CERT_NAME
    key_path = state_dir / HOST_KEY_NAME
    if cert_path.exists() and key_path.exists():
        _check_key_mode(key_path)
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
        cert = _stored(cert_path, "a PEM certificate", x509.load_pem_x509_certificate)
        key = _stored(
            key_path,
            "an unencrypted PEM private key",
            lambda data: serialization.load_pem_private_key(data, password=None),
        )
        if _public(key.public_key()) != _public(cert.public_key()):
            raise StartupError(
                f"--state-dir {state_dir}: {key_path} does not match {cert_path} "
                "(remove both to create a new pair)"
            )
        return TlsIdentity(
            key_pem=key_pem,
            cert_pem=cert_pem,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
        )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, "blindai host")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(_pem_key(key))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(cert_pem)
    log.info("created the host certificate %s", cert_path)
    return TlsIdentity(
        key_pem=_pem_key(key),
        cert_pem=cert_pem,
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )


def _stored(path: Path, what: str, load: Callable[[bytes], T]) -> T:
    try:
        return load(path.read_bytes())
    except (ValueError, TypeError):
        raise StartupError(
            f"{path} is not {what} (remove it and its pair to create new ones)"
        ) from None


def _public(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_key_mode(key_path: Path) -> None:
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "the host key %s is readable by others (mode %o); setting it to 0600",
            key_path,
            mode,
        )
        key_path.chmod(0o600)
