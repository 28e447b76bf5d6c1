"""Helpers of the robustness tests: raw requests to a real server process, the
hostile models they send, and the check that a server still serves its model.

Named uniquely (not ``conftest``) so that importing it never depends on which
directory's ``conftest`` module pytest loaded last.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import cbor2
import grpc
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support import CALL_TIMEOUT, model_requests, run, upload  # noqa: F401

from blindai._certs import der_to_pem
from blindai.pb import securedexchange_pb2 as pb
from blindai.pb import untrusted_pb2
from blindai.pb.securedexchange_pb2_grpc import ExchangeStub
from blindai.pb.untrusted_pb2_grpc import AttestationStub
from blindai.server.launcher import LocalServer

#: Seconds allowed for any single call of these tests.
#: The input of the reference model and what it answers (y = 2x + 1).
REFERENCE_INPUT = [1.0, 2.0, 3.0, 4.0]
REFERENCE_OUTPUT = [3.0, 5.0, 7.0, 9.0]
_OPTIONS = [("grpc.ssl_target_name_override", "blindai-srv")]


@contextlib.contextmanager
def sim_server(*args: str) -> Iterator[LocalServer]:
    """A simulation-mode server process with extra command-line ``args``."""
    with LocalServer(["--simulation", *args]) as server:
        yield server


def raw_channel(server: LocalServer) -> grpc.Channel:
    """A channel to the attested port, trusting the certificate the server shows."""
    host_pem = server.host_certificate.read_bytes()
    target = f"127.0.0.1:{server.untrusted_port}"
    creds = grpc.ssl_channel_credentials(host_pem)
    with grpc.secure_channel(target, creds, _OPTIONS) as channel:
        der = (
            AttestationStub(channel)
            .GetCertificate(untrusted_pb2.GetCertificateRequest(), timeout=10)
            .enclave_tls_certificate
        )
    return grpc.secure_channel(
        f"127.0.0.1:{server.attested_port}",
        grpc.ssl_channel_credentials(der_to_pem(der)),
        _OPTIONS,
    )


@contextlib.contextmanager
def raw_stub(server: LocalServer) -> Iterator[ExchangeStub]:
    channel = raw_channel(server)
    try:
        yield ExchangeStub(channel)
    finally:
        channel.close()


def connect(server: LocalServer, **kwargs: Any) -> Any:
    """Our client, connected in simulation mode (the warning silenced)."""
    import blindai

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blindai.SimulationModeWarning)
        return blindai.connect("127.0.0.1", simulation=True, **server.ports, **kwargs)


# --- raw requests ------------------------------------------------------------


def output_of(reply: pb.RunModelReply) -> list[Any]:
    payload = pb.Payload.FromString(reply.payload).run_model_payload
    return cbor2.loads(payload.output)


def refusal(call: Any, *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, str]:
    """The status and message of a call that must fail."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


def assert_serves_reference(stub: ExchangeStub) -> None:
    """The server answers, with the reference model still in place."""
    assert output_of(run(stub, cbor2.dumps(REFERENCE_INPUT))) == REFERENCE_OUTPUT


# --- models ------------------------------------------------------------------


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def reference_model() -> bytes:
    """y = 2x + 1 on a [N, 4] float input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    a = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "a")
    b = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "b")
    nodes = [
        helper.make_node("Mul", ["x", "a"], ["t"]),
        helper.make_node("Add", ["t", "b"], ["y"]),
    ]
    return _model(helper.make_graph(nodes, "affine", [x], [y], [a, b]))


def identity_model(shape: list[Any], elem: int = TensorProto.FLOAT) -> bytes:
    x = helper.make_tensor_value_info("x", elem, shape)
    y = helper.make_tensor_value_info("y", elem, shape)
    node = helper.make_node("Identity", ["x"], ["y"])
    return _model(helper.make_graph([node], "identity", [x], [y]))


def gather_model(table: int = 4) -> bytes:
    """y = table[x] for an int64 index x of shape [1, 1]: out-of-range indices
    fail at run time, with the index in onnxruntime's message."""
    x = helper.make_tensor_value_info("x", TensorProto.INT64, [1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    data = numpy_helper.from_array(np.arange(table, dtype=np.float32), "d")
    node = helper.make_node("Gather", ["d", "x"], ["y"])
    return _model(helper.make_graph([node], "gather", [x], [y], [data]))


def runtime_failure_model() -> bytes:
    """Loads, then fails on every input: [1, M] + a vector of 3 cannot broadcast
    once M is known to be 4."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "M"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "M"])
    b = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "b")
    node = helper.make_node("Add", ["x", "b"], ["y"])
    return _model(helper.make_graph([node], "broken", [x], [y], [b]))


def slow_model(size: int = 128) -> bytes:
    """y = x after ``x`` iterations of a ``size``-square matrix product: the
    input chooses how long a run takes (about 100 µs an iteration on
    a server here), and
    onnxruntime checks its terminate flag between iterations."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    square = [size, size]
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["a_in", "w"], ["a_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("a_in", TensorProto.FLOAT, square),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("a_out", TensorProto.FLOAT, square),
        ],
    )
    true = helper.make_tensor("t", TensorProto.BOOL, [], [True])
    nodes = [
        helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["xi", "scalar"], ["m"]),
        helper.make_node("Constant", [], ["cond"], value=true),
        helper.make_node("Loop", ["m", "cond", "a0"], ["a_end"], body=body),
        helper.make_node("ReduceSum", ["a_end"], ["s"], keepdims=0),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["x", "z"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.eye(size, dtype=np.float32), "w"),
        numpy_helper.from_array(np.ones(square, dtype=np.float32), "a0"),
        numpy_helper.from_array(np.array([], dtype=np.int64), "scalar"),
        numpy_helper.from_array(np.array(0, dtype=np.float32), "zero"),
    ]
    return _model(helper.make_graph(nodes, "slow", [x], [y], inits))


def external_data_model() -> bytes:
    """A model whose weight names a file on the server (``/etc/passwd``)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    weight = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "/etc/passwd"), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Add", ["x", "w"], ["y"])
    return _model(helper.make_graph([node], "external", [x], [y], [weight]))


def external_tensor(name: str, path: str = "/etc/passwd") -> onnx.TensorProto:
    """A 4-float tensor whose data is to be read from ``path``."""
    tensor = onnx.TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[4])
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", path), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def external_data_variants() -> dict[str, bytes]:
    """Models naming a server file from each place a tensor can sit."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    out: dict[str, bytes] = {}

    constant = helper.make_node("Constant", [], ["w"], value=external_tensor("c"))
    add = helper.make_node("Add", ["x", "w"], ["y"])
    out["constant-attribute"] = _model(
        helper.make_graph([constant, add], "const", [x], [y])
    )

    branch = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["z"])],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        [external_tensor("w")],
    )
    plain = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z2"])],
        "else",
        [],
        [helper.make_tensor_value_info("z2", TensorProto.FLOAT, [1, 4])],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    if_node = helper.make_node(
        "If", ["cond"], ["y"], then_branch=branch, else_branch=plain
    )
    out["subgraph-initializer"] = _model(
        helper.make_graph([if_node], "if", [x], [y], [cond])
    )

    sparse = onnx.SparseTensorProto(dims=[4])
    sparse.values.CopyFrom(external_tensor("sv"))
    sparse.indices.CopyFrom(numpy_helper.from_array(np.arange(4, dtype=np.int64), "si"))
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "sv"], ["y"])], "sparse", [x], [y]
    )
    graph.sparse_initializer.append(sparse)
    out["sparse-initializer"] = _model(graph)

    plain_location = external_tensor("w2")
    plain_location.ClearField("data_location")  # entries without the flag
    plain_location.raw_data = np.zeros(4, dtype=np.float32).tobytes()
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w2"], ["y"])],
        "entries",
        [x],
        [y],
        [plain_location],
    )
    out["entries-without-flag"] = _model(graph)
    return out
