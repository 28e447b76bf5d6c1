"""Inference runs off the gRPC loop: a long run does not hold up other calls.

No timed assertions: each test checks an order of events (an answer arrived
while the long run was still in progress), which holds on any machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support import attestation_stub, connect_sim

from blindai.pb import untrusted_pb2
from blindai.server.launcher import LocalServer

SIDE = 768


def slow_model(trips: int) -> bytes:
    """ReduceSum(x · x · ... · x), ``trips`` matrix products of SIDE×SIDE: a
    few seconds on two cores for a 3 MB input and a one-number output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [SIDE, SIDE])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["v_in", "x"], ["prod"]),
            helper.make_node("Mul", ["prod", "scale"], ["v_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [SIDE, SIDE]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [SIDE, SIDE]),
        ],
    )
    inits = [
        numpy_helper.from_array(np.array(trips, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "true"),
        numpy_helper.from_array(np.array(1.0, np.float32), "scale"),
    ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    nodes = [
        helper.make_node("Loop", ["trips", "true", "x"], ["v"], body=body),
        helper.make_node("ReduceSum", ["v"], ["sum"], keepdims=0),
        helper.make_node("Reshape", ["sum", "one"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "slow", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(["--simulation"]) as running:
        yield running


def _trips_for_seconds(seconds: float) -> int:
    """Matrix products that take about ``seconds`` here, measured in-process."""
    import onnxruntime as ort

    x = np.eye(SIDE, dtype=np.float32)
    session = ort.InferenceSession(slow_model(4))
    session.run(None, {"x": x})
    started = time.perf_counter()
    session.run(None, {"x": x})
    per_trip = (time.perf_counter() - started) / 4
    return max(8, int(seconds / max(per_trip, 1e-4)))


def test_server_info_answers_while_a_long_inference_runs(server):
    trips = _trips_for_seconds(3.0)
    x = np.eye(SIDE, dtype=np.float32)
    with connect_sim(server) as client:
        client.upload_model(slow_model(trips), shape=(SIDE, SIDE))
        result: list[object] = []
        run = threading.Thread(target=lambda: result.append(client.run_model(x)))
        stub, channel = attestation_stub(server)
        with channel:
            stub.GetServerInfo(untrusted_pb2.GetServerInfoRequest(), timeout=10)
            run.start()
            time.sleep(0.3)  # let the run reach onnxruntime
            answers = 0
            while run.is_alive() and answers < 5:
                reply = stub.GetServerInfo(
                    untrusted_pb2.GetServerInfoRequest(), timeout=30
                )
                assert reply.version.startswith("0.3")
                if run.is_alive():
                    answers += 1
        run.join(timeout=120)
    assert answers >= 1, "GetServerInfo never answered during the inference"
    (response,) = result
    assert response.output == pytest.approx([float(SIDE)], rel=1e-3)
