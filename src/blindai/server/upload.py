"""Receiving a model upload with as few copies as possible.

In simulation mode onnxruntime parses the model while it arrives: each piece is
hashed and walked by the external-data check, then written to a named pipe
that onnxruntime reads (:class:`StreamingLoad`); the piece that completes the
model is held back until the check has passed on all of it. No file holds the
model.

Otherwise the bytes go straight into a file in the server's private model
directory (an in-memory tmpfs: ``/dev/shm`` by default; under Gramine it MUST
be an in-enclave tmpfs mount, never host-visible storage), hashed as they
arrive. onnxruntime then loads the model from that path, which avoids the copy
its Python API makes of bytes it is given, and the file is deleted as soon as
the session exists.

The refusal of external-data references walks the protobuf's headers as the
bytes come (:class:`ExternalDataCheck`), without building a ``ModelProto``
(which would be one more copy of every weight). Without a model directory the
upload is held in memory, as one buffer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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


#: The names of this server's uploads in the model directory: a file (hardware
#: mode) or a directory holding a named pipe (simulation mode).
UPLOAD_PREFIX = "blindai-upload-"
#: An upload unheld for this long is stale; a younger one may be between its
#: creation and its lock.
STALE_AFTER = 10.0


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
    #: The descriptor whose lock marks the file as in use (see :func:`_hold`).
    lock: int | None = field(default=None, repr=False)

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
        _release(self.lock)
        self.lock = None
        self.data = None


class ModelWriter:
    """Receives one model of a declared ``length``, hashing as it goes."""

    def __init__(self, length: int, model_dir: Path | None) -> None:
        self.length = length
        self.received = 0
        self._hash = hashlib.sha256()
        self._path: Path | None = None
        self._file = None
        self._lock: int | None = None
        self._buffer: bytearray | None = None
        if model_dir is None:
            # Reserved only after the caller checked the length against the limit.
            self._buffer = bytearray(length)
            return
        # mkstemp creates the file 0600 with O_EXCL under a random name.
        fd, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=".onnx", dir=model_dir)
        self._path = Path(name)
        self._lock = _hold(fd)
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
            self._hash.digest(), self.received, self._path, self._buffer, self._lock
        )

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
        _release(self._lock)
        self._lock = None
        self._buffer = None


# --- uploads left behind ----------------------------------------------------------


def _hold(fd: int) -> int | None:
    """A new descriptor of ``fd``'s file (or directory) holding an exclusive
    lock on it until it is closed; ``None`` where locks are not supported.

    The lock tells a server starting later that the upload is in use. A
    duplicate keeps it after the writer closes its own descriptor.
    """
    lock = os.dup(fd)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return None
    return lock


def _release(lock: int | None) -> None:
    if lock is not None:
        with contextlib.suppress(OSError):
            os.close(lock)


def remove_stale_uploads(directory: Path, min_age: float = STALE_AFTER) -> int:
    """Remove the uploads in ``directory`` that no server holds: those of a
    server killed mid-upload. Returns how many were removed.

    Only this user's entries named :data:`UPLOAD_PREFIX`, older than
    ``min_age`` seconds and whose lock can be taken are removed. Symbolic
    links are never followed; an entry that cannot be checked stays.
    """
    removed = 0
    now = time.time()
    for entry in directory.iterdir():
        if not entry.name.startswith(UPLOAD_PREFIX):
            continue
        try:
            info = entry.lstat()
            if info.st_uid != os.getuid() or now - info.st_mtime < min_age:
                continue
            if stat.S_ISDIR(info.st_mode):
                fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            elif stat.S_ISREG(info.st_mode):
                fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW)
            else:
                continue  # a symbolic link, a pipe: not an upload of ours
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held by a running server, or locks are not supported
        try:
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


# --- feeding onnxruntime ------------------------------------------------------------

#: The pipe's buffer asked for (Linux F_SETPIPE_SZ): fewer wake-ups than 64 KiB.
_PIPE_CHUNK = 1024 * 1024
_F_SETPIPE_SZ = 1031


def create_session(model: ReceivedModel, create: Callable[[str | bytes], T]) -> T:
    """``create(source)`` with the model's path, or its bytes when it is held in
    memory. The path avoids the copy onnxruntime's Python API makes of bytes.

    This is the path of hardware mode (and of systems without named pipes):
    the file, onnxruntime's parsed model and its tensors are alive at the peak,
    about three times the model. Simulation mode loads through
    :class:`StreamingLoad` instead; hardware mode never feeds onnxruntime a
    pipe, because a library OS may carry pipe data through the host, and model
    bytes must stay in the enclave.
    """
    if model.path is None:
        return create(model.onnx_source)
    return create(str(model.path))


#: A model field (``graph``) said to be 2 GiB long. It ends what onnxruntime
#: was fed of a refused upload when those bytes end between two of the model's
#: fields, so that they can never parse as a whole model.
_UNFINISHED_FIELD = b"\x3a\xff\xff\xff\xff\x07"


class StreamedModel:
    """A model that onnxruntime loaded while it arrived: its hash, its size,
    and the session, or why there is none."""

    def __init__(
        self, sha256: bytes, size: int, session: Any = None, error: Any = None
    ) -> None:
        self.sha256, self.size = sha256, size
        self._session, self._error = session, error

    def session(self) -> Any:
        """The session; raises the refusal (:class:`ModelFormatError`) or
        onnxruntime's error when there is none."""
        if self._error is not None:
            raise self._error
        return self._session

    def discard(self) -> None:
        self._session = self._error = None


class StreamingLoad:
    """Receives a model while onnxruntime parses it, for ``create(path)``.

    onnxruntime reads a named pipe (in a private directory of the model
    directory), in a thread of its own, while the model arrives. Each piece
    received is hashed and walked by the external-data check before it is
    written to the pipe, and the piece that completes the model is held back
    until the check has passed on the whole model; only then does the pipe
    end. onnxruntime parses the whole model before it reads any other file,
    and cannot finish parsing before the pipe ends, so it never loads a model
    the check has not passed in full. On any failure the pipe ends where it
    is, cut inside a field or followed by :data:`_UNFINISHED_FIELD`, so what
    onnxruntime was fed cannot parse as a model, and whatever it returns is
    dropped. No file holds the model: the peak memory is onnxruntime's.
    """

    def __init__(self, length: int, directory: Path, create: Callable[[str], Any]):
        self.length = length
        self.received = 0
        self._hash = hashlib.sha256()
        self._check = ExternalDataCheck(length)
        # mkdtemp makes the directory 0700 under a random name.
        self._dir = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=directory))
        opened = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._lock = _hold(opened)
        finally:
            os.close(opened)
        self._fifo = self._dir / "model.onnx"
        try:
            os.mkfifo(self._fifo, 0o600)
        except OSError:
            self._dir.rmdir()
            _release(self._lock)
            raise
        self._create = create
        self._result: Any = None
        self._error: BaseException | None = None
        self._fd: int | None = None
        self._feeding = True  # False once onnxruntime stopped or the check failed
        self._fed_whole_fields = True  # the bytes fed end between model fields
        self._held = b""
        self._refusal: ModelFormatError | None = None
        self._thread = threading.Thread(
            target=self._load, name="model-stream", daemon=True
        )
        self._thread.start()

    def _load(self) -> None:
        try:
            self._result = self._create(str(self._fifo))
        except BaseException as exc:  # noqa: BLE001 (reported by finish)
            self._error = exc

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._hash.update(chunk)
        self.received += len(chunk)
        if self._refusal is not None:
            return  # refused already: the rest is only counted
        try:
            self._check.feed(chunk)
        except ModelFormatError as exc:
            self._refusal = exc
            self._stop_feeding()
            return
        if self.received >= self.length:
            self._held = chunk  # the last piece waits for the whole check
        else:
            self._feed(chunk, self._check.at_model_field_boundary)

    def finish(self) -> StreamedModel:
        """Wait for onnxruntime: the session, or why there is none."""
        try:
            if self._refusal is None:
                try:
                    self._check.finish()
                except ModelFormatError as exc:
                    self._refusal = exc
            if self._refusal is not None:
                self._stop_feeding()
                self._thread.join()
                return StreamedModel(self._digest(), self.received, error=self._refusal)
            self._feed(self._held, True)
            self._held = b""
            self._close()  # the end of the pipe: onnxruntime may now finish
            self._thread.join()
            if self._error is not None:
                return StreamedModel(self._digest(), self.received, error=self._error)
            return StreamedModel(self._digest(), self.received, self._result)
        finally:
            self._result = self._error = None
            self._cleanup()

    def abort(self) -> None:
        self._stop_feeding()
        self._thread.join()
        self._result = self._error = None
        self._cleanup()

    def _digest(self) -> bytes:
        return self._hash.digest()

    def _open(self) -> int | None:
        """The pipe's writing end, once onnxruntime has opened its end;
        ``None`` when onnxruntime ended without opening it."""
        while self._fd is None:
            try:
                self._fd = os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO or not self._thread.is_alive():
                    return None
                time.sleep(0.001)  # onnxruntime has not opened it yet
                continue
            os.set_blocking(self._fd, True)
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._fd, _F_SETPIPE_SZ, _PIPE_CHUNK)
        return self._fd

    def _feed(self, chunk: bytes, whole_fields: bool) -> None:
        if not self._feeding:
            return
        fd = self._open()
        if fd is None:
            self._feeding = False
            return
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:  # onnxruntime stopped reading: finish reports why
            self._feeding = False
            return
        self._fed_whole_fields = whole_fields

    def _stop_feeding(self) -> None:
        """End the pipe so that what onnxruntime got is not a model."""
        if self._feeding and self._fed_whole_fields:
            self._feed(_UNFINISHED_FIELD, False)
        self._feeding = False
        self._close()

    def _close(self) -> None:
        if self._fd is None:
            # onnxruntime may be waiting to open the pipe: let it see its end.
            if self._thread.is_alive():
                self._open()
            if self._fd is None:
                return
        os.close(self._fd)
        self._fd = None

    def _cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fifo.unlink()
        with contextlib.suppress(OSError):
            self._dir.rmdir()
        _release(self._lock)
        self._lock = None


# --- the external-data check -----------------------------------------------------


def check_no_external_data(model: ReceivedModel) -> None:
    """Refuse models whose tensors name external files (a model may not read
    the server's files); raises :class:`ModelFormatError`."""
    check = ExternalDataCheck(model.size)
    if model.path is None:
        assert model.data is not None
        check.feed(memoryview(model.data))
        check.finish()
        return
    with open(model.path, "rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        view = memoryview(mapped)
        try:
            check.feed(view)
            check.finish()
        finally:
            view.release()
    finally:
        # A refusal's traceback may still hold slices of the mapping; it is
        # then unmapped when they are collected.
        with contextlib.suppress(BufferError):
            mapped.close()


#: What each message's fields hold, by field number (onnx.proto).
_MODEL, _GRAPH, _FUNCTION, _NODE, _ATTRIBUTE, _SPARSE, _TENSOR = range(7)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {_MODEL_GRAPH: _GRAPH, _MODEL_FUNCTIONS: _FUNCTION},
    _FUNCTION: {_FUNCTION_NODE: _NODE},
    _GRAPH: {
        _GRAPH_INITIALIZER: _TENSOR,
        _GRAPH_SPARSE: _SPARSE,
        _GRAPH_NODE: _NODE,
    },
    _NODE: {_NODE_ATTRIBUTE: _ATTRIBUTE},
    _ATTRIBUTE: {
        _ATTR_T: _TENSOR,
        _ATTR_TENSORS: _TENSOR,
        _ATTR_SPARSE: _SPARSE,
        _ATTR_SPARSES: _SPARSE,
        _ATTR_G: _GRAPH,
        _ATTR_GRAPHS: _GRAPH,
    },
    _SPARSE: {_SPARSE_VALUES: _TENSOR, _SPARSE_INDICES: _TENSOR},
    _TENSOR: {},
}
#: The longest tensor name quoted in a refusal.
_NAME_LIMIT = 200


class _Frame:
    """One message being walked: its kind, where it ends, its graph depth."""

    __slots__ = ("kind", "end", "depth", "name", "external")

    def __init__(self, kind: int, end: int, depth: int) -> None:
        self.kind, self.end, self.depth = kind, end, depth
        self.name = b""
        self.external = False


class ExternalDataCheck:
    """The external-data check, fed a model's bytes in order, in any pieces.

    It walks the protobuf's headers as the bytes come (descending into the
    messages that can hold tensors, skipping everything else, weights
    included) and raises :class:`ModelFormatError` as soon as the bytes are not
    protobuf, or when a tensor that names external data ends. Only
    :meth:`finish` says the whole model passed.
    """

    def __init__(self, length: int) -> None:
        self._pos = 0  # offset of the next byte to walk
        self._skip_to = 0  # the walk is inside a skipped field until here
        self._pending = b""  # a field header cut by the end of a piece
        self._stack = [_Frame(_MODEL, length, 0)]
        self._name: bytearray | None = None  # a tensor name being read
        self._failed = False

    @property
    def at_model_field_boundary(self) -> bool:
        """True when the bytes walked so far end between two of the model's
        own fields: a protobuf parser given just them would see a whole model."""
        return (
            len(self._stack) == 1
            and self._pos >= self._skip_to
            and not self._pending
            and not self._failed
        )

    def feed(self, piece: bytes | bytearray | memoryview) -> None:
        """Walk the next bytes of the model."""
        if self._failed:
            raise invalid("the model was already refused")
        try:
            self._walk(piece)
        except BaseException:
            self._failed = True
            raise

    def finish(self) -> None:
        """Raise unless the bytes walked are one whole model without external data."""
        if self._failed or self._pending or self._stack or self._pos < self._skip_to:
            self._failed = True
            raise _not_onnx()

    def _walk(self, piece: bytes | bytearray | memoryview) -> None:
        data = memoryview(piece)
        if self._pending:
            data = memoryview(self._pending + data.tobytes())
            self._pending = b""
        base = self._pos  # the offset of data[0]
        stop = base + len(data)
        pos = self._pos
        stack = self._stack
        while True:
            if pos < self._skip_to:
                upto = min(self._skip_to, stop)
                if self._name is not None and len(self._name) < _NAME_LIMIT:
                    room = _NAME_LIMIT - len(self._name)
                    self._name += data[pos - base : min(upto, pos + room) - base]
                pos = upto
                if pos < self._skip_to:
                    break
            if self._name is not None:  # the name ended (it may be empty)
                stack[-1].name = bytes(self._name)
                self._name = None
            while stack and pos == stack[-1].end:
                _close(stack.pop())
            if pos >= stop:
                break
            if not stack:
                raise _not_onnx()  # bytes past the declared length
            frame = stack[-1]
            limit = min(frame.end, stop) - base
            header = _header(data, pos - base, limit)
            if header is None:
                if frame.end <= stop:
                    raise _not_onnx()  # a field cut by its message's end
                self._pending = data[pos - base :].tobytes()
                break
            number, wire, value, after = header
            if number == 0:
                raise _not_onnx()  # some parsers take it for the message's end
            after += base
            if wire == 2:
                end = after + value
                if end > frame.end:
                    raise _not_onnx()
                kind = _CHILDREN[frame.kind].get(number)
                if kind is None:
                    if frame.kind == _TENSOR:
                        if number == _TENSOR_EXTERNAL_DATA:
                            frame.external = True
                        elif number == _TENSOR_NAME:
                            self._name = bytearray()
                    self._skip_to = end
                else:
                    depth = frame.depth
                    if kind == _GRAPH and frame.kind == _ATTRIBUTE:
                        depth += 1
                        if depth > MAX_GRAPH_DEPTH:
                            raise invalid(
                                "the model nests subgraphs deeper than "
                                f"{MAX_GRAPH_DEPTH}"
                            )
                    stack.append(_Frame(kind, end, depth))
            elif wire == 0:
                if (
                    frame.kind == _TENSOR
                    and number == _TENSOR_DATA_LOCATION
                    # protobuf keeps an enum's low 32 bits: 2**32 + 1 is 1.
                    and value & 0xFFFFFFFF == _EXTERNAL
                ):
                    frame.external = True
            else:  # fixed 64 or 32 bits
                end = after + (8 if wire == 1 else 4)
                if end > frame.end:
                    raise _not_onnx()
                self._skip_to = end
            pos = after
        self._pos = pos


def _close(frame: _Frame) -> None:
    if frame.external:
        name = frame.name.decode("utf-8", "replace")
        raise invalid(
            f"the model's tensor {name!r} refers to external data; "
            "models must be self-contained"
        )


def _header(data: memoryview, pos: int, limit: int) -> tuple[int, int, int, int] | None:
    """A field's number, wire type, value (varint) or size (length-delimited)
    and the offset after the header; ``None`` when ``limit`` comes first.
    Raises :class:`ModelFormatError` for wire types other than 0, 1, 2, 5."""
    key = _varint(data, pos, limit)
    if key is None:
        return None
    tag, pos = key
    wire = tag & 7
    if wire in (1, 5):
        return tag >> 3, wire, 0, pos
    if wire not in (0, 2):
        raise _not_onnx()
    value = _varint(data, pos, limit)
    if value is None:
        return None
    return tag >> 3, wire, value[0], value[1]


def _varint(data: memoryview, pos: int, limit: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    while True:
        if shift > 63:
            raise _not_onnx()
        if pos >= limit:
            return None
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _not_onnx() -> ModelFormatError:
    return invalid("the bytes are not an ONNX model (protobuf parse failed)")
