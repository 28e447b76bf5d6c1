"""Small ONNX models built in code for the tests (no download)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def affine_model(
    n: int = 4,
    scale: float = 2.0,
    bias: float = 1.0,
    elem: int = TensorProto.FLOAT,
    batch: str | int = "N",
) -> bytes:
    """y = scale * x + bias on a [batch, n] input of element type ``elem``."""
    np_type = helper.tensor_dtype_to_np_dtype(elem)
    x = helper.make_tensor_value_info("x", elem, [batch, n])
    y = helper.make_tensor_value_info("y", elem, [batch, n])
    a = numpy_helper.from_array(np.array(scale, dtype=np_type), "a")
    b = numpy_helper.from_array(np.array(bias, dtype=np_type), "b")
    nodes = [
        helper.make_node("Mul", ["x", "a"], ["t"]),
        helper.make_node("Add", ["t", "b"], ["y"]),
    ]
    return _model(helper.make_graph(nodes, "affine", [x], [y], [a, b]))


def identity_model(shape: list, elem: int = TensorProto.FLOAT) -> bytes:
    x = helper.make_tensor_value_info("x", elem, shape)
    y = helper.make_tensor_value_info("y", elem, shape)
    node = helper.make_node("Identity", ["x"], ["y"])
    return _model(helper.make_graph([node], "identity", [x], [y]))


def cast_model(n: int, elem_in: int, elem_out: int) -> bytes:
    x = helper.make_tensor_value_info("x", elem_in, [1, n])
    y = helper.make_tensor_value_info("y", elem_out, [1, n])
    node = helper.make_node("Cast", ["x"], ["y"], to=elem_out)
    return _model(helper.make_graph([node], "cast", [x], [y]))


def two_input_model() -> bytes:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    node = helper.make_node("Add", ["a", "b"], ["y"])
    return _model(helper.make_graph([node], "add2", [a, b], [y]))
