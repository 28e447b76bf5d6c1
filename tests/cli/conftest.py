"""Fixtures of the ``blindai`` command's tests: a server of their own, files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from blindai.cli import main

REPO = Path(__file__).resolve().parents[2]
PROOFS = REPO.parent / "shared" / "fixtures" / "attestation" / "blindai-0.3-proofs"
NO_SHARED = (
    "../shared/fixtures/attestation/blindai-0.3-proofs not found: these "
    "tests read the real 0.3 proofs of the shared folder beside the repository"
)
#: The instant at which the real proofs' collateral was valid (their case.toml).
PROOF_INSTANT = "2022-04-11T13:05:28Z"


@dataclass
class Result:
    """What one in-process ``blindai`` command did."""

    status: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``blindai ARGS`` in-process; returns a :class:`Result`."""

    def run(*argv: object) -> Result:
        capsys.readouterr()
        status = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def cli_server() -> Iterator:
    """A simulation server for one test module (the server holds one model)."""
    from blindai.server.launcher import LocalServer

    with LocalServer(["--simulation"]) as server:
        yield server


@pytest.fixture(scope="module")
def sim_options(cli_server) -> list[str]:
    """The connection options of ``blindai upload/run`` for ``cli_server``."""
    return [
        "--simulation",
        "--host",
        "127.0.0.1",
        "--untrusted-port",
        str(cli_server.untrusted_port),
        "--attested-port",
        str(cli_server.attested_port),
    ]


@pytest.fixture(scope="module")
def affine_files(tmp_path_factory) -> dict[str, Path]:
    """An affine model (y = 2x + 1 on 4 floats) and inputs for it."""
    from models import affine_model

    folder = tmp_path_factory.mktemp("cli")
    files = {
        "model": folder / "affine.onnx",
        "npy": folder / "x.npy",
        "json": folder / "x.json",
        "other": folder / "other.json",
    }
    files["model"].write_bytes(affine_model(4, batch=1))
    np.save(files["npy"], np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32))
    files["json"].write_text("[[1.0, 2.0, 3.0, 4.0]]")
    files["other"].write_text("[[1.0, 2.0, 3.0, 5.0]]")
    return files
