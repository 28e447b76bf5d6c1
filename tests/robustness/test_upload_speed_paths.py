"""The fast paths of a model upload keep their checks.

The client hashes the model while gRPC sends it; the hash it checks the
server's reply against is always the whole model's. The server walks the
external-data check as the bytes arrive and feeds onnxruntime only what the
check has walked, the last bytes once the whole model passed: a model naming
external data anywhere is never loaded, nor one that is cut short.
"""

from __future__ import annotations

import hashlib
import os
import select
import threading
import time
from collections.abc import Iterator

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from models import affine_model
from onnx import TensorProto
from robust_support import (
    assert_serves_reference,
    external_data_model,
    external_data_variants,
    gather_model,
    model_requests,
    raw_stub,
    reference_model,
    sim_server,
    upload,
)

import blindai
from blindai import client as client_module
from blindai.errors import SignatureError
from blindai.pb import securedexchange_pb2 as pb
from blindai.server.upload import (
    ExternalDataCheck,
    ModelFormatError,
    ReceivedModel,
    StreamingLoad,
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


# --- onnxruntime fed while the model arrives ------------------------------------------


class Sessions:
    """onnxruntime, remembering every session it managed to create."""

    def __init__(self) -> None:
        self.created: list[ort.InferenceSession] = []
        self.errors: list[Exception] = []

    def __call__(self, path: str) -> ort.InferenceSession:
        try:
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as exc:
            self.errors.append(exc)
            raise
        self.created.append(session)
        return session


class Reader:
    """Stands in for onnxruntime: reads the pipe to its end and keeps the bytes."""

    def __init__(self) -> None:
        self.read = b""

    def __call__(self, path: str) -> bytes:
        with open(path, "rb") as pipe:
            self.read = pipe.read()
        return self.read


def stream(data: bytes, pieces: list[bytes], directory, create, length=None):
    load = StreamingLoad(len(data) if length is None else length, directory, create)
    for piece in pieces:
        load.write(piece)
    return load


def test_a_streamed_model_loads_and_leaves_nothing_behind(tmp_path):
    data = affine_model()
    sessions = Sessions()
    loaded = stream(data, _pieces(data, 7), tmp_path, sessions).finish()
    session = loaded.session()
    assert sessions.created == [session]
    assert loaded.sha256 == hashlib.sha256(data).digest() and loaded.size == len(data)
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    assert session.run(None, {"x": x})[0].tolist() == [[3.0, 5.0, 7.0, 9.0]]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("size", [1, 13, 1 << 20])
def test_attack_external_data_streamed_is_refused_and_never_loaded(
    name, size, tmp_path
):
    data = HOSTILE[name]
    sessions = Sessions()
    refused = stream(data, _pieces(data, size), tmp_path, sessions).finish()
    with pytest.raises(ModelFormatError, match="refers to external data"):
        refused.session()
    assert sessions.created == []
    assert list(tmp_path.iterdir()) == []


def test_attack_refused_after_whole_fields_onnxruntime_gets_no_model(tmp_path):
    # A loadable model, then a graph field naming a file, then one more field:
    # what was fed before the refusal is a whole model on its own, so the
    # pipe is ended with a field that cannot be complete.
    good = affine_model()
    bad = _field(7, _field(5, _tensor_with_location(1)))
    data = good + bad + _field(6, b"doc")
    reader = Reader()
    refused = stream(data, [good, bad, _field(6, b"doc")], tmp_path, reader).finish()
    with pytest.raises(ModelFormatError, match="refers to external data"):
        refused.session()
    assert reader.read.startswith(good) and reader.read != good
    ort.InferenceSession(good, providers=["CPUExecutionProvider"])  # alone, it loads
    with pytest.raises(Exception, match="(?i)protobuf|parse|invalid|load"):
        ort.InferenceSession(reader.read, providers=["CPUExecutionProvider"])


def test_the_last_piece_waits_until_the_whole_model_passed(tmp_path):
    data = HOSTILE["last-bytes"]
    reader = Reader()
    refused = stream(data, [data[:-3], data[-3:]], tmp_path, reader).finish()
    with pytest.raises(ModelFormatError, match="'late' refers to external data"):
        refused.session()
    assert reader.read == data[:-3]  # cut inside a field: no model


def test_attack_a_model_cut_short_is_never_loaded(tmp_path):
    whole = affine_model()
    data = whole[:-2]  # declared as it is: the cut shows only at the end
    sessions = Sessions()
    refused = stream(data, [data[:-1], data[-1:]], tmp_path, sessions).finish()
    with pytest.raises(ModelFormatError, match="protobuf parse failed"):
        refused.session()
    assert sessions.created == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cut", ["between-fields", "inside-a-field"])
def test_an_upload_that_ends_early_is_never_loaded(cut, tmp_path):
    # Fewer bytes than declared, then the stream stops (the server aborts).
    data = affine_model()
    sent = data if cut == "between-fields" else data[:-5]
    sessions = Sessions()
    load = stream(data, _pieces(sent, 16), tmp_path, sessions, length=len(data) + 9)
    load.abort()
    assert sessions.created == [] and len(sessions.errors) == 1
    assert list(tmp_path.iterdir()) == []


def test_without_named_pipes_nothing_is_left_behind(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("no named pipes here")

    monkeypatch.setattr(os, "mkfifo", refuse)
    with pytest.raises(OSError):
        StreamingLoad(10, tmp_path, Sessions())
    assert list(tmp_path.iterdir()) == []


def test_onnxruntime_gets_the_last_piece_only_after_the_check(tmp_path):
    data = affine_model()
    last = data[-10:]
    written, looked, seen = threading.Event(), threading.Event(), []

    def reader(path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            read = b""
            while len(read) < len(data) - len(last):
                read += os.read(fd, len(data) - len(last) - len(read))
            # Pieces reach the pipe before write() returns: once both writes
            # returned, anything not held back is in the pipe.
            written.wait()
            seen.append(select.select([fd], [], [], 0)[0])
            looked.set()
            while piece := os.read(fd, 4096):
                read += piece
            return read
        finally:
            os.close(fd)

    load = stream(data, [data[: -len(last)], last], tmp_path, reader)
    written.set()
    assert looked.wait(60)
    loaded = load.finish()
    assert seen == [[]]  # the last piece was not in the pipe before finish()
    assert loaded.session() == data


def test_a_client_cancelling_a_model_being_loaded(tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    model = gather_model(table=1024 * 1024)  # 4 MB: 16 messages
    half = model_requests(model, chunk=256 * 1024)[:3]
    release = threading.Event()

    def requests() -> Iterator[pb.SendModelRequest]:
        yield from half
        release.wait(30)

    with sim_server("--model-dir", str(model_dir)) as server, raw_stub(server) as stub:
        future = stub.SendModel.future(requests(), timeout=30)
        deadline = time.monotonic() + 10
        while not list(model_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        future.cancel()
        release.set()
        assert future.cancelled() or future.exception() is not None
        while list(model_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(model_dir.iterdir()) == []
        upload(stub, reference_model())
        assert_serves_reference(stub)
