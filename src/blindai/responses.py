"""Signed responses: what the server answered, saved as a proof and checked again.

A proof (``proof_files.ResponseProof``) holds the signed payload, its Ed25519
signature and, from an SGX server, the attestation that names the enclave and
its signing key. :meth:`UploadModelResponse.validate` and
:meth:`RunModelResponse.validate` check, in order: that the response is signed;
the attestation (quote, collateral, binding, policy) at the chosen instant; the
signature; then the content against what the caller says was sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from blindai._certs import signing_key_from_certificate
from blindai.errors import AttestationError, SignatureError
from blindai.pb.proof_files_pb2 import ResponseProof
from blindai.pb.securedexchange_pb2 import Payload, RunModelPayload, SendModelPayload
from blindai.pb.untrusted_pb2 import GetSgxQuoteWithCollateralReply
from blindai.tensors import ModelDatumType, as_tensor, encode_input

log = logging.getLogger(__name__)

SigningKey = Ed25519PublicKey | bytes

SIMULATION_PROOF_WARNING = (
    "validating a SIMULATION-MODE proof: its signing key was not attested, so it "
    "proves only that whoever held that key produced it, not what code ran"
)


class SignedResponse:
    """A server response that may be signed; base of the two response kinds.

    ``payload``, ``signature`` and ``attestation`` are plain attributes: callers
    may set them, and :meth:`validate` reads them as they are.
    """

    payload: bytes | None = None
    signature: bytes | None = None
    attestation: GetSgxQuoteWithCollateralReply | None = None

    def is_simulation_mode(self) -> bool:
        """True when no attestation came with the response (simulation server)."""
        return self.attestation is None

    def is_signed(self) -> bool:
        return bool(self.signature)

    def as_bytes(self) -> bytes:
        """The proof file's bytes (``proof_files.ResponseProof``)."""
        proof = ResponseProof(
            payload=self.payload or b"", signature=self.signature or b""
        )
        if self.attestation is not None:
            proof.attestation.CopyFrom(self.attestation)
        return proof.SerializeToString()

    def save_to_file(self, path: str | os.PathLike[str]) -> None:
        """Save the proof; load it again with :meth:`load_from_file`."""
        with open(path, "wb") as file:
            file.write(self.as_bytes())

    def load_from_bytes(self, b: bytes) -> Any:
        """Load a proof from bytes (returns ``self``).

        Raises :class:`SignatureError` when the bytes are not a proof.
        """
        try:
            proof = ResponseProof.FromString(b)
        except DecodeError as exc:
            raise SignatureError(f"not a proof file: {exc}") from None
        self.payload = proof.payload
        self.signature = proof.signature or None
        self.attestation = proof.attestation if proof.HasField("attestation") else None
        self._load_payload()
        return self

    def load_from_file(self, path: str | os.PathLike[str]) -> Any:
        """Load a proof saved by :meth:`save_to_file` (returns ``self``)."""
        with open(path, "rb") as file:
            return self.load_from_bytes(file.read())

    def _load_payload(self) -> None:
        pass

    # --- reading the payload ---------------------------------------------------

    def _parsed_payload(self) -> Payload:
        try:
            return Payload.FromString(self.payload or b"")
        except DecodeError as exc:
            raise SignatureError(
                f"the payload is not a protocol payload: {exc}"
            ) from None

    @property
    def issued_at(self) -> dt.datetime | None:
        """When the server says it produced the payload (the host's clock: not
        trustworthy, informational only)."""
        payload = self._parsed_payload()
        if not payload.HasField("header"):
            return None
        return payload.header.issued_at.ToDatetime(tzinfo=dt.UTC)

    # --- validation ------------------------------------------------------------

    def _verified_payload(
        self,
        policy_file: str | os.PathLike[str] | None,
        policy: Any,
        validate_quote: bool,
        enclave_signing_key: SigningKey | None,
        allow_simulation_mode: bool,
        at: dt.datetime | None,
        trusted_root: bytes | str | None,
        warn: bool = True,
    ) -> Payload:
        if not self.is_signed():
            raise SignatureError("the response is not signed (ask for sign=True)")
        if self.is_simulation_mode():
            if not allow_simulation_mode:
                raise SignatureError(
                    "the response was produced by a simulation-mode server; pass "
                    "allow_simulation_mode=True to check it anyway"
                )
            if warn:
                log.warning(SIMULATION_PROOF_WARNING)
            key = _require_key(enclave_signing_key, "a simulation-mode proof")
        elif validate_quote:
            key = self._attested_key(policy_file, policy, at, trusted_root)
        else:
            key = _require_key(enclave_signing_key, "validate_quote=False")
        _verify_signature(key, self.signature or b"", self.payload or b"")
        return self._parsed_payload()

    def _attested_key(
        self,
        policy_file: str | os.PathLike[str] | None,
        policy: Any,
        at: dt.datetime | None,
        trusted_root: bytes | str | None,
    ) -> Ed25519PublicKey:
        from blindai.attestation import Policy, verify_attestation

        if policy_file is not None:
            policy = Policy.from_file(policy_file)
        elif isinstance(policy, str | os.PathLike):
            policy = Policy.from_file(policy)  # as connect() takes it
        elif policy is not None and not isinstance(policy, Policy):
            raise TypeError(
                f"policy must be a Policy or a policy file's path, not "
                f"{type(policy).__name__}"
            )
        if policy is None:
            raise AttestationError(
                "a policy is required to validate an attested proof: a proof "
                "checked against no expected enclave identity proves nothing"
            )
        assert self.attestation is not None
        verified = verify_attestation(
            self.attestation, policy, at=at, trusted_root=trusted_root
        )
        if not verified.quote.uses_intel_root:
            log.warning(
                "the proof was checked against a root CA that is not "
                "Intel's: only a test platform should need this"
            )
        try:
            return signing_key_from_certificate(verified.enclave_certificate_der)
        except ValueError as exc:
            raise AttestationError(f"the attested enclave certificate: {exc}") from None


class UploadModelResponse(SignedResponse):
    """The server's answer to an upload: the model's hash and input shape."""

    def validate(
        self,
        model_hash: bytes,
        policy_file: str | os.PathLike[str] | None = None,
        policy: Any = None,
        validate_quote: bool = True,
        enclave_signing_key: SigningKey | None = None,
        allow_simulation_mode: bool = False,
        *,
        at: dt.datetime | None = None,
        trusted_root: bytes | str | None = None,
        _warn: bool = True,
    ) -> None:
        """Check this response; raises on failure, returns nothing.

        Args:
            model_hash: SHA-256 of the model file that was uploaded.
            policy_file, policy: the expected enclave (``policy.toml`` path, or a
                :class:`blindai.Policy`); required for an attested proof when
                ``validate_quote`` is true.
            validate_quote: re-verify the attestation carried by the proof.
            enclave_signing_key: the Ed25519 key (object or 32 raw bytes), needed
                when the attestation is not checked and for simulation proofs.
            allow_simulation_mode: accept a proof from a simulation server.
            at: the instant at which the attestation must be valid (timezone-
                aware; default now).
            trusted_root: the attestation root CA (PEM); default Intel's.

        Raises:
            SignatureError: unsigned, bad signature, or another model's hash.
            AttestationError: the attestation or the policy check failed.
            FileNotFoundError: the policy file does not exist.
        """
        model_hash = _digest(model_hash)
        payload = self._verified_payload(
            policy_file,
            policy,
            validate_quote,
            enclave_signing_key,
            allow_simulation_mode,
            at,
            trusted_root,
            warn=_warn,
        )
        if payload.WhichOneof("payload") != "send_model_payload":
            raise SignatureError("this proof is not an upload proof")
        seen = payload.send_model_payload.model_hash
        if seen != model_hash:
            raise SignatureError(
                f"the proof is for model {seen.hex()[:16]}…, "
                f"not {model_hash.hex()[:16]}…"
            )

    def _upload(self) -> SendModelPayload:
        return self._parsed_payload().send_model_payload

    @property
    def model_hash(self) -> bytes:
        """SHA-256 of the uploaded model, as the server computed it."""
        return self._upload().model_hash

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self._upload().input_fact)


class RunModelResponse(SignedResponse):
    """The server's answer to an inference: the first output of the model."""

    output: list[int | float] | None = None

    def _load_payload(self) -> None:
        self.output = None
        try:
            run = self._parsed_payload().run_model_payload
            self.output = _decode_output(run.output)
        except (SignatureError, ValueError):
            log.debug("the proof's output could not be decoded")

    def _run(self) -> RunModelPayload:
        return self._parsed_payload().run_model_payload

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        """The shape of the output, when the server reported it."""
        shape = tuple(self._run().output_shape)
        return shape or None

    @property
    def output_datum(self) -> ModelDatumType:
        return ModelDatumType(self._run().datum_output)

    @property
    def model_hash(self) -> bytes | None:
        """SHA-256 of the model that produced this output, when reported."""
        return self._run().model_hash or None

    def output_array(self) -> np.ndarray:
        """The output as a numpy array of its element type and shape."""
        if self.output is None:
            raise ValueError("this response has no decodable output")
        array = np.asarray(self.output, dtype=self.output_datum.numpy_dtype)
        shape = self.output_shape
        return array.reshape(shape) if shape else array

    def validate(
        self,
        data_list: Any,
        policy_file: str | os.PathLike[str] | None = None,
        policy: Any = None,
        validate_quote: bool = True,
        enclave_signing_key: SigningKey | None = None,
        allow_simulation_mode: bool = False,
        *,
        at: dt.datetime | None = None,
        trusted_root: bytes | str | None = None,
        model_hash: bytes | None = None,
        _warn: bool = True,
    ) -> None:
        """Check this response against the input that was sent.

        ``data_list`` is flattened exactly as :meth:`BlindAiClient.run_model`
        flattens it. With ``model_hash``, the proof must also name that model.
        The other arguments are those of :meth:`UploadModelResponse.validate`.

        Raises:
            SignatureError: unsigned, bad signature, another input or model, or a
                payload of another layout.
            AttestationError: the attestation or the policy check failed.
        """
        if model_hash is not None:
            model_hash = _digest(model_hash)
        payload = self._verified_payload(
            policy_file,
            policy,
            validate_quote,
            enclave_signing_key,
            allow_simulation_mode,
            at,
            trusted_root,
            warn=_warn,
        )
        run = _run_payload(payload)
        if run.HasField("input_tensor"):
            _check_tensor_input(run, data_list)
        else:
            _check_cbor_input(run, data_list)
        if model_hash is not None and run.model_hash != model_hash:
            raise SignatureError(
                f"the proof names model {run.model_hash.hex()[:16] or 'none'}…, "
                f"not {model_hash.hex()[:16]}…"
            )

    def _validate_sent(
        self,
        sha256: bytes,
        tensor: Any,
        enclave_signing_key: SigningKey | None,
        allow_simulation_mode: bool,
    ) -> None:
        """The client's check of a reply it has just received: the signature,
        and that the payload names the bytes it sent (their SHA-256, and for a
        tensor its type and shape), without encoding the input again."""
        payload = self._verified_payload(
            None,
            None,
            False,
            enclave_signing_key,
            allow_simulation_mode,
            None,
            None,
            warn=False,
        )
        if self.output is None:
            raise SignatureError("the proof's output is not of the 0.3.0 layout")
        # self.output was decoded from this payload: no second decoding.
        run = _run_payload(payload, decode=False)
        if tensor is None:
            named = b"" if run.HasField("input_tensor") else run.input_hash
        elif run.HasField("input_tensor") and (
            run.input_tensor.datum == tensor.datum
            and list(run.input_tensor.shape) == list(tensor.shape)
        ):
            named = run.input_tensor_hash
        else:
            named = b""
        if named != sha256:
            raise SignatureError(
                "the proof is for another input than the one sent (it names "
                f"{named.hex()[:16] or 'none'}…, the bytes sent give "
                f"{sha256.hex()[:16]}…)"
            )


def _run_payload(payload: Payload, *, decode: bool = True) -> RunModelPayload:
    """The inference payload of a verified proof; with ``decode``, checked to
    hold an output of the 0.3 layout."""
    if payload.WhichOneof("payload") != "run_model_payload":
        raise SignatureError("this proof is not an inference proof")
    run = payload.run_model_payload
    if not decode:
        return run
    try:
        _decode_output(run.output)
    except ValueError as exc:
        raise SignatureError(
            f"the proof's output is not of the 0.3.0 layout: {exc}"
        ) from None
    return run


def _check_cbor_input(run: RunModelPayload, data_list: Any) -> None:
    """The 0.3 commitment: SHA-256 of the CBOR list, encoded as run_model does."""
    try:
        encoded = encode_input(data_list)
    except ValueError as exc:
        raise SignatureError(f"cannot encode data_list: {exc}") from None
    expected = hashlib.sha256(encoded).digest()
    if run.input_hash != expected:
        raise SignatureError(
            "the proof is for another input (input_hash "
            f"{run.input_hash.hex()[:16] or 'empty'}…, this data gives "
            f"{expected.hex()[:16]}…)"
        )


def _digest(value: Any) -> bytes:
    """A SHA-256 given as 32 bytes or 64 hex characters."""
    if isinstance(value, bytes | bytearray) and len(value) == 32:
        return bytes(value)
    if isinstance(value, str):
        try:
            digest = bytes.fromhex(value)
        except ValueError:
            digest = b""
        if len(digest) == 32:
            return digest
        raise ValueError(
            f"model_hash must be a SHA-256 (32 bytes or 64 hex characters), got "
            f"{value[:40]!r}; hash the model file with hashlib.sha256"
        )
    raise TypeError(
        "model_hash must be a SHA-256 (32 bytes or 64 hex characters), got a "
        f"{type(value).__name__}"
    )


def _converts_exactly(original: np.ndarray, tensor: np.ndarray) -> bool:
    """Whether ``tensor`` holds exactly the values of ``original``: a cast that
    truncates, wraps or rounds would let a proof vouch for an input never sent."""
    if original.dtype.kind not in "iuf":
        return False
    if original.dtype.kind == "f" and tensor.dtype.kind != "f":
        return False
    if original.dtype.kind in "iu" and tensor.dtype.kind in "iu" and original.size:
        # Same width, other signedness: a round trip would hide the wrap.
        info = np.iinfo(tensor.dtype)
        return info.min <= int(original.min()) and int(original.max()) <= info.max
    with np.errstate(invalid="ignore", over="ignore"):
        back = tensor.astype(original.dtype)
    return bool(np.array_equal(back, original, equal_nan=original.dtype.kind == "f"))


def _check_tensor_input(run: RunModelPayload, data_list: Any) -> None:
    """The tensor commitment: element type, shape and SHA-256 of the raw bytes,
    with ``data_list`` converted to the proof's element type as run_model did."""
    try:
        datum = ModelDatumType(run.input_tensor.datum)
        original = np.asarray(data_list)
        tensor = as_tensor(original, datum)
    except ValueError as exc:
        raise SignatureError(
            f"cannot convert data_list to the proof's input tensor: {exc}"
        ) from None
    if not _converts_exactly(original, tensor):
        raise SignatureError(
            f"data_list ({original.dtype}) does not convert exactly to the proof's "
            f"{datum.name} input: it is not the input that was sent"
        )
    shape = list(run.input_tensor.shape)
    if list(tensor.shape) != shape:
        raise SignatureError(
            f"the proof is for an input of shape {shape}, not {list(tensor.shape)}"
        )
    expected = hashlib.sha256(tensor.tobytes()).digest()
    if run.input_tensor_hash != expected:
        raise SignatureError(
            f"the proof is for another input (input_tensor_hash "
            f"{run.input_tensor_hash.hex()[:16] or 'empty'}…, this {datum.name} "
            f"data gives {expected.hex()[:16]}…)"
        )


def _decode_output(data: bytes) -> list[int | float]:
    from blindai.tensors import decode_output

    try:
        return decode_output(data)
    except Exception as exc:  # noqa: BLE001 (cbor2 raises several unrelated types)
        raise ValueError(f"output is not a CBOR list: {type(exc).__name__}") from None


def _require_key(key: SigningKey | None, why: str) -> Ed25519PublicKey:
    if key is None:
        raise SignatureError(f"enclave_signing_key is required to check {why}")
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes | bytearray) and len(key) == 32:
        return Ed25519PublicKey.from_public_bytes(bytes(key))
    raise SignatureError(
        "enclave_signing_key must be an Ed25519PublicKey or its 32 raw bytes"
    )


def _verify_signature(key: Ed25519PublicKey, signature: bytes, payload: bytes) -> None:
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        raise SignatureError(
            "the signature does not match the payload and the enclave's key"
        ) from None
