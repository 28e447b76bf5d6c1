"""Receiving a RunModel input: the 0.3 CBOR list, or a raw tensor ("tensor-v1").

A raw tensor arrives as little-endian bytes in ``tensor_data`` chunks, described
by ``tensor`` (element type and shape) on the first chunk. The server converts
it to the model's input type by the rules the CBOR path applies to numbers:
integers become floats, floats change width, integers must fit an integer type,
and floats are never truncated into integers. The signed payload commits to
what the client sent (its element type, shape and the SHA-256 of its bytes),
as ``input_hash`` commits to the CBOR bytes of the 0.3 path.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from blindai.pb import securedexchange_pb2 as pb
from blindai.server.models import (
    MAX_RANK,
    LoadedModel,
    exhausted,
    invalid,
)
from blindai.tensors import (
    InputDecodeError,
    ModelDatumType,
    decode_input,
    narrow_floats,
)

#: Largest reply a 0.3 client can receive (gRPC's default receive limit).
LEGACY_REPLY_LIMIT = 4 * 1024 * 1024
#: Request metadata by which a client says it accepts replies over 4 MiB.
LARGE_REPLY_KEY = "blindai-large-reply"


@dataclass(frozen=True)
class ReceivedInput:
    """The whole input of one RunModel call, as received."""

    first: pb.RunModelRequest
    raw: bytes | bytearray
    tensor: pb.TensorInfo | None
    #: SHA-256 of ``raw``, hashed as it arrived.
    sha256: bytes

    def commitments(self) -> dict[str, object]:
        """The RunModelPayload fields that name this input."""
        if self.tensor is None:
            return {"input_hash": self.sha256}
        return {"input_tensor": self.tensor, "input_tensor_hash": self.sha256}


def receive(requests: Iterator[pb.RunModelRequest], limit: int) -> ReceivedInput:
    """Read the request stream; refuse more than ``limit`` input bytes."""
    first = next(requests, None)
    if first is None:
        raise invalid("the input stream was empty")
    if first.HasField("tensor"):
        return _receive_tensor(first, requests, limit)
    return _receive_cbor(first, requests, limit)


def _receive_cbor(
    first: pb.RunModelRequest, requests: Iterator[pb.RunModelRequest], limit: int
) -> ReceivedInput:
    parts = []
    total = 0
    # Hashed as it arrives, while the next message is still on its way.
    digest = hashlib.sha256()
    for request in itertools.chain((first,), requests):
        # One read per field: each read of a bytes field copies it.
        chunk, stray = request.input, len(request.tensor_data)
        # The limit comes first, whatever else is wrong with the request.
        total += len(chunk) + stray
        if total > limit:
            raise exhausted(f"the input exceeds this server's limit of {limit} bytes")
        if stray:
            raise invalid(
                "tensor_data arrived without a tensor description on the first message"
            )
        digest.update(chunk)
        parts.append(chunk)
    if total == 0:
        raise invalid("the input is empty")
    return ReceivedInput(first, b"".join(parts), None, digest.digest())


def _receive_tensor(
    first: pb.RunModelRequest, requests: Iterator[pb.RunModelRequest], limit: int
) -> ReceivedInput:
    tensor = first.tensor
    length = _tensor_length(tensor, limit)
    # Reserved only now that the declared length is within the limit.
    buffer = bytearray(length)
    received = 0
    # Hashed chunk by chunk: hashlib lets go of the GIL on large chunks, so
    # gRPC takes in the next chunk meanwhile (2.7 MB: 1.5 ms after the last
    # chunk otherwise).
    digest = hashlib.sha256()
    for request in itertools.chain((first,), requests):
        if request.input:
            raise invalid("a tensor input may not also carry CBOR input bytes")
        chunk = request.tensor_data
        end = received + len(chunk)
        if end > limit:
            raise exhausted(f"the input exceeds this server's limit of {limit} bytes")
        if end > length:
            raise invalid(
                f"more tensor bytes arrived than the {length} its "
                f"shape {list(tensor.shape)} declares"
            )
        buffer[received:end] = chunk
        digest.update(chunk)
        received = end
    if received != length:
        raise invalid(f"the tensor ended after {received} of its {length} bytes")
    return ReceivedInput(first, buffer, tensor, digest.digest())


def _tensor_length(tensor: pb.TensorInfo, limit: int) -> int:
    try:
        datum = ModelDatumType(tensor.datum)
    except ValueError:
        raise invalid(f"unknown tensor element type {tensor.datum}") from None
    if len(tensor.shape) > MAX_RANK:
        raise invalid(
            f"the tensor has {len(tensor.shape)} dimensions; at most "
            f"{MAX_RANK} are allowed"
        )
    length = datum.numpy_dtype.itemsize
    for dim in tensor.shape:
        if dim < 0:
            raise invalid(f"tensor shape {list(tensor.shape)} has a negative dimension")
        length *= dim
        # Checked at each step: the product of 16 int64 dimensions is unbounded.
        if length > limit:
            raise exhausted(
                f"the tensor {list(tensor.shape)} of {datum.name} "
                f"exceeds this server's input limit of {limit} bytes"
            )
    return length


def to_model_array(received: ReceivedInput, model: LoadedModel) -> np.ndarray:
    """The input as an array of the model's shape and element type.

    A tensor's own shape is committed to in the payload but only its element
    count must match, as for a flat CBOR list.
    """
    if received.tensor is None:
        try:
            array = decode_input(received.raw, model.datum)
        except InputDecodeError as exc:
            raise invalid(str(exc)) from None
    else:
        array = _convert(received.raw, received.tensor, model.datum)
    if array.size != model.element_count:
        raise invalid(
            f"the input has {array.size} elements; the model's input shape "
            f"{list(model.shape)} takes {model.element_count}"
        )
    return array.reshape(model.shape)


def _convert(
    raw: bytes | bytearray, tensor: pb.TensorInfo, target: ModelDatumType
) -> np.ndarray:
    sent = ModelDatumType(tensor.datum)
    array = np.frombuffer(raw, dtype=sent.numpy_dtype)
    if sent == target:
        return array
    if sent.is_float and not target.is_float:
        raise invalid(
            f"the input tensor is {sent.name} but the model takes "
            f"{target.name}: floats are not truncated to integers"
        )
    if not sent.is_float and not target.is_float and array.size:
        info = np.iinfo(target.numpy_dtype)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            raise invalid(
                f"the input tensor is {sent.name} with values from "
                f"{low} to {high}; the model takes {target.name}"
            )
    if sent.is_float and target.is_float:
        try:
            return narrow_floats(array, target)
        except InputDecodeError as exc:
            raise invalid(f"the input tensor is {sent.name}: {exc}") from None
    return array.astype(target.numpy_dtype)


def reply_limit(received: ReceivedInput, metadata: object) -> int | None:
    """The largest reply this client can receive, or ``None`` for no limit.

    A client that sent a tensor, or the request metadata ``blindai-large-reply``,
    is one of ours and accepts large replies; any other client may be a
    published 0.3 client, whose gRPC refuses replies over 4 MiB with an error
    that does not say why.
    """
    if received.tensor is not None:
        return None
    for key, _ in metadata or ():  # type: ignore[attr-defined]
        if key == LARGE_REPLY_KEY:
            return None
    return LEGACY_REPLY_LIMIT


def check_reply_size(size: int, limit: int | None) -> None:
    """Refuse a reply over ``limit`` with a status that says what to do."""
    if limit is not None and size > limit:
        raise exhausted(
            f"the reply would be {size} bytes, more than the {limit} a BlindAI "
            "0.3 client can receive; use a client that sends the "
            f"'{LARGE_REPLY_KEY}' metadata or a tensor input",
        )


__all__ = [
    "LARGE_REPLY_KEY",
    "ReceivedInput",
    "check_reply_size",
    "receive",
    "reply_limit",
    "to_model_array",
]
