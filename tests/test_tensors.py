"""Flattening and CBOR encoding: byte-identical to what 0.3 clients hash."""

from __future__ import annotations

import math

import cbor2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindai.tensors import (
    InputDecodeError,
    ModelDatumType,
    decode_input,
    encode_array,
    encode_list,
    flatten,
)


def test_flatten_is_row_major():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert flatten(array) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert flatten([[0, 1, 2], [3, 4, 5]]) == [0, 1, 2, 3, 4, 5]
    assert flatten(np.asfortranarray(array)) == flatten(array)


@pytest.mark.parametrize("bad", [["a"], [True], [1 + 2j], [{"x": 1}], [None], "12"])
def test_flatten_refuses_non_numbers(bad):
    with pytest.raises(ValueError):
        flatten(bad)


@pytest.mark.parametrize(
    "ragged",
    [
        [[1, 2, 3], [4]],
        [[1, 2], 3, 4],
        [1, [2, 3]],
        [[[1, 2]], [3, 4]],
        [[1, 2], np.array([3, 4, 5])],
        [np.zeros((2, 2)), np.zeros(4)],
    ],
    ids=repr,
)
def test_flatten_refuses_ragged_nesting(ragged):
    """Nested lists must have a shape: [[1, 2, 3], [4]] is not a tensor, even
    though it holds as many numbers as [[1, 2], [3, 4]]."""
    with pytest.raises(ValueError, match="ragged"):
        flatten(ragged)


def test_flatten_takes_regular_nesting_with_arrays_inside():
    assert flatten([np.array([1.0, 2.0]), [3.0, 4.0]]) == [1.0, 2.0, 3.0, 4.0]
    assert flatten([[np.float32(0.5)], [np.int64(2)]]) == [0.5, 2]
    assert flatten(([1, 2], (3, 4))) == [1, 2, 3, 4]
    assert flatten([[], []]) == []


def test_flatten_refuses_absurd_depth_with_a_value_error():
    deep: list = [1.0]
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        flatten(deep)


def test_masked_arrays_with_masked_values_are_refused():
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(ValueError, match="masked"):
        flatten(masked)
    assert flatten(np.ma.masked_array([1.0, 2.0], mask=False)) == [1.0, 2.0]


def test_special_floats_encode_as_cbor2_does():
    values = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-310, 1.5]
    assert encode_list(values) == cbor2.dumps(values)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(allow_nan=True), st.integers(-(2**63), 2**64 - 1)),
        max_size=50,
    )
)
def test_encoding_matches_cbor2(values):
    assert encode_list(values) == cbor2.dumps(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=40))
def test_array_encoding_matches_cbor2_of_tolist(values):
    array = np.array(values, dtype=np.float32)
    assert encode_array(array) == cbor2.dumps(array.tolist())


@pytest.mark.parametrize("datum", list(ModelDatumType))
def test_decode_round_trip(datum):
    values = [0, 1, 2, 3] if not datum.is_float else [0.5, -1.25, 3.0, 1e10]
    array = decode_input(encode_list(values), datum)
    assert array.dtype == datum.numpy_dtype
    assert array.tolist() == values


def test_decode_refuses_out_of_range_integers():
    with pytest.raises(InputDecodeError, match="U32"):
        decode_input(encode_list([-1]), ModelDatumType.U32)


def test_datum_from_numpy_and_onnx():
    assert ModelDatumType.from_numpy(np.float32) is ModelDatumType.F32
    assert ModelDatumType.from_numpy(">i8") is ModelDatumType.I64
    assert ModelDatumType.from_onnx("tensor(uint64)") is ModelDatumType.U64
    with pytest.raises(ValueError):
        ModelDatumType.from_numpy(np.float16)
