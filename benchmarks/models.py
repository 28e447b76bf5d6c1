"""The models the benchmarks run, built in code with fixed seeds (nothing is
downloaded)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The image CNN's input shape (batch, channels, height, width).
CNN_SHAPE = (1, 3, 480, 480)


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def image_cnn(seed: int = 0) -> bytes:
    """A small image classifier: four 3x3 convolutions with ReLU (three of them
    halving the resolution), global average pooling and a dense layer to 10
    classes: about 1.1 G multiply-adds, tens of milliseconds per 480x480 image
    on two cores."""
    rng = np.random.default_rng(seed)
    channels = [3, 32, 64, 64, 128]
    strides = [2, 2, 1, 2]
    nodes, inits, current = [], [], "x"
    for i, stride in enumerate(strides):
        c_in, c_out = channels[i], channels[i + 1]
        scale = np.sqrt(2.0 / (c_in * 9))
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * scale).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(c_out, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node(
                "Conv",
                [current, f"w{i}", f"b{i}"],
                [f"c{i}"],
                kernel_shape=[3, 3],
                strides=[stride, stride],
                pads=[1, 1, 1, 1],
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        current = f"r{i}"
    dense = (rng.standard_normal((channels[-1], 10)) * 0.1).astype(np.float32)
    inits.append(numpy_helper.from_array(dense, "dense"))
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "dense"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(CNN_SHAPE))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    return _model(helper.make_graph(nodes, "cnn", [x], [y], inits))


def large_embedding(size_bytes: int, dim: int = 256, seed: int = 0) -> bytes:
    """A model of about ``size_bytes``: one float32 embedding table looked up by
    a [1, 8] int64 input (Gather). Only the table's size matters here."""
    rows = max(1, size_bytes // (4 * dim))
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((rows, dim), dtype=np.float32)
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, dim])
    node = helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)
    init = numpy_helper.from_array(table, "table")
    return _model(helper.make_graph([node], "embedding", [ids], [y], [init]))
