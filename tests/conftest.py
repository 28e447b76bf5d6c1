"""Shared fixtures: test models, a real server process, the shared fixtures folder."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ATTESTATION_FIXTURES = SHARED / "fixtures" / "attestation"

sys.path.insert(0, str(REPO / "examples"))


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


def connect_sim(server, **kwargs):
    import blindai

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blindai.SimulationModeWarning)
        return blindai.connect("127.0.0.1", simulation=True, **server.ports, **kwargs)
