"""The published blindai==0.3.0 client (Python 3.9 wheel) against our server.

The virtual environment is built once per machine under the user's cache
directory; the test skips with the reason when Python 3.9 or the wheel cannot be
had.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.interop, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "blindai-tests"


def _python39() -> str | None:
    candidates = [shutil.which("python3.9")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob("versions/3.9*/bin/python3.9"))
    for candidate in candidates:
        if (
            candidate
            and subprocess.run(
                [candidate, "-c", "pass"], capture_output=True
            ).returncode
            == 0
        ):
            return candidate
    return None


@pytest.fixture(scope="session")
def legacy_python() -> str:
    python39 = _python39()
    if python39 is None:
        pytest.skip(
            "Python 3.9 is not installed: the published blindai 0.3.0 wheel needs it"
        )
    venv = CACHE / "blindai-0.3.0-py39"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python39, "-m", "venv", str(venv)], check=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "blindai==0.3.0"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if install.returncode != 0:
            pytest.skip(f"cannot install blindai==0.3.0: {install.stderr[-500:]}")
        (venv / ".complete").touch()
    return str(python)


def run_legacy(python: str, job: dict) -> dict:
    proc = subprocess.run(
        [python, str(HERE / "legacy_client.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_published_client_gets_scikit_learn_predictions(
    legacy_python, fresh_sim_server, digits, digits_model_path
):
    _, x_test, _, sk_pred = digits
    job = {
        **fresh_sim_server.ports,
        "model": str(digits_model_path),
        "shape": [1, 64],
        "dtype": "F32",
        "dtype_out": "I64",
        "inputs": [row.tolist() for row in x_test],
    }
    result = run_legacy(legacy_python, job)
    predictions = np.array([out[0] for out in result["outputs"]])
    assert len(predictions) == len(x_test)
    np.testing.assert_array_equal(predictions, sk_pred)


def test_published_client_float_output(legacy_python, fresh_sim_server, tmp_path):
    from models import affine_model

    path = tmp_path / "affine.onnx"
    path.write_bytes(affine_model())
    inputs = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.5, 1e-3, 7.25]]
    job = {
        **fresh_sim_server.ports,
        "model": str(path),
        "shape": [1, 4],
        "dtype": "F32",
        "dtype_out": "F32",
        "inputs": inputs,
    }
    result = run_legacy(legacy_python, job)
    expected = [[2 * v + 1 for v in row] for row in inputs]
    np.testing.assert_allclose(result["outputs"], expected, rtol=1e-6)


def test_published_protocol_descriptors_match(legacy_python):
    """Every 0.3.0 message and field exists here with the same number and type."""
    script = r"""
import json
from blindai.pb import securedexchange_pb2, untrusted_pb2, proof_files_pb2
out = {}
for mod in (securedexchange_pb2, untrusted_pb2, proof_files_pb2):
    for name, desc in mod.DESCRIPTOR.message_types_by_name.items():
        out[desc.full_name] = {f.name: [f.number, f.type, f.label,
            f.message_type.full_name if f.message_type else None]
            for f in desc.fields}
print(json.dumps(out))
"""
    proc = subprocess.run(
        [legacy_python, "-c", script], capture_output=True, text=True, check=True
    )
    legacy = json.loads(proc.stdout)
    from blindai.pb import proof_files_pb2, securedexchange_pb2, untrusted_pb2

    ours = {}
    for mod in (securedexchange_pb2, untrusted_pb2, proof_files_pb2):
        for desc in mod.DESCRIPTOR.message_types_by_name.values():
            ours[desc.full_name] = {
                f.name: [
                    f.number,
                    f.type,
                    3 if f.is_repeated else 1,
                    f.message_type.full_name if f.message_type else None,
                ]
                for f in desc.fields
            }
    for message, fields in legacy.items():
        assert message in ours, message
        for name, spec in fields.items():
            assert ours[message].get(name) == spec, (message, name)
    assert sys.version_info >= (3, 11)
