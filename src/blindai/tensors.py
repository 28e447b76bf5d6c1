"""Element types, flattening and the CBOR encoding of inputs and outputs.

The 0.3 protocol carries tensors as the CBOR encoding of a flat list of numbers, in
row-major order of the declared shape. Clients hash exactly those bytes
(``input_hash``), so every encoder here must produce the bytes that
``cbor2.dumps`` produces for the same Python list: floats as 8-byte doubles (NaN
and the infinities as 2-byte halves), integers in their shortest form.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import cbor2
import numpy as np

from blindai import _cbor
from blindai.pb.securedexchange_pb2 import DatumTypeEnum


class ModelDatumType(IntEnum):
    """Element type of a model's input or output (``DatumTypeEnum`` on the wire)."""

    F32 = DatumTypeEnum.F32
    F64 = DatumTypeEnum.F64
    I32 = DatumTypeEnum.I32
    I64 = DatumTypeEnum.I64
    U32 = DatumTypeEnum.U32
    U64 = DatumTypeEnum.U64

    @property
    def numpy_dtype(self) -> np.dtype:
        """The little-endian numpy dtype of this element type."""
        return np.dtype(_NUMPY_DTYPES[self])

    @property
    def is_float(self) -> bool:
        return self in (ModelDatumType.F32, ModelDatumType.F64)

    @classmethod
    def of(cls, value: Any) -> ModelDatumType:
        """An element type given as a member, its number or its name ("F32")."""
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                names = ", ".join(cls.__members__)
                raise ValueError(f"unknown element type {value!r} ({names})") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        raise TypeError(f"an element type is a ModelDatumType, not {value!r}")

    @classmethod
    def from_numpy(cls, dtype: Any) -> ModelDatumType:
        """The element type of a numpy dtype; raises ``ValueError`` for others."""
        dt = np.dtype(dtype).newbyteorder("<")
        for member, name in _NUMPY_DTYPES.items():
            if np.dtype(name) == dt:
                return member
        raise ValueError(f"numpy dtype {np.dtype(dtype)} has no protocol element type")

    @classmethod
    def from_onnx(cls, type_string: str) -> ModelDatumType:
        """The element type of an onnxruntime type string such as ``tensor(float)``."""
        try:
            return _ONNX_TYPES[type_string]
        except KeyError:
            raise ValueError(
                f"ONNX type {type_string} has no protocol element type "
                f"(supported: {', '.join(_ONNX_TYPES)})"
            ) from None


_NUMPY_DTYPES = {
    ModelDatumType.F32: "<f4",
    ModelDatumType.F64: "<f8",
    ModelDatumType.I32: "<i4",
    ModelDatumType.I64: "<i8",
    ModelDatumType.U32: "<u4",
    ModelDatumType.U64: "<u8",
}

_ONNX_TYPES = {
    "tensor(float)": ModelDatumType.F32,
    "tensor(double)": ModelDatumType.F64,
    "tensor(int32)": ModelDatumType.I32,
    "tensor(int64)": ModelDatumType.I64,
    "tensor(uint32)": ModelDatumType.U32,
    "tensor(uint64)": ModelDatumType.U64,
}


def flatten(data: Any) -> list[int | float]:
    """Flatten a number, nested sequences or a numpy array, in row-major order.

    The result is a list of Python ``int`` and ``float``, which is what the 0.3
    client put on the wire. Raises ``ValueError`` for anything that is not a
    number (strings, booleans, ragged nesting, complex numbers).
    """
    if isinstance(data, np.ndarray):
        return _flatten_array(data)
    # A flat list of plain numbers (the 0.3 input) is already the result.
    if isinstance(data, list) and _plain_numbers(data):
        return data
    out: list[int | float] = []
    _flatten_into(data, out)
    return out


def _plain_numbers(values: list[Any]) -> bool:
    """Whether every element of ``values`` is exactly an ``int`` or a ``float``,
    in C-level passes over the types instead of a Python call per element."""
    kinds = set(map(type, values[:_SAMPLE]))
    if len(kinds) == 1 and kinds <= {int, float}:
        # Counting one type is faster than collecting the set of all types
        # (691,200 floats: 8 ms against 12 ms).
        if operator.countOf(map(type, values), kinds.pop()) == len(values):
            return True
    return set(map(type, values)) <= {int, float}


#: Elements whose types decide how the rest of a list is checked.
_SAMPLE = 64


def _flatten_array(array: np.ndarray) -> list[int | float]:
    if array.dtype.kind not in "iuf":
        raise ValueError(f"arrays of {array.dtype} cannot be sent; use numbers")
    if np.ma.is_masked(array):
        raise ValueError("masked values cannot be sent; fill them first (.filled())")
    return np.asarray(array).ravel(order="C").tolist()


#: Deeper nesting is refused (a model input has at most a handful of axes).
MAX_NESTING = 64


def _flatten_into(data: Any, out: list[int | float]) -> None:
    """Append the numbers of ``data`` to ``out``, checking that the nesting
    has a shape: every list at one depth as long as the others, numbers at
    one depth only."""
    shape: list[int] = []  # the length of the lists seen at each depth
    leaf: list[int] = []  # the depth of the numbers, once one is seen

    def ragged() -> ValueError:
        return ValueError("ragged nesting: the lists do not form a tensor shape")

    def visit(item: Any, depth: int) -> None:
        if isinstance(item, np.ndarray) and item.ndim > 0:
            dims = list(item.shape)
            if shape[depth : depth + len(dims)] != dims[: len(shape) - depth]:
                raise ragged()
            shape.extend(dims[len(shape) - depth :])
            _at_leaf(depth + len(dims))
            out.extend(_flatten_array(item))
        elif isinstance(item, Sequence) and not isinstance(
            item, str | bytes | bytearray
        ):
            if depth >= MAX_NESTING:
                raise ValueError(
                    f"the input is nested deeper than {MAX_NESTING} levels"
                )
            if leaf and depth >= leaf[0]:
                raise ragged()
            if depth == len(shape):
                shape.append(len(item))
            elif shape[depth] != len(item):
                raise ragged()
            if item and isinstance(item, list) and _plain_numbers(item):
                _at_leaf(depth + 1)  # a row of numbers: no call per element
                out.extend(item)
                return
            for element in item:
                visit(element, depth + 1)
        else:
            _at_leaf(depth)
            out.append(_number(item))

    def _at_leaf(depth: int) -> None:
        if not leaf:
            if depth < len(shape):
                raise ragged()  # a list was seen this deep or deeper
            leaf.append(depth)
        elif leaf[0] != depth:
            raise ragged()

    visit(data, 0)


def _number(item: Any) -> int | float:
    """A Python number from one element; ``ValueError`` for anything else."""
    if isinstance(item, bool | np.bool_):
        raise ValueError("booleans are not numbers here; send 0 or 1")
    if isinstance(item, int | float):
        return item
    if isinstance(item, np.integer | np.floating) or (
        isinstance(item, np.ndarray) and item.dtype.kind in "iuf"
    ):
        return item.item()
    raise ValueError(f"cannot send a value of type {type(item).__name__}")


def encode_list(values: Sequence[int | float]) -> bytes:
    """CBOR-encode a flat list exactly as ``cbor2.dumps`` does (0.3 encoding).

    A long list of exact floats takes :func:`blindai._cbor.encode_float_list`
    (691,200 floats: 9-10 ms, against 20 ms in ``cbor2``'s C encoder, and
    43 ms through ``np.array`` and the vectorised encoder before it was
    rewritten); other lists, and short ones, go to ``cbor2``. Arrays take
    :func:`encode_array`.
    """
    values = values if isinstance(values, list) else list(values)
    if len(values) > _SMALL_LIST and type(values[0]) is float:
        encoded = _cbor.encode_float_list(values)
        if encoded is not None:
            return encoded
    if len(values) > _SMALL_LIST and _negative_ints(values):
        return _encode_int_list(values)
    return cbor2.dumps(values)


def _negative_ints(values: list[Any]) -> bool:
    """Whether ``values`` looks like a list of integers with negative ones,
    which ``cbor2`` encodes slowly (691,200 below zero: 130 ms; 17-28 ms for
    as many non-negative ones), judged by its first elements."""
    sample = values[:_SAMPLE]
    return all(type(v) is int for v in sample) and any(v < 0 for v in sample)


def _encode_int_list(values: list[Any]) -> bytes:
    """``cbor2.dumps(values)`` for a list whose first elements are ints:
    through an int64 array when every element is an exact ``int`` that fits
    (691,200 in -2**31..2**31: about 30 ms), else through ``cbor2``."""
    if operator.countOf(map(type, values), int) == len(values):
        try:
            array = np.fromiter(values, dtype=np.int64, count=len(values))
        except OverflowError:
            pass
        else:
            return _cbor.encode_ints(array)
    return cbor2.dumps(values)


def encode_input(data: Any) -> bytes:
    """``encode_list(flatten(data))``, with the type check of a long flat list
    of exact floats done by the encoding itself rather than in a pass before it
    (691,200 floats: 9-10 ms, against 18-20 ms for the two calls).

    Raises ``ValueError`` as :func:`flatten` does, and for an empty input.
    """
    if isinstance(data, np.ndarray):
        if data.size == 0:
            raise ValueError("the input is empty")
        return encode_array(data)
    if isinstance(data, list) and len(data) > _SMALL_LIST:
        if type(data[0]) is float and type(data[-1]) is float:
            # Any other element makes this return None; ints and float
            # subclasses are then checked and encoded as below.
            encoded = _cbor.encode_float_list(data)
            if encoded is not None:
                return encoded
    values = flatten(data)
    if not values:
        raise ValueError("the input is empty")
    return encode_list(values)


#: Lists of at most this many elements are encoded by ``cbor2``, which is
#: faster below about 1,000 floats (measured).
_SMALL_LIST = 2048


#: Arrays of at most this many elements are encoded by ``cbor2`` (faster below
#: about 100 floats, measured, and below about 150 integers).
_SMALL_ARRAY = 128


def encode_array(array: np.ndarray) -> bytes:
    """CBOR-encode a numpy array as the flat list of its elements (the bytes of
    ``cbor2.dumps(array.tolist())``, without building that list)."""
    if array.size <= _SMALL_ARRAY and array.dtype.kind in "iuf":
        # The vectorised encoder's fixed cost (~16 µs for integers) is most of a
        # small model's reply; cbor2 encodes 100 elements in ~5 µs.
        return cbor2.dumps(array.ravel().tolist())
    if array.dtype.kind == "f":
        return _cbor.encode_floats(array)
    if array.dtype.kind in "iu":
        return _cbor.encode_ints(array)
    raise ValueError(f"arrays of {array.dtype} cannot be sent; use numbers")


def as_tensor(array: np.ndarray, datum: ModelDatumType | None = None) -> np.ndarray:
    """The array as the tensor path ("tensor-v1") sends it: C-contiguous and
    little-endian, of ``datum`` or else of the protocol type nearest its own.

    Types the protocol lacks widen without loss: float16 to F32, 8- and 16-bit
    integers to I32. Raises ``ValueError`` for arrays that are not numbers.
    """
    if datum is None:
        datum = _tensor_datum(array.dtype)
    # ascontiguousarray makes a 0-d array 1-d: the shape is the array's own.
    return np.ascontiguousarray(array, dtype=datum.numpy_dtype).reshape(array.shape)


def _tensor_datum(dtype: np.dtype) -> ModelDatumType:
    try:
        return ModelDatumType.from_numpy(dtype)
    except ValueError:
        pass
    if dtype.kind == "f" and dtype.itemsize < 4:
        return ModelDatumType.F32
    if dtype.kind in "iu" and dtype.itemsize < 4:
        return ModelDatumType.I32
    raise ValueError(f"arrays of {dtype} cannot be sent; use numbers")


class InputDecodeError(ValueError):
    """The input bytes are not the CBOR encoding of one flat list of numbers."""


def decode_input(data: bytes | bytearray, datum: ModelDatumType) -> np.ndarray:
    """Decode CBOR input bytes into a one-dimensional array of ``datum``.

    Raises :class:`InputDecodeError` when the bytes are not exactly one CBOR array of
    numbers, or when a number does not fit the element type.
    """
    if datum.is_float:
        floats = _cbor.uniform_floats(data)
        if floats is not None:
            return narrow_floats(floats, datum)
    try:
        numbers = _cbor.decode_numbers(data)
    except _cbor.CborError as exc:
        raise InputDecodeError(f"input is not a CBOR array of numbers: {exc}") from None
    if datum.is_float:
        return narrow_floats(_as_floats(numbers), datum)
    return _as_integers(numbers, datum)


def narrow_floats(values: np.ndarray, datum: ModelDatumType) -> np.ndarray:
    """``values`` as the float type ``datum``; raises :class:`InputDecodeError`
    for a finite value beyond its range, which the cast would make infinite."""
    with np.errstate(over="ignore"):
        out = values.astype(datum.numpy_dtype)
    infinite = np.isinf(out)
    if not infinite.any():
        return out
    beyond = np.flatnonzero(infinite & np.isfinite(values))
    if beyond.size:
        limit = float(np.finfo(datum.numpy_dtype).max)
        raise InputDecodeError(
            f"input element {beyond[0]} is beyond the range of {datum.name} "
            f"(±{limit:.4g}); send a smaller number, or inf"
        )
    return out


def _as_floats(numbers: _cbor.Numbers) -> np.ndarray:
    ints = ~numbers.is_float
    values = numbers.floats.copy()
    as_float = numbers.magnitude[ints].astype(np.float64)
    values[ints] = np.where(numbers.negative[ints], -as_float - 1.0, as_float)
    # Past 2**53 the float of -1 - m is not -float(m) - 1: round the exact value.
    for index in np.flatnonzero(ints & (numbers.magnitude >= 2**53)):
        m = int(numbers.magnitude[index])
        values[index] = float(-1 - m if numbers.negative[index] else m)
    return values


def _as_integers(numbers: _cbor.Numbers, datum: ModelDatumType) -> np.ndarray:
    floats = np.flatnonzero(numbers.is_float)
    if floats.size:
        raise InputDecodeError(
            f"input element {floats[0]} is a float but the model takes {datum.name}"
        )
    info = np.iinfo(datum.numpy_dtype)
    negative = numbers.negative
    # A negative element is -1 - magnitude; in two's complement -1 - min == max,
    # so one bound serves both signs.
    too_big = numbers.magnitude > np.uint64(info.max)
    if info.min == 0:
        too_big |= negative
    bad = np.flatnonzero(too_big)
    if bad.size:
        raise InputDecodeError(
            f"input element {bad[0]} does not fit the element type {datum.name}"
        )
    if info.min == 0:
        return numbers.magnitude.astype(datum.numpy_dtype)
    signed = numbers.magnitude.astype(np.int64)
    return np.where(negative, ~signed, signed).astype(datum.numpy_dtype)


#: Outputs of at most this many CBOR bytes are decoded by ``cbor2``.
_SMALL_OUTPUT = 8 * 1024


def decode_output(data: bytes) -> list[int | float]:
    """Decode a run's ``output`` field (CBOR flat list, any float width).

    Homogeneous lists take the vectorised decoder; others (mixed lists, or an
    encoding it refuses) go through ``cbor2``, which accepts whatever a server
    of another version may write, and so do short outputs, which ``cbor2``
    decodes faster (1,000 floats: 29 µs against 26 µs; 1,000 integers: 29 µs
    against 173 µs; one element: 0.3 µs against 9 µs).
    """
    numbers = None
    if len(data) > _SMALL_OUTPUT:
        try:
            numbers = _cbor.decode_numbers(data)
        except _cbor.CborError:
            pass
    if numbers is not None and numbers.is_float.all():
        return numbers.floats.tolist()
    if numbers is not None and not numbers.is_float.any():
        if not (numbers.magnitude >> np.uint64(63)).any():
            signed = numbers.magnitude.astype(np.int64)
            return np.where(numbers.negative, ~signed, signed).tolist()
    values = cbor2.loads(data)
    if not isinstance(values, list):
        raise ValueError("output is not a CBOR array")
    return values


__all__ = [
    "InputDecodeError",
    "ModelDatumType",
    "as_tensor",
    "decode_input",
    "decode_output",
    "encode_array",
    "encode_input",
    "encode_list",
    "flatten",
]
