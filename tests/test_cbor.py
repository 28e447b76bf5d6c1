"""The vectorised CBOR codec: byte-identical to ``cbor2`` when encoding, strict
when decoding (only one definite-length array of numbers is an input)."""

from __future__ import annotations

import math
import struct

import cbor2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindai._cbor import CborError, decode_numbers, encode_floats, encode_ints
from blindai.tensors import (
    InputDecodeError,
    ModelDatumType,
    decode_input,
    decode_output,
    encode_array,
    encode_list,
)

INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=80))
def test_float_lists_encode_as_cbor2(values):
    assert encode_list(values) == cbor2.dumps(values)
    assert encode_floats(np.array(values, dtype=np.float64)) == cbor2.dumps(values)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(INT64, max_size=80), st.lists(UINT64, max_size=80)))
def test_int_lists_encode_as_cbor2(values):
    assert encode_list(values) == cbor2.dumps(values)
    dtype = np.uint64 if any(v >= 2**63 for v in values) else np.int64
    assert encode_ints(np.array(values, dtype=dtype)) == cbor2.dumps(values)


@pytest.mark.parametrize(
    "edge", [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1]
)
def test_integer_size_boundaries_encode_as_cbor2(edge):
    values = [edge, -edge - 1] if edge < 2**63 else [edge]
    assert encode_list(values) == cbor2.dumps(values)
    assert encode_ints(np.array([edge], dtype=np.uint64)) == cbor2.dumps([edge])


@pytest.mark.parametrize(
    "dtype",
    [
        "<f2",
        "<f4",
        ">f4",
        "<f8",
        "<i1",
        "<u1",
        "<i2",
        "<u2",
        "<i4",
        ">u4",
        "<i8",
        "<u8",
    ],
)
@pytest.mark.parametrize("size", [8 * 64, 8 * 1024], ids=["cbor2", "vectorised"])
def test_arrays_encode_as_cbor2_of_tolist(dtype, size):
    # Small arrays go through cbor2 itself; larger ones through the vectorised
    # encoder, which must write the same bytes.
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    array = np.frombuffer(raw, dtype=dtype).reshape(4, -1)
    expected = cbor2.dumps(array.ravel().tolist())
    assert encode_array(array) == expected
    assert encode_array(np.asfortranarray(array)) == expected


def test_lists_the_codec_does_not_cover_still_encode_as_cbor2():
    for values in ([1, 2.5], [2**64], [-(2**63) - 1, 2**64 - 1], [True, 1]):
        assert encode_list(values) == cbor2.dumps(values)


def test_special_floats_are_the_halves_cbor2_writes():
    encoded = encode_list([math.nan, math.inf, -math.inf, -math.nan])
    assert encoded == bytes.fromhex("84f97e00f97c00f9fc00f97e00")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(INT64, st.floats(allow_nan=False)), max_size=60))
def test_decode_reads_what_cbor2_writes(values):
    numbers = decode_numbers(cbor2.dumps(values))
    assert numbers.size == len(values)
    for index, value in enumerate(values):
        if isinstance(value, float):
            assert numbers.is_float[index] and numbers.floats[index] == value
        else:
            m = int(numbers.magnitude[index])
            assert (-1 - m if numbers.negative[index] else m) == value


@pytest.mark.parametrize(
    "head,payload,value",
    [
        (0xF9, struct.pack(">e", 1.5), 1.5),
        (0xFA, struct.pack(">f", -2.25), -2.25),
        (0xFB, struct.pack(">d", 1e300), 1e300),
    ],
)
def test_decode_accepts_every_float_width(head, payload, value):
    data = bytes([0x82, head]) + payload + bytes([0x01])
    assert decode_input(data, ModelDatumType.F64).tolist() == [value, 1.0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=40))
def test_decode_input_round_trips_float32(values):
    array = np.array(values, dtype=np.float32)
    decoded = decode_input(encode_array(array), ModelDatumType.F32)
    assert decoded.tobytes() == array.tobytes()


@pytest.mark.parametrize(
    "datum",
    [ModelDatumType.I32, ModelDatumType.I64, ModelDatumType.U32, ModelDatumType.U64],
)
def test_integer_limits_are_enforced_at_the_limit_and_one_past(datum):
    info = np.iinfo(datum.numpy_dtype)
    edges = [int(info.min), int(info.max)]
    assert decode_input(cbor2.dumps(edges), datum).tolist() == edges
    for past in (int(info.min) - 1, int(info.max) + 1):
        if -(2**64) <= past < 2**64:
            with pytest.raises(InputDecodeError, match=f"element 1 .*{datum.name}"):
                decode_input(cbor2.dumps([0, past]), datum)


def test_large_integers_become_the_nearest_float():
    values = [2**53 + 1, -(2**64), 2**64 - 1]
    decoded = decode_input(cbor2.dumps(values), ModelDatumType.F64)
    assert decoded.tolist() == [float(v) for v in values]


def test_float_for_an_integer_model_names_the_element():
    with pytest.raises(InputDecodeError, match="element 2 is a float .* I64"):
        decode_input(cbor2.dumps([1, 2, 3.0]), ModelDatumType.I64)


def test_output_decoding_matches_cbor2():
    for values in ([1.5, math.inf], [1, -5, 2**63 - 1], [1, 2.5], [2**64 - 1], []):
        assert decode_output(cbor2.dumps(values)) == cbor2.loads(cbor2.dumps(values))


def test_long_output_decoding_matches_cbor2():
    # Past 8 KiB the vectorised decoder takes over from cbor2.
    rng = np.random.default_rng(3)
    for values in (
        rng.standard_normal(2000).tolist(),
        rng.integers(-(2**63), 2**63 - 1, 2000).tolist(),
        [1, 2.5] * 2000,
        np.float32(rng.standard_normal(3000)).astype(np.float16).tolist(),
    ):
        data = cbor2.dumps(values)
        assert len(data) > 8 * 1024
        assert decode_output(data) == cbor2.loads(data)


# --- refusals, named after what a hostile or broken client sends ----------------

REFUSED = [
    (cbor2.dumps({"a": 1}), "a map, not an array"),
    (cbor2.dumps("text"), "a text string, not an array"),
    (cbor2.dumps(7), "an integer, not an array"),
    (cbor2.dumps([1.0, "x"]), "element 1 is a text string"),
    (cbor2.dumps([1.0, b"x"]), "element 1 is a byte string"),
    (cbor2.dumps([1.0, 2.0, {"k": 1}]), "element 2 is a map"),
    (cbor2.dumps([[1.0], [2.0]]), "element 0 is a nested array"),
    (cbor2.dumps([1, 2**64]), "element 1 is an integer beyond 64 bits"),
    (cbor2.dumps([-(2**64) - 1]), "element 0 is an integer beyond 64 bits"),
    (cbor2.dumps([0, cbor2.CBORTag(1, 0)]), "element 1 is a tag"),
    (cbor2.dumps([1, True]), r"element 1 is a boolean \(true\)"),
    (cbor2.dumps([False]), r"element 0 is a boolean \(false\)"),
    (cbor2.dumps([1, None]), "element 1 is null"),
    (bytes([0x9F, 0x01, 0xFF]), "indefinite length"),
    (cbor2.dumps([1.0, 2.0]) + b"\x00", "1 bytes follow the array's 2 elements"),
    (cbor2.dumps([1.0]) + cbor2.dumps([2.0]), "follow the array's 1 elements"),
    (bytes([0x9A, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), "claims 4294967295 elements"),
    (bytes([0x82, 0xFB, 0, 0, 0, 0, 0, 0, 0, 0, 0xFB]), "ends inside element 1"),
    (bytes([0x83, 0x18, 0x20, 0x01]), "ends before element 2 of 3"),
    (bytes([0x83, 0x01, 0x02]), "claims 3 elements but only 2 bytes"),
    (bytes([0x9B, 0x00]), "ends inside the array header"),
    (bytes([0x81, 0x1C]), "element 0 is a malformed head 0x1c"),
    (bytes([0x82, 0x01, 0x18]), "ends inside element 1"),
    (bytes([0x82, 0x01, 0x21]) + b"\x00", "1 bytes follow"),
    (b"", "empty"),
]


@pytest.mark.parametrize("data,message", REFUSED)
def test_attack_non_number_input_is_refused_with_its_position(data, message):
    with pytest.raises(CborError, match=message):
        decode_numbers(data)
    with pytest.raises(InputDecodeError, match=message):
        decode_input(data, ModelDatumType.F32)


def test_attack_huge_count_allocates_nothing_before_refusal():
    header = bytes([0x9B]) + (2**63).to_bytes(8, "big")
    with pytest.raises(CborError, match="claims"):
        decode_numbers(header + b"\x01" * 16)
