"""The fast paths of a model upload keep their checks.

The client hashes the model while gRPC sends it; the hash it checks the
server's reply against is always the whole model's.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest

import blindai
from blindai import client as client_module
from blindai.errors import SignatureError
from blindai.pb import securedexchange_pb2 as pb

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
