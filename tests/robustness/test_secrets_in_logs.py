"""Nothing secret reaches the server's log or disk, at any log level.

The log may carry sizes, durations, hashes and error classes. It must never
carry model bytes, input or output values, or key material; the enclave's keys
live only in memory, and the state directory holds only the host certificate
and its key.
"""

from __future__ import annotations

import base64
import struct

import cbor2
import grpc
import numpy as np
import pytest
from robust_support import (
    connect,
    gather_model,
    output_of,
    raw_stub,
    reference_model,
    refusal,
    run,
    sim_server,
    upload,
)

from blindai import ModelDatumType
from blindai.pb import securedexchange_pb2 as pb

SECRET_INPUT = 31337.4242
SECRET_OUTPUT = 2 * SECRET_INPUT + 1  # what the reference model answers
SECRET_INDEX = 313373


def renderings(value: float) -> list[bytes]:
    """The ways a number may show up in a text or binary log."""
    texts = {
        repr(value),
        f"{value:g}",
        f"{value:.2f}",
        repr(float(np.float32(value))),
        f"{float(np.float32(value)):.1f}",
    }
    packed = [struct.pack(fmt, value) for fmt in ("<d", ">d", "<f", ">f")]
    packed.append(cbor2.dumps(value))
    out = [t.encode() for t in texts] + packed
    out += [p.hex().encode() for p in packed]
    out += [base64.b64encode(p).rstrip(b"=") for p in packed]
    return out


KEY_MARKERS = [b"PRIVATE KEY", b"BEGIN EC", b"BEGIN OPENSSH"]


@pytest.fixture(scope="module")
def debug_server():
    with sim_server("--log-level", "DEBUG") as server:
        yield server


def test_log_holds_no_values_and_no_keys(debug_server):
    model = reference_model()
    with connect(debug_server) as client:
        client.upload_model(model, shape=(1, 4), sign=True)
        response = client.run_model([SECRET_INPUT, 0.0, 1.0, 2.0], sign=True)
    assert response.output[0] == pytest.approx(SECRET_OUTPUT)
    log = debug_server.log_path.read_bytes()
    assert b"DEBUG" in log, "the server did not log at DEBUG"
    for needle in renderings(SECRET_INPUT) + renderings(SECRET_OUTPUT):
        assert needle not in log, needle
    assert model[:64] not in log and model[-64:] not in log
    assert model[:32].hex().encode() not in log
    for marker in KEY_MARKERS:
        assert marker not in log


def test_onnxruntime_errors_quoting_the_input_stay_out_of_the_log(debug_server):
    # onnxruntime's own message names the bad index; it may go to the client,
    # whose data it is, but not to the server's log.
    with raw_stub(debug_server) as stub:
        upload(stub, gather_model(), shape=(1, 1), datum=pb.I64)
        assert output_of(run(stub, cbor2.dumps([1]))) == [1.0]
        code, details = refusal(run, stub, cbor2.dumps([SECRET_INDEX]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    log = debug_server.log_path.read_bytes()
    assert str(SECRET_INDEX).encode() not in log
    assert b"Gather" not in log


def test_state_dir_holds_only_the_host_certificate(debug_server):
    files = sorted(p.name for p in debug_server.state_dir.iterdir())
    assert files == ["host_server.key", "host_server.pem"]
    key = debug_server.state_dir / "host_server.key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_integer_input_values_stay_out_of_the_log(debug_server):
    from models import cast_model
    from onnx import TensorProto

    with connect(debug_server) as client:
        client.upload_model(
            cast_model(4, TensorProto.INT64, TensorProto.INT64),
            dtype=ModelDatumType.I64,
            dtype_out=ModelDatumType.I64,
        )
        assert client.run_model([987654321, 1, 2, 3]).output[0] == 987654321
    assert b"987654321" not in debug_server.log_path.read_bytes()
