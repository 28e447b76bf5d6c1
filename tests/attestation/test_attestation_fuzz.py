"""Property: parsing hostile bytes only ever raises QuoteFormatError."""

from __future__ import annotations

import pytest
from attestation_cases import load_case, sgx_case_names
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blindai.attestation.quote import Quote
from blindai.errors import AttestationError

REAL = [load_case(n).quote for n in sgx_case_names()]
FAST = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _parse(data: bytes) -> None:
    try:
        Quote.from_bytes(data)
    except AttestationError as exc:
        assert str(exc)


@FAST
@given(st.binary(max_size=6000))
def test_arbitrary_bytes(data: bytes) -> None:
    _parse(data)


@FAST
@given(st.binary(min_size=0, max_size=64))
def test_arbitrary_bytes_with_a_v3_header(data: bytes) -> None:
    _parse(b"\x03\x00\x02\x00" + data)


@pytest.mark.skipif(not REAL, reason="no fixtures")
@FAST
@given(
    st.data(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    st.integers(-200, 200),
)
def test_mutated_real_quotes(data, edits, resize) -> None:
    quote = bytearray(data.draw(st.sampled_from(REAL)))
    for offset, value in edits:
        quote[offset % len(quote)] = value
    if resize < 0:
        del quote[resize:]
    else:
        quote += bytes(resize)
    _parse(bytes(quote))
