"""BlindAI: confidential inference on ONNX models served from an SGX enclave.

The names a user needs are here::

    import blindai

    with blindai.connect("localhost", policy="policy.toml",
                         certificate="host_server.pem") as client:
        client.upload_model("model.onnx", sign=True)
        response = client.run_model([0.1, 0.2, 0.3], sign=True)
"""

from __future__ import annotations

from typing import Any

from blindai.client import BlindAiClient, SimulationModeWarning, connect
from blindai.errors import (
    AttestationError,
    BlindAiError,
    CallError,
    CertificateMismatchError,
    DeadlineExceededError,
    RequestRejectedError,
    ResourceLimitError,
    ServerFailureError,
    ServerUnavailableError,
    SignatureError,
    VersionError,
)
from blindai.responses import RunModelResponse, SignedResponse, UploadModelResponse
from blindai.tensors import ModelDatumType
from blindai.version import __version__

__all__ = [
    "AttestationError",
    "BlindAiClient",
    "BlindAiError",
    "CallError",
    "DeadlineExceededError",
    "ModelDatumType",
    "Policy",
    "RequestRejectedError",
    "ResourceLimitError",
    "RunModelResponse",
    "ServerFailureError",
    "CertificateMismatchError",
    "ServerUnavailableError",
    "SignatureError",
    "SignedResponse",
    "SimulationModeWarning",
    "UploadModelResponse",
    "VersionError",
    "__version__",
    "connect",
]


def __getattr__(name: str) -> Any:
    # The attestation package is imported on first use only.
    if name == "Policy":
        from blindai.attestation import Policy

        return Policy
    raise AttributeError(f"module 'blindai' has no attribute {name!r}")
