"""Shared fixtures: test models and real server processes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))


@pytest.fixture(scope="session")
def digits():
    """(onnx bytes, X_test, y_test, scikit-learn predictions) of the digits model."""
    from digits import train_digits_model

    return train_digits_model()


@pytest.fixture(scope="session")
def digits_model_path(digits, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "digits.onnx"
    path.write_bytes(digits[0])
    return path


@pytest.fixture(scope="session")
def sim_server() -> Iterator:
    """One simulation-mode server process shared by the session's tests."""
    from blindai.server.launcher import LocalServer

    with LocalServer(["--simulation"]) as server:
        yield server


@pytest.fixture
def fresh_sim_server() -> Iterator:
    """A simulation-mode server of the test's own (no model uploaded yet)."""
    from blindai.server.launcher import LocalServer

    with LocalServer(["--simulation"]) as server:
        yield server
