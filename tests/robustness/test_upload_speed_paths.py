"""The fast paths of a model upload keep their checks.

The client hashes the model while gRPC sends it; the hash it checks the
server's reply against is always the whole model's. The server's
external-data check walks the model in pieces, as they arrive, with the same
verdicts as on the whole model.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import numpy as np
import onnx
import pytest
from models import affine_model
from onnx import TensorProto
from robust_support import (
    external_data_model,
    external_data_variants,
)

import blindai
from blindai import client as client_module
from blindai.errors import SignatureError
from blindai.pb import securedexchange_pb2 as pb
from blindai.server.upload import (
    ExternalDataCheck,
    ModelFormatError,
    ReceivedModel,
    check_no_external_data,
)

MODEL = bytes(range(256)) * (3 * client_module.CHUNK_SIZE // 256 + 7)


def upload_reply(model_hash: bytes) -> pb.SendModelReply:
    payload = pb.Payload(send_model_payload=pb.SendModelPayload(model_hash=model_hash))
    return pb.SendModelReply(payload=payload.SerializeToString())


class Stub:
    """Takes ``take`` messages (all when None) in a thread of its own, as
    gRPC's sending thread does, then answers with the hash ``answer`` makes of
    the bytes it received."""

    def __init__(self, answer, take: int | None = None) -> None:
        self.answer = answer
        self.take = take
        self.received: list[pb.SendModelRequest] = []

    def SendModel(  # noqa: N802 (gRPC method name)
        self, requests: Iterator, timeout: float | None = None, metadata: object = None
    ) -> pb.SendModelReply:
        def consume() -> None:
            for request in requests:
                self.received.append(request)
                if self.take is not None and len(self.received) >= self.take:
                    return

        thread = threading.Thread(target=consume)
        thread.start()
        thread.join()
        data = b"".join(r.data for r in self.received)
        return upload_reply(self.answer(data))


def client_with(stub: Stub) -> blindai.BlindAiClient:
    c = blindai.BlindAiClient()
    c._stub = stub  # type: ignore[assignment]
    return c


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_the_hash_made_while_sending_is_the_models():
    stub = Stub(sha)
    seen: list[tuple[int, int]] = []
    client_with(stub).upload_model(MODEL, progress=lambda a, b: seen.append((a, b)))
    assert b"".join(r.data for r in stub.received) == MODEL
    assert len(stub.received) == 4 and seen[-1] == (len(MODEL), len(MODEL))
    # The 0.3 server reads the fields of every message: each one carries them.
    assert {(r.length, r.model_name) for r in stub.received} == {
        (len(MODEL), "model.onnx")
    }


def test_a_reply_before_the_last_chunk_is_checked_against_the_whole_model():
    # The server answers after one chunk, with the hash of the whole model: the
    # client hashes what gRPC did not take rather than check a prefix.
    stub = Stub(lambda _: sha(MODEL), take=1)
    client_with(stub).upload_model(MODEL)
    assert len(stub.received) == 1


def test_a_reply_naming_the_hash_of_a_prefix_is_refused():
    stub = Stub(sha, take=2)
    with pytest.raises(SignatureError, match="reports model"):
        client_with(stub).upload_model(MODEL)


def test_a_reply_naming_another_model_is_refused():
    stub = Stub(lambda data: sha(data + b"x"))
    with pytest.raises(SignatureError, match="reports model"):
        client_with(stub).upload_model(MODEL)


# --- the external-data check, walked in pieces --------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            return bytes(out + bytes([byte]))
        out.append(byte | 0x80)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _tensor_with_location(value: int) -> bytes:
    """A 4-float tensor whose ``data_location`` is ``value``, as a parser that
    keeps an enum's low 32 bits reads it."""
    tensor = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    tensor.raw_data = np.zeros(4, np.float32).tobytes()
    return tensor.SerializeToString() + _varint(14 << 3) + _varint(value)


def _model_with_initializer(tensor: bytes) -> bytes:
    """A model (``affine_model``) with one more graph field holding ``tensor``
    as an initializer: protobuf merges both graphs."""
    return affine_model() + _field(7, _field(5, tensor))


def test_attack_data_location_with_high_bits_set_is_external():
    # protobuf reads the enum as its low 32 bits: 2**32 + 1 is EXTERNAL (1).
    data = _model_with_initializer(_tensor_with_location(2**32 + 1))
    assert onnx.load_from_string(data).graph.initializer[-1].data_location == 1
    with pytest.raises(ModelFormatError, match="'w' refers to external data"):
        check_no_external_data(ReceivedModel.of_bytes(data))


@pytest.mark.parametrize("tail", [b"\x00\x00", b"\x00"])
def test_attack_field_number_zero_is_refused(tail):
    # Some protobuf parsers take a zero tag for the end of the message: a model
    # must not look finished to onnxruntime before the check has seen it all.
    with pytest.raises(ModelFormatError, match="protobuf parse failed"):
        check_no_external_data(ReceivedModel.of_bytes(affine_model() + tail))


def _hostile_models() -> dict[str, bytes]:
    models = dict(external_data_variants())
    models["initializer"] = external_data_model()
    models["after-a-whole-model"] = _model_with_initializer(_tensor_with_location(1))
    entries = onnx.TensorProto(name="late", data_type=TensorProto.FLOAT, dims=[4])
    entry = entries.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    models["last-bytes"] = affine_model() + _field(
        7, _field(5, entries.SerializeToString())
    )
    return models


HOSTILE = _hostile_models()


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_check_in_pieces_agrees_with_the_whole_check(name):
    data = HOSTILE[name]
    with pytest.raises(ModelFormatError) as whole:
        check_no_external_data(ReceivedModel.of_bytes(data))
    for size in (1, 2, 3, 5, 64):
        check = ExternalDataCheck(len(data))
        with pytest.raises(ModelFormatError) as pieces:
            for piece in _pieces(data, size):
                check.feed(piece)
            check.finish()
        assert str(pieces.value) == str(whole.value)
    good = affine_model()
    check = ExternalDataCheck(len(good))
    for piece in _pieces(good, 3):
        check.feed(piece)
    check.finish()
