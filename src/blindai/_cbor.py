"""A vectorised CBOR codec for the one shape the protocol uses: a flat array of
numbers.

The 0.3 protocol carries inputs and outputs as the CBOR encoding of a flat list
of numbers, and clients hash exactly those bytes. ``cbor2`` is correct but
general: it builds one Python object per element, and it accepts far more than
the protocol allows (maps, strings, tags such as bignums, nested arrays,
trailing bytes after the list). This module works on numpy arrays instead:

* :func:`encode_floats` and :func:`encode_ints` write the bytes that
  ``cbor2.dumps`` writes for the same Python list (8-byte doubles with the
  ``0xfb`` head, NaN and the infinities as the 2-byte halves ``f97e00``,
  ``f97c00``, ``f9fc00``; integers in their shortest form);
* :func:`encode_float_list` writes the same bytes for a Python list of exact
  floats, read by the C pickler instead of one object at a time;
* :func:`decode_numbers` reads one definite-length array of integers and
  half, single or double floats, and refuses everything else with a
  :class:`CborError` naming what was found and at which element;
  :func:`uniform_floats` reads the common case, floats of one width, in place.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Head bytes of the IEEE 754 halves that ``cbor2`` writes for special floats.
_NAN = (0xF9, 0x7E, 0x00)
_POS_INF = (0xF9, 0x7C, 0x00)
_NEG_INF = (0xF9, 0xFC, 0x00)

_MAJOR_UINT, _MAJOR_NINT, _MAJOR_ARRAY, _MAJOR_SIMPLE = 0, 1, 4, 7


class CborError(ValueError):
    """The bytes are not one CBOR array of numbers as the protocol allows."""


# --- encoding ------------------------------------------------------------------


def _head(major: int, value: int) -> bytes:
    """A CBOR head with ``value`` in its shortest form."""
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise ValueError(f"{value} does not fit a CBOR head")


def encode_floats(values: np.ndarray) -> bytes:
    """The CBOR array of ``values`` (any float dtype), each as ``cbor2`` writes a
    Python float: an 8-byte double, or a 2-byte half for NaN and ±infinity."""
    n = values.size
    out, table = _double_table(n)
    # The cast to big-endian doubles writes straight into each row's last eight
    # bytes (a strided view), without an intermediate array.
    doubles = table[:, 1:].view(">f8").reshape(n)
    # NaNs of any payload become the one half NaN below: no warning needed.
    with np.errstate(invalid="ignore"):
        doubles[...] = values.reshape(n)
    table[:, 0] = 0xFB
    return _with_halves(out, table, doubles)


def _double_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of an array of ``n`` doubles, its head written, and the rows of
    its elements in it (nine bytes each), to be filled in."""
    head = _head(_MAJOR_ARRAY, n)
    out = np.empty(len(head) + 9 * n, dtype=np.uint8)
    out[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    return out, out[len(head) :].reshape(n, 9)


def _with_halves(out: np.ndarray, table: np.ndarray, doubles: np.ndarray) -> bytes:
    """``out`` (an array head, then ``table``: rows of the head 0xfb and the
    big-endian ``doubles``), with NaN and the infinities rewritten as halves."""
    finite = np.isfinite(doubles)
    if finite.all():
        return out.tobytes()
    for special, mask in (
        (_NAN, np.isnan(doubles)),
        (_POS_INF, doubles == np.inf),
        (_NEG_INF, doubles == -np.inf),
    ):
        table[mask, :3] = special
    widths = np.where(finite, 9, 3)
    return out[: out.size - table.size].tobytes() + _select(table, widths)


#: How ``pickle`` (protocol 4) writes a list: PROTO 4, then frames (FRAME, an
#: 8-byte little-endian length, that many bytes) whose contents, joined, are
#: EMPTY_LIST, MEMOIZE, the items in batches of up to 1,000 (each MARK, the
#: items, APPENDS) and STOP. An exact ``float`` item is BINFLOAT: the opcode
#: ``G`` and the big-endian double, which is the CBOR double with another head.
_PICKLE_PROTOCOL = 4
_PICKLE_PROTO = b"\x80\x04"
_FRAME = 0x95
_FRAME_HEAD = 9
_PICKLE_LIST = b"]\x94"
_PICKLE_BATCH = 1000
_MARK, _APPENDS, _BINFLOAT, _STOP = ord("("), ord("e"), ord("G"), ord(".")
#: Batches moved per step when the items are packed together.
_BATCHES_PER_MOVE = 64


def encode_float_list(values: list[Any]) -> bytes | None:
    """``cbor2.dumps(values)`` when every element of ``values`` (at least two)
    is exactly a Python ``float``; ``None`` when one is anything else.

    The C pickler reads the list in one pass, in about a third of the time
    ``cbor2`` takes, and writes each exact float as BINFLOAT, its value's eight
    big-endian bytes; every other type (``int``, ``bool``, float subclasses,
    anything else) gets other opcodes. The stream is accepted only when every
    byte the layout above fixes is as expected and its length is that of
    ``len(values)`` BINFLOATs, so that the items are exactly those floats.
    The items are then packed in place under CBOR heads. Nothing is unpickled.

    Written to a file, the pickler hands over each 64 KiB frame as it is
    done, so the stream is built once, in the ``BytesIO`` that is returned
    (a fresh buffer costs here about as much as the pickling).
    """
    n = len(values)
    if n < 2:
        return None
    file = io.BytesIO()
    try:
        pickle.Pickler(file, protocol=_PICKLE_PROTOCOL).dump(values)
    except Exception:  # noqa: BLE001 (not a number: the caller refuses it)
        return None
    full, rest = divmod(n, _PICKLE_BATCH)
    head = _head(_MAJOR_ARRAY, n)
    with file.getbuffer() as view:
        buf = np.frombuffer(view, dtype=np.uint8)
        size = _unframe(buf)
        body = len(_PICKLE_LIST) + 9 * n + 2 * (full + (rest > 0)) + 1
        if size != body or not _is_float_list(buf[:size], full, rest):
            return None
        _pack_items(buf, full, rest, len(head))
        buf[: len(head)] = np.frombuffer(head, dtype=np.uint8)
        table = buf[len(head) : len(head) + 9 * n].reshape(n, 9)
        if not (table[:, 0] == _BINFLOAT).all():
            return None
        table[:, 0] = 0xFB
        doubles = table[:, 1:].view(">f8").reshape(n)
        if not np.isfinite(doubles).all():
            return encode_floats(doubles)
        del buf, table, doubles
    # BytesIO hands over its own buffer when nothing else refers to it.
    file.truncate(len(head) + 9 * n)
    return file.getvalue()


def _unframe(buf: np.ndarray) -> int:
    """Move the contents of the frames of the pickle in ``buf`` together at its
    start; their length, or -1 when ``buf`` is not PROTO 4 and frames."""
    if bytes(buf[: len(_PICKLE_PROTO)]) != _PICKLE_PROTO:
        return -1
    source, target, end = len(_PICKLE_PROTO), 0, buf.size
    while source < end:
        if buf[source] != _FRAME or end - source < _FRAME_HEAD:
            # The pickler leaves a last frame of under four bytes unframed.
            if end - source > 3:
                return -1
            length, start = end - source, source
        else:
            length = int.from_bytes(buf[source + 1 : source + _FRAME_HEAD], "little")
            start = source + _FRAME_HEAD
            if length > end - start:
                return -1
        # Overlapping ranges: numpy copies the source first.
        buf[target : target + length] = buf[start : start + length]
        source, target = start + length, target + length
    return target


def _is_float_list(body: np.ndarray, full: int, rest: int) -> bool:
    """Whether the unframed pickle ``body`` has the list layout above around
    its items (their opcodes are checked once they are packed)."""
    if bytes(body[: len(_PICKLE_LIST)]) != _PICKLE_LIST or body[-1] != _STOP:
        return False
    stride = 9 * _PICKLE_BATCH + 2
    marks = len(_PICKLE_LIST) + stride * np.arange(full + (rest > 0))
    ends = marks + 1 + 9 * _PICKLE_BATCH
    if rest:
        ends[-1] = marks[-1] + 1 + 9 * rest
    return bool((body[marks] == _MARK).all() and (body[ends] == _APPENDS).all())


def _pack_items(buf: np.ndarray, full: int, rest: int, offset: int) -> None:
    """Move the items of an unframed pickled list of floats together, the
    first at ``offset``, dropping MARK and APPENDS."""
    stride = 9 * _PICKLE_BATCH + 2
    source, target = len(_PICKLE_LIST), offset
    for first in range(0, full, _BATCHES_PER_MOVE):
        count = min(_BATCHES_PER_MOVE, full - first)
        batches = buf[source : source + count * stride].reshape(count, stride)
        items = 9 * _PICKLE_BATCH * count
        # Overlapping ranges: numpy copies the source first.
        buf[target : target + items].reshape(count, -1)[...] = batches[:, 1:-1]
        source, target = source + count * stride, target + items
    if rest:
        buf[target : target + 9 * rest] = buf[source + 1 : source + 1 + 9 * rest]


def _record(value_type: str) -> np.dtype:
    """One element as it lies in the bytes: a head byte, then a big-endian value."""
    return np.dtype([("head", np.uint8), ("value", value_type)])


def encode_ints(values: np.ndarray) -> bytes:
    """The CBOR array of ``values`` (any integer dtype), each in its shortest
    form as ``cbor2`` writes a Python int of 64 bits or fewer."""
    ints = np.ascontiguousarray(values).ravel()
    n = ints.size
    if ints.dtype.kind == "u":
        magnitude = ints.astype(np.uint64, copy=False)
        major = None
    else:
        wide = ints.astype(np.int64, copy=False)
        # A negative n is written as major type 1 with -1 - n, which is ~n:
        # n ^ (n >> 63) is ~n for negatives and n otherwise.
        magnitude = (wide ^ (wide >> 63)).view(np.uint64)
        major = (wide < 0).view(np.uint8) << 5
    # Size class 0 (in the head), 1, 2, 3 or 4 (1, 2, 4 or 8 bytes after it).
    size_class = (magnitude >= _INT_BOUNDS[0]).view(np.uint8)
    for bound in _INT_BOUNDS[1:]:
        size_class += magnitude >= bound
    heads = np.where(size_class, size_class + 23, magnitude.astype(np.uint8))
    if major is not None:
        heads |= major
    # Rows of the head and the 8-byte big-endian magnitude; an element keeps
    # the head and the last 1, 2, 4 or 8 bytes of its row.
    table = np.empty((n, 9), dtype=np.uint8)
    table[:, 0] = heads
    table[:, 1:].view(">u8").reshape(n)[...] = magnitude
    head = _head(_MAJOR_ARRAY, n)
    first = int(size_class[0]) if n else 0
    if not (size_class != first).any():
        # One size for all (the common case): a column slice, no mask.
        size = _INT_SIZES[first]
        if size == 8:
            return head + table.tobytes()
        return head + np.concatenate((table[:, :1], table[:, 9 - size :]), 1).tobytes()
    keep = _KEEP.take(size_class, axis=0).ravel()
    return head + np.compress(keep, table.ravel()).tobytes()


#: Magnitudes from which an integer takes 1, 2, 4 and 8 bytes after its head.
_INT_BOUNDS = tuple(np.uint64(bound) for bound in (24, 1 << 8, 1 << 16, 1 << 32))
#: Bytes after the head, by size class.
_INT_SIZES = (0, 1, 2, 4, 8)
#: The bytes of a nine-byte row that an element of each size class keeps.
_KEEP = (np.arange(9) == 0) | (np.arange(9) >= 9 - np.array(_INT_SIZES)[:, None])


def _select(table: np.ndarray, widths: np.ndarray) -> bytes:
    """Concatenate the first ``widths[i]`` bytes of each row ``i`` of ``table``."""
    keep = np.arange(table.shape[1]) < widths[:, None]
    return table[keep].tobytes()


# --- decoding ------------------------------------------------------------------


#: Bytes an element takes, by its head byte; 0 for heads the protocol refuses.
_WIDTHS = np.zeros(256, dtype=np.int64)
for _major in (_MAJOR_UINT, _MAJOR_NINT):
    _WIDTHS[_major << 5 : (_major << 5) + 24] = 1
    for _extra, _size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        _WIDTHS[_major << 5 | _extra] = 1 + _size
_WIDTHS[0xF9], _WIDTHS[0xFA], _WIDTHS[0xFB] = 3, 5, 9
_WIDTH_LIST = _WIDTHS.tolist()

_FLOAT_TYPES = {0xF9: ">f2", 0xFA: ">f4", 0xFB: ">f8"}


@dataclass(frozen=True)
class Numbers:
    """A decoded array: which elements are floats, their values, and the
    integers as a magnitude and a sign (CBOR integers span -2**64 .. 2**64-1,
    more than any one numpy dtype)."""

    is_float: np.ndarray
    floats: np.ndarray
    magnitude: np.ndarray
    negative: np.ndarray

    @property
    def size(self) -> int:
        return int(self.is_float.size)


def decode_numbers(data: bytes | bytearray) -> Numbers:
    """Decode one definite-length CBOR array of integers and floats.

    Raises :class:`CborError` for anything else: another top-level item, an
    indefinite length, a count larger than the bytes can hold, an element that
    is not a number (strings, maps, tags, nested arrays, booleans, null), a
    truncated element, or bytes after the array.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    count, start = _array_header(data)
    if count > len(data) - start:
        raise CborError(
            f"the array header claims {count} elements but only "
            f"{len(data) - start} bytes follow it"
        )
    uniform = _uniform(data, start, count)
    if uniform is not None:
        return uniform
    return _values(buf, _scan_starts(data, start, count))


def uniform_floats(data: bytes | bytearray) -> np.ndarray | None:
    """The values of an array whose elements are all floats of one width (the
    usual input: ``cbor2`` writes every finite Python float as a double), as a
    read-only big-endian view of ``data``; ``None`` for any other bytes, which
    :func:`decode_numbers` reads or refuses.

    Skips the masks and integer arrays of :class:`Numbers`: the caller casts
    the view once, to the type it needs.
    """
    try:
        count, start = _array_header(data)
    except CborError:
        return None
    if count == 0 or start >= len(data):
        return None
    head = data[start]
    value_type = _FLOAT_TYPES.get(head)
    if value_type is None or len(data) - start != _WIDTH_LIST[head] * count:
        return None
    records = np.frombuffer(data, dtype=_record(value_type), offset=start)
    if not (records["head"] == head).all():
        return None
    return records["value"]


def _array_header(data: bytes | bytearray) -> tuple[int, int]:
    if not data:
        raise CborError("the input is empty")
    major, extra = data[0] >> 5, data[0] & 31
    if major != _MAJOR_ARRAY:
        raise CborError(f"the input is {_describe(data[0])}, not an array")
    if extra == 31:
        raise CborError(
            "the array has an indefinite length; a definite length is required"
        )
    if extra < 24:
        return extra, 1
    if extra > 27:
        raise CborError(f"the array head 0x{data[0]:02x} is malformed")
    size = 1 << (extra - 24)
    if len(data) < 1 + size:
        raise CborError("the input ends inside the array header")
    return int.from_bytes(data[1 : 1 + size], "big"), 1 + size


#: The big-endian type after a head byte, by the head's low five bits.
_PAYLOAD_TYPES = {24: ">u1", 25: ">u2", 26: ">u4", 27: ">u8"}


def _uniform(data: bytes | bytearray, start: int, count: int) -> Numbers | None:
    """The elements when every one has the first one's head byte (the common
    case: all doubles, all floats of one width, or integers of one size), read
    in place as records; ``None`` when they do not."""
    if count == 0:
        return _numbers(np.empty(0, dtype=np.uint8)) if len(data) == start else None
    head = data[start]
    width = _WIDTH_LIST[head]
    if width == 0 or len(data) - start != width * count:
        return None
    if width == 1:
        heads = np.frombuffer(data, dtype=np.uint8, offset=start)
        small = heads & 31
        if not ((heads >> 5 == head >> 5) & (small < 24)).all():
            return None
        return _numbers(heads, magnitude=small.astype(np.uint64))
    value_type = _FLOAT_TYPES.get(head) or _PAYLOAD_TYPES[head & 31]
    records = np.frombuffer(data, dtype=_record(value_type), offset=start)
    if not (records["head"] == head).all():
        return None
    heads = records["head"]
    if head in _FLOAT_TYPES:
        return _numbers(heads, floats=records["value"].astype(np.float64))
    return _numbers(heads, magnitude=records["value"].astype(np.uint64))


def _numbers(
    heads: np.ndarray,
    *,
    floats: np.ndarray | None = None,
    magnitude: np.ndarray | None = None,
) -> Numbers:
    n = heads.size
    if floats is None:
        floats = np.zeros(n, dtype=np.float64)
    if magnitude is None:
        magnitude = np.zeros(n, dtype=np.uint64)
    is_float = heads >= 0xF9
    negative = ~is_float & (heads >> 5 == _MAJOR_NINT)
    return Numbers(is_float, floats, magnitude, negative)


def _scan_starts(data: bytes | bytearray, start: int, count: int) -> np.ndarray:
    """Element offsets found one element at a time (mixed widths).

    Each offset depends on every width before it, so this walk is sequential;
    it does only a table look-up per element, values are read vectorised later.
    """
    widths = _WIDTH_LIST
    starts = np.empty(count, dtype=np.int64)
    pos, end = start, len(data)
    for index in range(count):
        if pos >= end:
            raise CborError(f"the input ends before element {index} of {count}")
        width = widths[data[pos]]
        if not width:
            raise CborError(f"element {index} is {_refused(data[pos])}")
        starts[index] = pos
        pos += width
    if pos > end:
        raise CborError(f"the input ends inside element {count - 1}")
    if pos < end:
        raise CborError(f"{end - pos} bytes follow the array's {count} elements")
    return starts


def _values(buf: np.ndarray, starts: np.ndarray) -> Numbers:
    n = starts.size
    heads = buf[starts]
    is_float = heads >= 0xF9
    floats = np.zeros(n, dtype=np.float64)
    for head, dtype in _FLOAT_TYPES.items():
        rows = np.flatnonzero(heads == head)
        if rows.size:
            size = np.dtype(dtype).itemsize
            floats[rows] = _payload(buf, starts[rows], size).view(dtype).ravel()
    magnitude = np.zeros(n, dtype=np.uint64)
    small = heads & 31
    ints = ~is_float
    direct = ints & (small < 24)
    magnitude[direct] = small[direct]
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        rows = np.flatnonzero(ints & (small == extra))
        if rows.size:
            raw = _payload(buf, starts[rows], size)
            padded = np.zeros((rows.size, 8), dtype=np.uint8)
            padded[:, 8 - size :] = raw
            magnitude[rows] = padded.view(">u8").ravel()
    negative = ints & (heads >> 5 == _MAJOR_NINT)
    return Numbers(is_float, floats, magnitude, negative)


def _payload(buf: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` bytes after each head, as a contiguous (rows, size) array."""
    index = starts[:, None] + np.arange(1, 1 + size)
    return np.ascontiguousarray(buf[index])


def _refused(head: int) -> str:
    """Why an element that starts with ``head`` is refused, in words."""
    if head in (0xC2, 0xC3):
        # Tags 2 and 3 wrap the bytes of a bignum: what cbor2 writes for a
        # Python int outside [-2**64, 2**64).
        return "an integer beyond 64 bits, which no model input type holds"
    return f"{_describe(head)}, not a number"


def _describe(head: int) -> str:
    """What a head byte starts, in words, for error messages."""
    major, extra = head >> 5, head & 31
    if major == _MAJOR_SIMPLE:
        simple = {
            20: "a boolean (false)",
            21: "a boolean (true)",
            22: "null",
            23: "undefined",
            31: "a break code",
        }
        return simple.get(extra, f"the simple value 0x{head:02x}")
    if extra in (28, 29, 30):
        return f"a malformed head 0x{head:02x}"
    return {
        0: "an integer",
        1: "a negative integer",
        2: "a byte string",
        3: "a text string",
        4: "a nested array",
        5: "a map",
        6: "a tag",
    }[major]


__all__ = [
    "CborError",
    "Numbers",
    "decode_numbers",
    "encode_float_list",
    "encode_floats",
    "encode_ints",
    "uniform_floats",
]
