"""Hardware mode: the server inside an SGX enclave under Gramine."""

from __future__ import annotations

from blindai.server.config import ServerConfig
from blindai.server.errors import StartupError
from blindai.server.untrusted import Platform


def start_sgx_platform(config: ServerConfig, enclave_cert_der: bytes) -> Platform:
    """Check the enclave's attestation interface; raises :class:`StartupError`."""
    directory = config.attestation_dir
    if not (directory / "attestation_type").exists():
        raise StartupError(
            f"no SGX enclave: Gramine's attestation interface {directory} is not "
            "there (run the server under gramine-sgx with "
            "sgx.remote_attestation = \"dcap\"); for development without an "
            "enclave, start it with --simulation (not secure)"
        )
    raise StartupError("hardware mode is not available in this build")
