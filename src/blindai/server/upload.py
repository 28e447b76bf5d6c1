"""Receiving a model upload with as few copies as possible.

The bytes go straight into a file in the server's private model directory (an
in-memory tmpfs: ``/dev/shm`` by default; under Gramine it MUST be an
in-enclave tmpfs mount, never host-visible storage), hashed as they arrive.
onnxruntime then loads the model from that path, which avoids the copy its
Python API makes of bytes it is given, and the file is deleted as soon as the
session exists. The refusal of external-data references is checked on the file
by walking the protobuf's headers, without building a ``ModelProto`` (which
would be one more copy of every weight).

Without a model directory the upload is held in memory, as one buffer.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import mmap
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ModelFormatError(ValueError):
    """The model is not protobuf, or not self-contained; the message says which."""


invalid = ModelFormatError

#: Protobuf field numbers of the ONNX messages that can hold tensors (onnx.proto).
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE = 1, 5, 15
_NODE_ATTRIBUTE = 5
_FUNCTION_NODE = 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_ATTR_SPARSE, _ATTR_SPARSES = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_EXTERNAL = 1
#: Subgraphs nest (If, Loop, Scan); a deeper model is refused, not recursed into.
MAX_GRAPH_DEPTH = 64


def default_model_dir() -> Path | None:
    """``/dev/shm`` when this system has it (a tmpfs), else ``None``."""
    shm = Path("/dev/shm")  # noqa: S108 (private files: mkstemp, 0600)
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


@dataclass
class ReceivedModel:
    """An uploaded model: in a file of the model directory, or in memory."""

    sha256: bytes
    size: int
    path: Path | None = None
    data: bytes | bytearray | None = None

    @property
    def onnx_source(self) -> str | bytes:
        """What ``onnxruntime.InferenceSession`` takes."""
        if self.path is not None:
            return str(self.path)
        assert self.data is not None
        # onnxruntime takes only bytes: without a model directory this is the
        # one extra copy that the directory avoids.
        return bytes(self.data)

    @classmethod
    def of_bytes(cls, data: bytes | bytearray) -> ReceivedModel:
        """A model already in memory (hashed here)."""
        return cls(hashlib.sha256(data).digest(), len(data), data=data)

    def discard(self) -> None:
        """Delete the file (or drop the buffer); safe to call twice."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.data = None


class ModelWriter:
    """Receives one model of a declared ``length``, hashing as it goes."""

    def __init__(self, length: int, model_dir: Path | None) -> None:
        self.length = length
        self.received = 0
        self._hash = hashlib.sha256()
        self._path: Path | None = None
        self._file = None
        self._buffer: bytearray | None = None
        if model_dir is None:
            # Reserved only after the caller checked the length against the limit.
            self._buffer = bytearray(length)
            return
        # mkstemp creates the file 0600 with O_EXCL under a random name.
        fd, name = tempfile.mkstemp(prefix="model-", suffix=".onnx", dir=model_dir)
        self._path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=0)

    def write(self, chunk: bytes) -> None:
        end = self.received + len(chunk)
        self._hash.update(chunk)
        if self._buffer is not None:
            self._buffer[self.received : end] = chunk
        else:
            assert self._file is not None
            self._file.write(chunk)
        self.received = end

    def finish(self) -> ReceivedModel:
        if self._file is not None:
            self._file.close()
        return ReceivedModel(
            self._hash.digest(), self.received, self._path, self._buffer
        )

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
        self._buffer = None


# --- feeding onnxruntime ------------------------------------------------------------

#: Linux fallocate flags: free the file's pages for a range, keep its size.
_PUNCH_HOLE = 0x02 | 0x01
_PIPE_CHUNK = 1024 * 1024
_F_SETPIPE_SZ = 1031


def create_session(
    model: ReceivedModel, create: Callable[[str | bytes], T], *, use_pipe: bool = True
) -> T:
    """``create(source)`` with the model's path (or bytes), fed through a pipe.

    onnxruntime first parses the whole file into a ``ModelProto``, then copies
    each weight into its own tensor. Given the file's path, the file, the
    parsed model and the tensors are all alive at the peak (three times the
    model). Given a named pipe instead, a thread copies the file into it and
    frees each part of the file once written, so the peak holds two copies.
    Where named pipes cannot be made (some library OSes), or with ``use_pipe``
    false, the path is used. Hardware mode never uses the pipe: a library OS may
    carry pipe data through the host, and model bytes must stay in the enclave.
    """
    if model.path is None:
        return create(model.onnx_source)
    if not use_pipe:
        return create(str(model.path))
    fifo = model.path.with_suffix(".fifo")
    try:
        os.mkfifo(fifo, 0o600)
    except OSError:
        return create(str(model.path))
    pump = threading.Thread(
        target=_pump,
        args=(model.path, fifo, model.size),
        name="model-pipe",
        daemon=True,
    )
    pump.start()
    try:
        return create(str(fifo))
    finally:
        _stop_pump(fifo, pump)


def _pump(path: Path, fifo: Path, size: int) -> None:
    src = os.open(path, os.O_RDWR)
    try:
        dst = os.open(fifo, os.O_WRONLY)
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(dst, _F_SETPIPE_SZ, _PIPE_CHUNK)
            offset = 0
            while offset < size:
                chunk = os.pread(src, _PIPE_CHUNK, offset)
                if not chunk:
                    return
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
                _punch_hole(src, offset, len(chunk))
                offset += len(chunk)
        except BrokenPipeError:
            return  # onnxruntime stopped reading (a malformed model)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _punch_hole(fd: int, offset: int, length: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate(fd, _PUNCH_HOLE, ctypes.c_long(offset), ctypes.c_long(length))
    except (OSError, AttributeError):
        pass  # the file is deleted whole afterwards anyway


def _stop_pump(fifo: Path, pump: threading.Thread) -> None:
    """Unblock a writer still waiting for a reader or for room, then clean up."""
    if pump.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    pump.join()
    with contextlib.suppress(FileNotFoundError):
        fifo.unlink()


# --- the external-data check -----------------------------------------------------


def check_no_external_data(model: ReceivedModel) -> None:
    """Refuse models whose tensors name external files (a model may not read
    the server's files); raises :class:`ModelFormatError`."""
    if model.path is None:
        assert model.data is not None
        _check_model(memoryview(model.data))
        return
    with open(model.path, "rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        _check_model(memoryview(mapped))
    finally:
        # A refusal's traceback may still hold slices of the mapping; it is
        # then unmapped when they are collected.
        with contextlib.suppress(BufferError):
            mapped.close()


def _check_model(data: memoryview) -> None:
    for number, value in _fields(data):
        if number == _MODEL_GRAPH:
            _check_graph(value, 0)
        elif number == _MODEL_FUNCTIONS:
            for field, node in _fields(value):
                if field == _FUNCTION_NODE:
                    _check_node(node, 0)


def _check_graph(graph: memoryview, depth: int) -> None:
    if depth > MAX_GRAPH_DEPTH:
        raise invalid(f"the model nests subgraphs deeper than {MAX_GRAPH_DEPTH}")
    for number, value in _fields(graph):
        if number == _GRAPH_INITIALIZER:
            _check_tensor(value)
        elif number == _GRAPH_SPARSE:
            _check_sparse(value)
        elif number == _GRAPH_NODE:
            _check_node(value, depth)


def _check_node(node: memoryview, depth: int) -> None:
    for number, attribute in _fields(node):
        if number != _NODE_ATTRIBUTE:
            continue
        for field, value in _fields(attribute):
            if field in (_ATTR_T, _ATTR_TENSORS):
                _check_tensor(value)
            elif field in (_ATTR_SPARSE, _ATTR_SPARSES):
                _check_sparse(value)
            elif field in (_ATTR_G, _ATTR_GRAPHS):
                _check_graph(value, depth + 1)


def _check_sparse(sparse: memoryview) -> None:
    for number, value in _fields(sparse):
        if number in (_SPARSE_VALUES, _SPARSE_INDICES):
            _check_tensor(value)


def _check_tensor(tensor: memoryview) -> None:
    name, external = "", False
    for number, value in _fields(tensor, varints=True):
        if number == _TENSOR_NAME:
            name = bytes(value).decode("utf-8", "replace")
        elif number == _TENSOR_EXTERNAL_DATA:
            external = True
        elif number == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
            external = True
    if external:
        raise invalid(
            f"the model's tensor {name!r} refers to external data; "
            "models must be self-contained"
        )


def _fields(
    data: memoryview, *, varints: bool = False
) -> Iterator[tuple[int, memoryview]]:
    """The length-delimited fields of one protobuf message, as (number, bytes);
    with ``varints``, varint fields too (their value as an int). Other fields
    are skipped. Raises :class:`ModelFormatError` when they are not protobuf."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            if varints:
                yield number, value  # type: ignore[misc]
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise _not_onnx()
            yield number, data[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise _not_onnx()
    if pos != end:
        raise _not_onnx()


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _not_onnx()
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _not_onnx() -> ModelFormatError:
    return invalid("the bytes are not an ONNX model (protobuf parse failed)")
