"""Fixtures of the attestation tests: the real cases of the shared folder."""

from __future__ import annotations

import pytest
from attestation_cases import FIXTURES, MISSING_REASON, Case, load_case


@pytest.fixture
def case(request: pytest.FixtureRequest) -> Case:
    """The case named by the test's indirect ``case`` parameter."""
    if not FIXTURES.is_dir():
        pytest.skip(MISSING_REASON)
    return load_case(request.param)
