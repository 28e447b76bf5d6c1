"""BlindAI: confidential inference on ONNX models served from an SGX enclave.

The names a user needs are here::

    import blindai

    with blindai.connect("localhost", policy="policy.toml",
                         certificate="host_server.pem") as client:
        client.upload_model("model.onnx", sign=True)
        response = client.run_model([0.1, 0.2, 0.3], sign=True)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from blindai.attestation import Policy
    from blindai.client import BlindAiClient, SimulationModeWarning, connect

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


#: Names whose modules are imported on first use: the client imports grpc,
#: which the server must configure before anything imports it (see
#: blindai.server.__main__), and the attestation package is large.
_LAZY = {
    "BlindAiClient": "blindai.client",
    "SimulationModeWarning": "blindai.client",
    "connect": "blindai.client",
    "Policy": "blindai.attestation",
}


#: Submodules 0.3 code reaches as attributes after ``import blindai`` alone.
_SUBMODULES = frozenset({"client", "dcap_attestation", "utils"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"blindai.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'blindai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
