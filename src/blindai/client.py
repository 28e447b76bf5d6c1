"""The client: connect (attesting the server), upload a model, run it.

The API is that of the published BlindAI 0.3.0 client, parameter names and order
included, so that existing code keeps working::

    client = BlindAiClient()
    client.connect_server("localhost", policy="policy.toml",
                          certificate="host_server.pem")
    client.upload_model("model.onnx", shape=(1, 64), dtype=ModelDatumType.F32)
    response = client.run_model(data, sign=True)

In hardware mode nothing is sent to the attested port before the quote, its
collateral, the binding of the enclave certificate and the policy have been
verified; the attested port is then reached through exactly the certificate the
quote names.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import operator
import os
import platform
import socket
import ssl
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from blindai._certs import DEFAULT_SERVER_NAME, der_to_pem, signing_key_from_certificate
from blindai.errors import (
    AttestationError,
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
from blindai.pb import securedexchange_pb2 as ex_pb
from blindai.pb import untrusted_pb2 as un_pb
from blindai.pb.securedexchange_pb2_grpc import ExchangeStub
from blindai.pb.untrusted_pb2_grpc import AttestationStub
from blindai.responses import (  # SignedResponse: 0.3 code imports it from here
    RunModelResponse,
    SignedResponse,  # noqa: F401
    UploadModelResponse,
)
from blindai.tensors import ModelDatumType, as_tensor, encode_input
from blindai.version import __version__

log = logging.getLogger(__name__)

#: Bytes per upload or input message: well under the 4 MiB a 0.3 server accepts.
#: Measured on a 200 MB upload to a local server (2 cores, two runs each):
#: 256 KiB 0.78-1.06 s, 1 MiB 0.80-1.20 s, 2 MiB 0.78-1.14 s, 3.9 MiB 0.86 s.
#: The size barely matters next to TLS and onnxruntime's load; 1 MiB keeps
#: per-message buffers small on both sides.
CHUNK_SIZE = 1024 * 1024
CONNECTION_TIMEOUT = 10.0
#: Default time of an upload: this much, plus one second per MiB of model (a
#: slow link, then the server's loading of the model).
UPLOAD_TIMEOUT = 60.0
#: Default time of an inference (the server may also stop it sooner).
RUN_TIMEOUT = 300.0
#: Largest reply accepted from the attested port.
MAX_REPLY = 1024 * 1024 * 1024
#: The server capability of raw tensor inputs (``RunModelRequest.tensor``).
TENSOR_CAPABILITY = "tensor-v1"
#: The server capability of ``RunModelUnary`` (the whole input in one message).
UNARY_CAPABILITY = "unary-run-v1"
#: Largest input sent in one message to ``RunModelUnary``; larger inputs are
#: streamed to ``RunModel`` in :data:`RUN_CHUNK_SIZE` messages. grpcio's cost of
#: one message grows faster than its size past a few hundred KiB (2 cores,
#: TLS, loopback, transport only, p50 of 60: 512 KiB unary 2.2-3.3 ms against
#: 1.8-2.1 ms streamed in 256 KiB messages; 2.7 MB 7.2-11.3 ms against
#: 5.3 ms; 4 MiB 17-19 ms against 6.8-8.6 ms). End to end, the 1x3x480x480
#: f32 image CNN of benchmarks/ took 26.7-27.4 ms unary against 19.4-19.6 ms
#: streamed (p50 of 40, interleaved, two runs). No HTTP/2 or TCP option came
#: near that (see benchmarks/README.md, "What else was measured").
UNARY_LIMIT = 256 * 1024
#: Bytes per message of a streamed input (uploads use :data:`CHUNK_SIZE`):
#: 1 MiB messages were no faster than one 2 MiB message; 256 KiB ones were.
RUN_CHUNK_SIZE = 256 * 1024
#: Request metadata: this client receives replies over 4 MiB.
LARGE_REPLY_METADATA = ("blindai-large-reply", "1")

SIMULATION_WARNING = (
    "SIMULATION MODE: the server's identity is NOT verified (no attestation). "
    "Anyone running the server can see your model and data. Use it for "
    "development only."
)


class SimulationModeWarning(UserWarning):
    """Emitted on every connection made without attestation."""


class BlindAiClient:
    """A connection to a BlindAI server (see :meth:`connect_server`)."""

    def __init__(self, debug_mode: bool = False) -> None:
        if debug_mode:
            os.environ["GRPC_TRACE"] = "transport_security,tsi"
            os.environ["GRPC_VERBOSITY"] = "DEBUG"
        self._channel: grpc.Channel | None = None
        self._stub: ExchangeStub | None = None
        self.simulation_mode = False
        self.attestation: un_pb.GetSgxQuoteWithCollateralReply | None = None
        self.enclave_signing_key: Ed25519PublicKey | None = None
        self.server_version: str | None = None
        self.server_info: un_pb.GetServerInfoReply | None = None
        self.verified_quote: Any = None
        self.policy: Any = None
        self.client_info = _client_info()

    # --- connection ------------------------------------------------------------

    def is_connected(self) -> bool:
        return self._channel is not None

    def connect_server(
        self,
        addr: str,
        server_name: str = DEFAULT_SERVER_NAME,
        policy: str | os.PathLike[str] | Any | None = None,
        certificate: str | os.PathLike[str] | None = None,
        simulation: bool = False,
        untrusted_port: int = 50052,
        attested_port: int = 50051,
        *,
        trusted_root: bytes | str | None = None,
        timeout: float = CONNECTION_TIMEOUT,
    ) -> None:
        """Connect to a server, attesting it first unless ``simulation``.

        Args:
            addr: host name or address (an ``https://`` prefix is ignored).
            server_name: the name the server's certificates carry.
            policy: the expected enclave: a ``policy.toml`` path or a
                :class:`blindai.Policy`. Required in hardware mode.
            certificate: path of the server's ``host_server.pem`` (untrusted
                port). Required in hardware mode; pinned in simulation when given.
            simulation: connect to a simulation-mode server, WITHOUT attestation.
            untrusted_port, attested_port: the server's two ports.
            trusted_root: the attestation root CA (PEM) of a test platform;
                default Intel's SGX root CA. Never read from the environment.
            timeout: seconds allowed for each call of the connection.

        Raises:
            AttestationError: the server could not be attested, or it is a
                simulation server and ``simulation`` is false.
            VersionError: the server speaks another protocol version.
            ConnectionError: the server cannot be reached.
            FileNotFoundError: the policy or certificate file does not exist.
        """
        self.close_connection()
        for name, port in (
            ("untrusted_port", untrusted_port),
            ("attested_port", attested_port),
        ):
            if not 0 < port <= 65535:
                raise ValueError(f"{name} {port} is not a TCP port (1 to 65535)")
        host = addr.removeprefix("https://").rstrip("/")
        options = [("grpc.ssl_target_name_override", server_name)]
        if simulation:
            self._warn_simulation()
            host_cert = (
                _read(certificate)
                if certificate
                else _fetch_cert(host, untrusted_port, timeout)
            )
        else:
            policy = _load_policy(policy)
            if certificate is None:
                raise AttestationError(
                    "certificate (the server's host_server.pem) is required in "
                    "hardware mode"
                )
            host_cert = _read(certificate)
        untrusted = grpc.secure_channel(
            _target(host, untrusted_port),
            grpc.ssl_channel_credentials(root_certificates=host_cert),
            options,
        )
        try:
            stub = AttestationStub(untrusted)
            self._check_version(stub, timeout)
            if simulation:
                cert_der = _call(
                    stub.GetCertificate, un_pb.GetCertificateRequest(), timeout
                ).enclave_tls_certificate
            else:
                cert_der = self._attest(stub, policy, trusted_root, timeout)
        finally:
            untrusted.close()
        try:
            self.enclave_signing_key = signing_key_from_certificate(cert_der)
            enclave_pem = der_to_pem(cert_der)
        except ValueError as exc:
            if simulation:
                raise ServerFailureError(
                    f"the enclave certificate is unusable: {exc}"
                ) from None
            raise AttestationError(f"the attested enclave certificate: {exc}") from None
        self.simulation_mode = simulation
        self._channel = grpc.secure_channel(
            _target(host, attested_port),
            grpc.ssl_channel_credentials(root_certificates=enclave_pem),
            options + [("grpc.max_receive_message_length", MAX_REPLY)],
        )
        self._stub = ExchangeStub(self._channel)
        log.info(
            "connected to %s (%s mode)",
            host,
            "simulation" if simulation else "attested",
        )

    def _warn_simulation(self) -> None:
        # A warning only: logging it too printed the text twice on stderr.
        warnings.warn(
            SIMULATION_WARNING, SimulationModeWarning, stacklevel=_caller_level()
        )

    def _check_version(self, stub: AttestationStub, timeout: float) -> None:
        info = _call(stub.GetServerInfo, un_pb.GetServerInfoRequest(), timeout)
        parts = info.version.split(".")
        if len(parts) > 3 or parts[:2] != ["0", "3"]:
            raise VersionError(
                f"the server speaks protocol version {info.version!r}; this client "
                "supports 0.3.x"
            )
        self.server_version = info.version
        self.server_info = info

    def _attest(
        self,
        stub: AttestationStub,
        policy: Any,
        trusted_root: bytes | str | None,
        timeout: float,
    ) -> bytes:
        from blindai.attestation import verify_attestation

        try:
            reply = stub.GetSgxQuoteWithCollateral(
                un_pb.GetSgxQuoteWithCollateralRequest(), timeout=timeout
            )
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise AttestationError(
                    "the server is in simulation mode and cannot be attested "
                    f"({err.details()}); connect with simulation=True only for "
                    "development"
                ) from None
            raise AttestationError(
                f"the server gave no attestation: {err.code().name}: {err.details()}"
            ) from None
        verified = verify_attestation(reply, policy, trusted_root=trusted_root)
        if not verified.quote.uses_intel_root:
            log.warning(
                "attestation was checked against a root CA that is not "
                "Intel's: only a test platform should need this"
            )
        self.attestation = reply
        self.verified_quote = verified.quote
        self.policy = policy
        log.info(
            "attestation verified: MRENCLAVE %s, TCB status %s",
            verified.quote.mr_enclave.hex(),
            verified.quote.tcb_status,
        )
        return verified.enclave_certificate_der

    def close_connection(self) -> None:
        """Close the connection (a no-op when not connected)."""
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None
        self.attestation = None
        self.verified_quote = None
        self.server_version = None

    def __enter__(self) -> BlindAiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_connection()

    # --- model and inference ---------------------------------------------------

    def upload_model(
        self,
        model: str | os.PathLike[str] | bytes,
        shape: tuple[int, ...] | list[int] | None = None,
        dtype: ModelDatumType = ModelDatumType.F32,
        dtype_out: ModelDatumType = ModelDatumType.F32,
        sign: bool = False,
        *,
        timeout: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> UploadModelResponse:
        """Upload an ONNX model (a file path, or the model's bytes).

        Args:
            model: path of the ONNX file, or its bytes.
            shape: the input shape; default the model's own (a symbolic batch
                dimension counts as 1).
            dtype, dtype_out: element types of the input and the first output.
            sign: ask for a signed response (a proof).
            timeout: seconds allowed for the upload (default
                :data:`UPLOAD_TIMEOUT` plus one second per MiB of model).
            progress: called as ``progress(sent_bytes, total_bytes)`` each time
                a chunk is handed to the transport, from gRPC's sending thread;
                it must be quick and must not raise.

        Raises:
            RequestRejectedError: the server refused the model (not ONNX,
                wrong types or shape); a :class:`ConnectionError`, as are all
                :class:`CallError` subclasses.
            ResourceLimitError: the model is over the server's size limit, or
                the server is busy with other uploads.
            DeadlineExceededError: the upload took longer than ``timeout``.
            ServerUnavailableError: the server cannot be reached.
            ConnectionError: not connected.
            FileNotFoundError: the model file does not exist.
            SignatureError: the signed response does not hold.
        """
        stub = self._require_stub()
        input_fact = _input_fact(shape)
        datum, datum_out = ModelDatumType.of(dtype), ModelDatumType.of(dtype_out)
        if isinstance(model, bytes | bytearray):
            data, name = bytes(model), "model.onnx"
        else:
            data, name = Path(model).read_bytes(), os.path.basename(model)
        meta: dict[str, Any] = dict(
            length=len(data),
            input_fact=input_fact,
            datum=datum.value,
            sign=sign,
            client_info=self.client_info,
            model_name=name,
            datum_output=datum_out.value,
        )
        chunks = _HashedChunks(data)
        sent = iter(chunks)
        if progress is not None:
            sent = _reported(sent, len(data), progress)
        # Every message repeats the fields, as the 0.3 client sends them.
        requests = (ex_pb.SendModelRequest(data=chunk, **meta) for chunk in sent)
        if timeout is None:
            timeout = UPLOAD_TIMEOUT + len(data) / (1024 * 1024)
        reply = _call(stub.SendModel, requests, timeout)
        digest = chunks.digest()
        response = UploadModelResponse()
        response.payload = reply.payload
        _check_upload_payload(response, digest)
        if sign:
            response.signature = reply.signature
            response.attestation = self.attestation
            response.validate(
                digest,
                validate_quote=False,
                enclave_signing_key=self.enclave_signing_key,
                allow_simulation_mode=self.simulation_mode,
                _warn=False,
            )
        return response

    def run_model(
        self, data_list: Any, sign: bool = False, *, timeout: float | None = None
    ) -> RunModelResponse:
        """Run the uploaded model on one input.

        Args:
            data_list: the input: a flat list of numbers, nested lists, or a numpy
                array (flattened in row-major order).
            sign: ask for a signed response (a proof).
            timeout: seconds allowed for the call (default
                :data:`RUN_TIMEOUT`).

        Raises:
            RequestRejectedError: the server refused the input (wrong element
                count or type), or no model is uploaded.
            ResourceLimitError: the input is over the server's size limit.
            DeadlineExceededError: the run took longer than ``timeout``, or the
                server stopped it at its own time limit.
            ServerUnavailableError: the server cannot be reached.
            ConnectionError: not connected.
            SignatureError: the signed response does not hold.
        """
        stub = self._require_stub()
        try:
            data, field, meta = self._input(data_list, sign)
        except ValueError as exc:
            raise ValueError(f"cannot send this input: {exc}") from None
        timeout = RUN_TIMEOUT if timeout is None else timeout
        if len(data) <= UNARY_LIMIT and self._has(UNARY_CAPABILITY):
            # A small input: a unary call costs grpcio about half the round
            # trip of a stream (larger ones are faster streamed, see UNARY_LIMIT).
            fields = {field: bytes(data), **meta}
            request = ex_pb.RunModelRequest(**fields)
            reply = _call(stub.RunModelUnary, request, timeout)
        else:
            requests = _requests(data, field, meta)
            reply = _call(stub.RunModel, requests, timeout, _LARGE_REPLY)
        response = RunModelResponse()
        response.payload = reply.payload
        response._load_payload()
        if response.output is None:
            raise SignatureError("the server's output is not a CBOR list of numbers")
        if sign:
            response.signature = reply.signature
            response.attestation = self.attestation
            # Against the bytes sent: encoding data_list again, as validate()
            # must, cost ~9 ms more for a 691,200-float list.
            response._validate_sent(
                hashlib.sha256(data).digest(),
                meta.get("tensor"),
                self.enclave_signing_key,
                self.simulation_mode,
            )
        return response

    def _input(
        self, data_list: Any, sign: bool
    ) -> tuple[bytes | memoryview, str, dict[str, Any]]:
        """One input as its bytes, the request field that carries them and the
        other request fields: a raw tensor when the server has the "tensor-v1"
        capability and the input is an array, else the 0.3 CBOR list.
        """
        meta: dict[str, Any] = dict(sign=sign, client_info=self.client_info)
        if not isinstance(data_list, np.ndarray) or not self._has(TENSOR_CAPABILITY):
            # Raises ValueError for anything but numbers, and for no numbers.
            return encode_input(data_list), "input", meta
        if data_list.size == 0:
            raise ValueError("the input is empty")
        tensor = as_tensor(data_list)
        meta["tensor"] = ex_pb.TensorInfo(
            datum=ModelDatumType.from_numpy(tensor.dtype).value,
            shape=list(tensor.shape),
        )
        return memoryview(tensor.data).cast("B"), "tensor_data", meta

    def _has(self, capability: str) -> bool:
        """Whether the server advertised ``capability`` in GetServerInfo."""
        return self.server_info is not None and (
            capability in self.server_info.capabilities
        )

    def _require_stub(self) -> ExchangeStub:
        if self._stub is None:
            raise ConnectionError(
                "not connected to the server; call connect_server first"
            )
        return self._stub


def connect(addr: str, **kwargs: Any) -> BlindAiClient:
    """Create a client and connect it; usable as a context manager::

        with blindai.connect("localhost", simulation=True) as client:
            client.run_model([1.0, 2.0])

    Takes the arguments of :meth:`BlindAiClient.connect_server`.
    """
    client = BlindAiClient()
    client.connect_server(addr, **kwargs)
    return client


# --- helpers -------------------------------------------------------------------


def _client_info() -> ex_pb.ClientInfo:
    uname = platform.uname()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    uid = hashlib.sha256(f"{socket.gethostname()}-{user}".encode()).hexdigest()
    return ex_pb.ClientInfo(
        uid=uid,
        platform_name=uname.system,
        platform_arch=uname.machine,
        platform_version=uname.version,
        platform_release=uname.release,
        user_agent="blindai_python",
        user_agent_version=__version__,
    )


def _target(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _requests(
    data: bytes | memoryview, field: str, meta: dict[str, Any]
) -> Iterator[ex_pb.RunModelRequest]:
    """``data`` in chunks in ``field``, with ``meta`` on every message as the
    0.3 client sends it (the server reads the first)."""
    for chunk in _chunks(data, RUN_CHUNK_SIZE):
        yield ex_pb.RunModelRequest(**{field: chunk}, **meta)  # type: ignore[arg-type]


#: The metadata of every streamed run: by it our server knows that this client
#: receives replies over 4 MiB (a published 0.3 client cannot; it gets a clear
#: refusal instead of a transport error). Servers that do not know it ignore it.
#: Passed per call: a channel interceptor cost about 0.05 ms per call
#: (measured); not sent with RunModelUnary, whose callers are all newer than 0.3.
_LARGE_REPLY = (LARGE_REPLY_METADATA,)


def _chunks(data: bytes | memoryview, size: int | None = None) -> Iterator[bytes]:
    size = CHUNK_SIZE if size is None else size
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])
    if not data:
        yield b""


class _HashedChunks:
    """The upload's chunks, hashed as gRPC's sending thread takes them: the
    model's SHA-256 is ready when the stream ends, instead of a second pass
    over the model after the call (0.22 s for 400 MB on the benchmark machine)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._digest: bytes | None = None

    def __iter__(self) -> Iterator[bytes]:
        hashed = hashlib.sha256()
        for chunk in _chunks(self._data):
            hashed.update(chunk)
            yield chunk
        self._digest = hashed.digest()  # only once every chunk was taken

    def digest(self) -> bytes:
        """The SHA-256 of the whole model. gRPC may end a call before it took
        every chunk (a server that answers early): the model is then hashed
        here, whole, never a prefix of it."""
        digest = self._digest
        return hashlib.sha256(self._data).digest() if digest is None else digest


def _reported(
    chunks: Iterator[bytes], total: int, progress: Callable[[int, int], None]
) -> Iterator[bytes]:
    sent = 0
    for chunk in chunks:
        yield chunk
        sent += len(chunk)
        progress(sent, total)


def _read(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _fetch_cert(host: str, port: int, timeout: float) -> bytes:
    """The untrusted port's certificate, unverified (simulation mode only)."""
    try:
        pem = ssl.get_server_certificate((host.strip("[]"), port), timeout=timeout)
    except OSError as exc:
        raise ServerUnavailableError(f"cannot reach {host}:{port}: {exc}") from None
    return pem.encode()


def _load_policy(policy: Any) -> Any:
    from blindai.attestation import Policy

    if policy is None:
        raise AttestationError(
            "a policy is required in hardware mode: it says which enclave you expect"
        )
    if isinstance(policy, str | os.PathLike):
        return Policy.from_file(policy)
    return policy


def _check_upload_payload(response: UploadModelResponse, digest: bytes) -> None:
    """Refuse an upload reply that does not parse or names another model (an
    empty payload is let through: the reply of an unsigned upload may be)."""
    payload = response._parsed_payload()  # SignatureError when it does not parse
    kind = payload.WhichOneof("payload")
    if kind is None:
        return
    if kind != "send_model_payload":
        raise SignatureError(f"the server answered the upload with a {kind}")
    seen = payload.send_model_payload.model_hash
    if seen != digest:
        raise SignatureError(
            f"the server reports model {seen.hex()[:16] or 'none'}…, not the "
            f"uploaded {digest.hex()[:16]}…"
        )


_ERRORS: dict[grpc.StatusCode, type[CallError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: RequestRejectedError,
    grpc.StatusCode.FAILED_PRECONDITION: RequestRejectedError,
    grpc.StatusCode.OUT_OF_RANGE: RequestRejectedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceLimitError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: ServerUnavailableError,
    grpc.StatusCode.CANCELLED: ServerUnavailableError,
}


def _caller_level() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside
    this package (the user's line), however deep the call came from."""
    package = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


_INT32 = range(-(2**31), 2**31)


def _input_fact(shape: Any) -> list[int]:
    """The upload's ``input_fact``: int32 dimensions, checked before sending."""
    if shape is None:
        return []
    try:
        # operator.index: integers (numpy's too), never a float truncated.
        dims = [operator.index(d) for d in shape]
    except TypeError:
        raise ValueError(
            f"shape {shape!r}: give a sequence of integers, e.g. (1, 64)"
        ) from None
    for dim in dims:
        if dim not in _INT32:
            raise ValueError(
                f"shape {tuple(dims)}: dimension {dim} does not fit "
                "the protocol's 32-bit dimensions"
            )
    return dims


def _call(
    method: Any,
    request: Any,
    timeout: float | None,
    metadata: tuple[tuple[str, str], ...] | None = None,
) -> Any:
    """Call ``method``, translating a gRPC failure into a :class:`CallError`."""
    try:
        return method(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError as err:
        raise call_error(err) from None


def call_error(err: grpc.RpcError) -> CallError:
    """The :class:`CallError` subclass that names a failed call's status."""
    code = err.code() if hasattr(err, "code") else None
    details = (err.details() if hasattr(err, "details") else None) or ""
    kind = _ERRORS.get(code, ServerFailureError)  # type: ignore[arg-type]
    name = code.name if code is not None else "no status"
    if code == grpc.StatusCode.UNAVAILABLE and any(
        mark in details for mark in _HANDSHAKE_FAILURES
    ):
        return CertificateMismatchError(
            "TLS handshake failed: the server's certificate is not the pinned one "
            "(check the certificate file and the ports, or someone is in "
            f"between): {details}",
            code=code,
            details=details,
        )
    if code == grpc.StatusCode.UNIMPLEMENTED and "Method not found" in details:
        return ServerFailureError(
            f"{name}: {details} (the server does not serve this call: are the "
            "untrusted and attested ports swapped, or is this another service?)",
            code=code,
            details=details,
        )
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _CLIENT_LIMIT in details:
        # This client's own reply limit (MAX_REPLY): the server sent too much.
        return ServerFailureError(
            f"the server's reply is larger than this client accepts: {details}",
            code=code,
            details=details,
        )
    if code == grpc.StatusCode.CANCELLED:
        if any(mark in details for mark in _LOCAL_CANCELS):
            why = "cancelled on this side: the connection was closed during the call"
        else:
            why = (
                "the server cancelled the call: it does so when a stream sends "
                "nothing for longer than its --idle-timeout, and when it is stopping"
            )
        return kind(f"{name}: {details} ({why})", code=code, details=details)
    return kind(f"{name}: {details}", code=code, details=details)


#: How gRPC words a call cancelled on the client's side.
_LOCAL_CANCELS = ("Channel closed", "Locally cancelled")

#: How gRPC words a failed TLS handshake (a certificate that is not the pinned one).
_HANDSHAKE_FAILURES = ("CERTIFICATE_VERIFY_FAILED", "Handshake failed")

#: How gRPC words a refusal by the client's own receive limit.
_CLIENT_LIMIT = "Received message larger than max"


def __getattr__(name: str) -> Any:
    # 0.3 code imports Policy from here; the attestation package loads on use.
    if name == "Policy":
        from blindai.attestation import Policy

        return Policy
    raise AttributeError(f"module 'blindai.client' has no attribute {name!r}")
