"""Encoding Python lists (the 0.3 input): every fast path writes exactly the
bytes ``cbor2.dumps`` writes for the flattened list, and refuses what
``flatten`` refuses."""

from __future__ import annotations

import hashlib
import math
import random
import struct
from fractions import Fraction

import cbor2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindai._cbor import CborError, decode_numbers, encode_float_list, encode_ints
from blindai.pb import securedexchange_pb2 as pb
from blindai.server import inputs
from blindai.tensors import (
    InputDecodeError,
    ModelDatumType,
    decode_input,
    encode_input,
    encode_list,
    flatten,
    narrow_floats,
)

#: Above the length under which lists go straight to cbor2.
LONG = 3001
SPECIALS = [
    math.nan,
    -math.nan,
    struct.unpack(">d", bytes.fromhex("7ff0000000000001"))[0],  # signalling NaN
    struct.unpack(">d", bytes.fromhex("fff8000000000abc"))[0],  # NaN, payload
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    5e-324,
    -2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1.0,
    2.0**53,
]


def _floats(n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1e9, 1e9) * rng.choice((1e-300, 1e-5, 1.0)) for _ in range(n)]


def _same_as_cbor2(data: list) -> None:
    expected = cbor2.dumps(flatten(data))
    assert encode_list(flatten(data)) == expected
    assert encode_input(data) == expected


#: Lengths around the array head's widths, the pickle's batches of 1,000 and
#: the 64 batches moved per step; 7,281 floats end just past the first frame.
LENGTHS = (2, 3, 23, 24, 255, 256, 999, 1000, 1001, 1999, 2000, 2001, 2049, 4000)
LENGTHS += (7280, 7281, 65535, 65536, 64_000, 64_001, 129_007)


@pytest.mark.parametrize("n", LENGTHS)
def test_float_lists_of_every_layout_encode_as_cbor2(n):
    values = _floats(n, seed=n)
    assert encode_float_list(values) == cbor2.dumps(values)
    _same_as_cbor2(values)


@pytest.mark.parametrize("special", SPECIALS, ids=repr)
@pytest.mark.parametrize("where", [0, 999, 1000, 1001, LONG // 2, LONG - 1])
def test_special_floats_anywhere_encode_as_cbor2(special, where):
    values = _floats(LONG)
    values[where] = special
    assert encode_float_list(values) == cbor2.dumps(values)
    _same_as_cbor2(values)


def test_lists_of_only_special_floats_encode_as_cbor2():
    values = SPECIALS * 300
    assert encode_float_list(values) == cbor2.dumps(values)
    _same_as_cbor2(values)


class _Float(float):
    pass


@pytest.mark.parametrize(
    "other",
    [
        0,
        1,
        -1,
        23,
        -25,
        2**63,
        2**64 - 1,
        -(2**64),
        2**64,
        -(2**64) - 1,
        10**40,
        np.float64(0.1),
        np.float32(0.1),
        np.float16(-2.5),
        np.int64(-7),
        np.uint64(2**64 - 1),
        _Float(0.25),
    ],
    ids=repr,
)
@pytest.mark.parametrize("where", [0, 1000, LONG - 1])
def test_lists_with_other_numbers_encode_as_cbor2_of_flatten(other, where):
    values: list = _floats(LONG)
    values[where] = other
    assert encode_float_list(values) is None
    _same_as_cbor2(values)


@pytest.mark.parametrize(
    "inner", [[1.5, 2.5], np.array([0.5, 7.0], dtype=np.float32)], ids=repr
)
@pytest.mark.parametrize("where", [0, 1000, LONG - 1])
def test_lists_with_a_list_inside_are_refused_as_ragged(inner, where):
    values: list = _floats(LONG)
    values[where] = inner
    assert encode_float_list(values) is None
    with pytest.raises(ValueError, match="ragged"):
        encode_input(values)


@pytest.mark.parametrize(
    "bad",
    [True, False, np.bool_(True), "1.5", b"x", None, 1 + 2j, Fraction(1, 3)],
    ids=repr,
)
@pytest.mark.parametrize("where", [0, 1000, LONG - 1])
def test_lists_with_non_numbers_are_refused(bad, where):
    values: list = _floats(LONG)
    values[where] = bad
    assert encode_float_list(values) is None
    with pytest.raises(ValueError):
        flatten(values)
    with pytest.raises(ValueError):
        encode_input(values)


@pytest.mark.parametrize(
    "values",
    [
        list(range(-5000, 5000)),
        [2**64 - 1 - i for i in range(LONG)],
        [-(2**64) + i for i in range(LONG)],
        [i if i % 3 else i / 7 for i in range(LONG)],
        [0.5] * 100 + [1] + [0.5] * LONG,
        [3] * 100 + [0.25] + [7] * LONG,
    ],
    ids=["ints", "big", "negative-big", "mixed", "float-then-int", "int-then-float"],
)
def test_int_and_mixed_lists_encode_as_cbor2(values):
    assert flatten(values) is values
    _same_as_cbor2(values)


class _List(list):
    pass


def test_list_subclasses_and_tuples_encode_as_cbor2():
    values = _floats(LONG)
    assert encode_float_list(_List(values)) is None
    assert encode_input(_List(values)) == cbor2.dumps(values)
    assert encode_input(tuple(values)) == cbor2.dumps(values)
    assert encode_list(_List(values)) == cbor2.dumps(values)


def test_nested_lists_encode_as_cbor2_of_flatten():
    rows = [_floats(480, seed=row) for row in range(10)]
    _same_as_cbor2(rows)
    assert encode_input(rows) == cbor2.dumps([v for row in rows for v in row])


def test_arrays_encode_as_cbor2_of_tolist():
    array = np.random.default_rng(3).standard_normal((3, 1000), dtype=np.float32)
    assert encode_input(array) == cbor2.dumps(array.ravel().tolist())


@pytest.mark.parametrize("empty", [[], (), [[]], np.zeros(0)], ids=repr)
def test_empty_inputs_are_refused(empty):
    with pytest.raises(ValueError, match="empty"):
        encode_input(empty)


def test_the_list_is_left_as_it_was():
    values = _floats(LONG)
    values[7] = math.nan
    copy = list(values)
    encode_input(values)
    assert [struct.pack(">d", v) for v in values] == [
        struct.pack(">d", v) for v in copy
    ]


FLOATS = st.floats(allow_nan=True, allow_infinity=True)
NUMBERS = st.one_of(
    FLOATS, st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.text(max_size=3)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(FLOATS, min_size=2, max_size=60))
def test_any_float_list_encodes_as_cbor2(values):
    assert encode_float_list(values) == cbor2.dumps(values)


@settings(max_examples=300, deadline=None)
@given(st.lists(NUMBERS, min_size=2, max_size=60))
def test_float_list_encoder_takes_only_exact_floats(values):
    encoded = encode_float_list(values)
    if all(type(v) is float for v in values):
        assert encoded == cbor2.dumps(values)
    else:
        assert encoded is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, LONG - 1), NUMBERS), max_size=5),
    st.integers(0, 2**32),
)
def test_long_lists_encode_as_flatten_and_cbor2(changes, seed):
    values: list = _floats(LONG, seed=seed)
    for where, value in changes:
        values[where] = value
    try:
        expected = cbor2.dumps(flatten(values))
    except ValueError:
        with pytest.raises(ValueError):
            encode_input(values)
        return
    assert encode_input(values) == expected
    assert encode_list(flatten(values)) == expected


# --- decoding on the server --------------------------------------------------------


def _general(data: bytes, datum: ModelDatumType) -> np.ndarray:
    """What decode_input returns through the general decoder."""
    numbers = decode_numbers(data)
    ints = numbers.magnitude.astype(np.float64)
    ints = np.where(numbers.negative, -1.0 - ints, ints)
    return narrow_floats(np.where(numbers.is_float, numbers.floats, ints), datum)


@pytest.mark.parametrize("datum", [ModelDatumType.F32, ModelDatumType.F64])
@pytest.mark.parametrize("width", [">f2", ">f4", ">f8"])
def test_uniform_float_arrays_decode_as_the_general_decoder(datum, width):
    values = np.array(_floats(LONG) + [0.0, -0.0, math.inf, -math.inf, 1e-320])
    with np.errstate(over="ignore"):
        values = values.astype(width)
    head = {">f2": 0xF9, ">f4": 0xFA, ">f8": 0xFB}[width]
    records = np.empty(values.size, dtype=[("head", "u1"), ("value", width)])
    records["head"], records["value"] = head, values
    data = cbor2.dumps([0] * values.size)[: -values.size] + records.tobytes()
    decoded = decode_input(data, datum)
    assert decoded.dtype == datum.numpy_dtype and decoded.flags.writeable
    assert decoded.tobytes() == _general(data, datum).tobytes()
    assert decoded.tobytes() == values.astype(datum.numpy_dtype).tobytes()


def test_nan_decodes_as_nan():
    values = _floats(LONG)
    values[5] = math.nan
    decoded = decode_input(cbor2.dumps(values), ModelDatumType.F32)
    assert np.isnan(decoded[5]) and np.isfinite(np.delete(decoded, 5)).all()


@pytest.mark.parametrize("where", [0, 1000, LONG - 1])
def test_doubles_beyond_float32_are_refused_with_their_index(where):
    values = [0.5] * LONG
    values[where] = -1e39
    with pytest.raises(InputDecodeError, match=f"input element {where} is beyond"):
        decode_input(cbor2.dumps(values), ModelDatumType.F32)
    values[where] = math.inf
    assert np.isinf(decode_input(cbor2.dumps(values), ModelDatumType.F32)[where])


@pytest.mark.parametrize(
    "data",
    [
        cbor2.dumps([0.5] * 10)[:-1],
        cbor2.dumps([0.5] * 10) + b"\x00",
        cbor2.dumps([0.5] * 9 + [True]),
        cbor2.dumps([0.5] * 9 + [1]),
        cbor2.dumps([0.5] * 9 + ["a"]),
        cbor2.dumps([[0.5] * 10]),
        cbor2.dumps([]),
    ],
    ids=["truncated", "trailing", "bool", "int", "text", "nested", "empty"],
)
def test_other_arrays_take_the_general_decoder(data):
    try:
        expected = _general(data, ModelDatumType.F32)
    except CborError:
        with pytest.raises(InputDecodeError):
            decode_input(data, ModelDatumType.F32)
        return
    assert decode_input(data, ModelDatumType.F32).tobytes() == expected.tobytes()


def test_a_streamed_cbor_input_commits_to_the_hash_of_all_its_bytes():
    data = cbor2.dumps(_floats(LONG))
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    requests = iter([pb.RunModelRequest(input=chunk) for chunk in chunks])
    received = inputs.receive(requests, limit=len(data))
    assert received.raw == data
    assert received.commitments() == {"input_hash": hashlib.sha256(data).digest()}


# --- integers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "low, high",
    [(0, 24), (24, 256), (256, 65536), (65536, 2**32), (2**32, 2**63)],
    ids=["in-head", "1-byte", "2-byte", "4-byte", "8-byte"],
)
@pytest.mark.parametrize("sign", [1, -1])
def test_int_arrays_of_one_size_encode_as_cbor2(low, high, sign):
    rng = np.random.default_rng(low)
    values = rng.integers(low, high, size=LONG, dtype=np.uint64).astype(np.int64)
    if sign < 0:
        values = -1 - values
    assert encode_ints(values) == cbor2.dumps(values.tolist())
    unsigned = values.astype(np.uint64) if sign > 0 else None
    if unsigned is not None:
        assert encode_ints(unsigned) == cbor2.dumps(values.tolist())


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint64])
def test_int_arrays_of_every_size_encode_as_cbor2(dtype):
    edges = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1]
    info = np.iinfo(dtype)
    values = [v for e in edges for v in (e, -e - 1) if info.min <= v <= info.max]
    values = (values * (LONG // len(values) + 1))[:LONG]
    random.Random(1).shuffle(values)
    assert encode_ints(np.array(values, dtype=dtype)) == cbor2.dumps(values)


@pytest.mark.parametrize(
    "other",
    [1.5, -0.0, True, False, 2**63, -(2**63) - 1, 2**64, np.int64(-3), _Float(2.0)],
    ids=repr,
)
@pytest.mark.parametrize("where", [100, LONG - 1])
def test_negative_int_lists_with_anything_else_encode_as_cbor2(other, where):
    values: list = list(range(-LONG // 2, LONG - LONG // 2))
    values[where] = other
    try:
        expected = cbor2.dumps(values)
    except cbor2.CBOREncodeError:  # numpy scalars: flatten makes them ints
        with pytest.raises(cbor2.CBOREncodeError):
            encode_list(values)
    else:
        assert encode_list(values) == expected
    if type(other) is not bool:
        _same_as_cbor2(values)


def test_negative_int_lists_encode_as_cbor2():
    rng = np.random.default_rng(5)
    for low, high in [(-(2**31), 2**31), (-(2**63), 2**63 - 1), (-30, 30)]:
        values = rng.integers(low, high, size=LONG).tolist()
        _same_as_cbor2(values)
