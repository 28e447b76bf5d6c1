"""Uploads: written to a private in-memory file while onnxruntime loads them,
checked for external-data references without building a ``ModelProto``."""

from __future__ import annotations

import hashlib
import stat

import numpy as np
import onnx
import pytest
from models import affine_model
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import uses_external_data
from support import connect_sim

from blindai.server.launcher import LocalServer
from blindai.server.upload import (
    ModelFormatError,
    ModelWriter,
    ReceivedModel,
    check_no_external_data,
)


def _external(tensor: onnx.TensorProto, location: str = "/etc/passwd") -> None:
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location


def _weight(name: str = "w") -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones((1, 2), np.float32), name)


def _graph(nodes, initializers=(), name="g") -> onnx.GraphProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    return helper.make_graph(nodes, name, [x], [y], list(initializers))


def _bytes(graph: onnx.GraphProto, functions=()) -> bytes:
    model = helper.make_model(
        graph,
        functions=list(functions),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
    )
    return model.SerializeToString()


def _initializer_model() -> bytes:
    weight = _weight()
    _external(weight)
    return _bytes(_graph([helper.make_node("Add", ["x", "w"], ["y"])], [weight]))


def _constant_node_model() -> bytes:
    weight = _weight("c")
    _external(weight)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=weight),
        helper.make_node("Add", ["x", "w"], ["y"]),
    ]
    return _bytes(_graph(nodes))


def _subgraph_model() -> bytes:
    weight = _weight("inner")
    _external(weight)
    out = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2])
    branch = helper.make_graph(
        [helper.make_node("Identity", ["inner"], ["z"])], "branch", [], [out], [weight]
    )
    plain = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z"])], "plain", [], [out]
    )
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Cast", ["s"], ["cond"], to=TensorProto.BOOL),
        helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=plain),
    ]
    return _bytes(_graph(nodes))


def _function_model() -> bytes:
    weight = _weight("f")
    _external(weight)
    function = helper.make_function(
        "local",
        "AddConst",
        ["a"],
        ["b"],
        [
            helper.make_node("Constant", [], ["k"], value=weight),
            helper.make_node("Add", ["a", "k"], ["b"]),
        ],
        [helper.make_opsetid("", 17)],
    )
    node = helper.make_node("AddConst", ["x"], ["y"], domain="local")
    return _bytes(_graph([node]), functions=[function])


@pytest.mark.parametrize(
    "build",
    [_initializer_model, _constant_node_model, _subgraph_model, _function_model],
)
def test_attack_external_data_anywhere_in_the_model_is_refused(build, tmp_path):
    data = build()
    with pytest.raises(ModelFormatError, match="refers to external data"):
        check_no_external_data(ReceivedModel.of_bytes(data))
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelFormatError, match="refers to external data"):
        check_no_external_data(ReceivedModel(b"", len(data), path=path))


def test_the_header_walk_agrees_with_onnx_on_a_plain_model():
    data = affine_model()
    proto = onnx.load_from_string(data)
    assert not any(uses_external_data(t) for t in proto.graph.initializer)
    check_no_external_data(ReceivedModel.of_bytes(data))


@pytest.mark.parametrize(
    "data", [affine_model()[:-3], b"\x3a\xff\xff\xff\xff\x0f", b"\x0b\x00"]
)
def test_attack_truncated_or_malformed_protobuf_is_refused(data):
    with pytest.raises(ModelFormatError, match="protobuf parse failed"):
        check_no_external_data(ReceivedModel.of_bytes(data))


def test_the_upload_file_is_private_and_deleted(tmp_path):
    data = affine_model()
    writer = ModelWriter(len(data), tmp_path)
    writer.write(data[:10])
    writer.write(data[10:])
    received = writer.finish()
    assert received.path is not None and received.path.parent == tmp_path
    assert stat.S_IMODE(received.path.stat().st_mode) == 0o600
    assert received.path.read_bytes() == data
    assert received.sha256 == hashlib.sha256(data).digest()
    received.discard()
    assert list(tmp_path.iterdir()) == []
    aborted = ModelWriter(len(data), tmp_path)
    aborted.write(data[:5])
    aborted.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model_dir", ["dir", "none"])
def test_uploads_load_from_the_model_dir_and_leave_nothing_behind(tmp_path, model_dir):
    target = str(tmp_path) if model_dir == "dir" else "none"
    with LocalServer(["--simulation", "--model-dir", target]) as server:
        with connect_sim(server) as client:
            upload = client.upload_model(affine_model(n=3), shape=(1, 3), sign=True)
            assert upload.model_hash == hashlib.sha256(affine_model(n=3)).digest()
            assert client.run_model([[1.0, 2.0, 3.0]]).output == [3.0, 5.0, 7.0]
            with pytest.raises(ConnectionError, match="external data"):
                client.upload_model(_initializer_model(), shape=(1, 2))
        assert list(tmp_path.iterdir()) == []


def test_model_loads_from_its_file_when_pipes_are_not_allowed(tmp_path):
    """Hardware mode loads from the in-enclave tmpfs file, never via a pipe."""
    from models import affine_model

    from blindai.server import upload

    data = affine_model()
    writer = upload.ModelWriter(len(data), tmp_path)
    writer.write(data)
    received = writer.finish()
    seen = []
    upload.create_session(received, seen.append)
    received.discard()
    assert seen == [str(received.path)]
    assert not list(tmp_path.iterdir())
