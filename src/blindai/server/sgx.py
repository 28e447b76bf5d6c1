"""Hardware mode: the server inside an SGX enclave under Gramine.

The quote comes from Gramine's attestation interface and binds the enclave's TLS
certificate; its collateral comes from a PCCS and is refreshed in the background.
"""

from __future__ import annotations

from blindai.server.config import ServerConfig
from blindai.server.errors import StartupError
from blindai.server.untrusted import Platform


def start_sgx_platform(config: ServerConfig, enclave_cert_der: bytes) -> Platform:
    """Check the enclave, take its quote and start fetching collateral.

    Raises :class:`StartupError` within seconds when there is no enclave, when it
    is not configured for DCAP, or when its quote cannot be read.
    """
    from blindai.server.enclave import (
        DcapPlatform,
        EnclaveUnavailable,
        GramineAttestation,
    )
    from blindai.server.pccs import PccsClient

    if not config.pccs_url.startswith("https://"):
        raise StartupError(f"--pccs-url must be an https:// URL, got {config.pccs_url}")
    attestation = GramineAttestation(config.attestation_dir, timeout=15.0)
    try:
        client = PccsClient(
            config.pccs_url, ca_file=config.pccs_ca, api_version=config.pccs_api_version
        )
        return DcapPlatform.start(attestation, client, enclave_cert_der)
    except (EnclaveUnavailable, ValueError, OSError) as exc:
        raise StartupError(str(exc)) from exc
