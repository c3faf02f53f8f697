#!/usr/bin/python3
"""Regenerates the ONNX importer fixtures in this folder (run with Debian's
/usr/bin/python3 and python3-onnx). Each file is a few hundred bytes.

external_ok/model.onnx       Y = X + W, W (float32 [2, 3]) stored in weights.bin at offset 8
external_ok/weights.bin      8 padding bytes, then W = 0.5, 1.5, ..., 5.5
external_escape/model.onnx   same graph, but W's location is ../external_ok/weights.bin
truncated.onnx               external_escape/model.onnx cut in the middle of the graph
unsupported_op.onnx          X -> Relu -> Unique (an op caliprox does not implement) -> Y
negative_dim.onnx            Y = X + W with W declared as [2, -3]
absurd_dim.onnx              Y = X + W with W declared as [2^31, 2^31, 2^31] (no data)
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def model_with_external_w(location, offset):
    w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[2, 3])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", "24")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"], name="add")],
        "external",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 3])],
        initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def add_model_with_w(w):
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"], name="add")],
        "bad_dims",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 3])],
        initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def main():
    os.makedirs(os.path.join(HERE, "external_ok"), exist_ok=True)
    os.makedirs(os.path.join(HERE, "external_escape"), exist_ok=True)
    weights = np.arange(6, dtype="<f4") + np.float32(0.5)
    with open(os.path.join(HERE, "external_ok", "weights.bin"), "wb") as f:
        f.write(b"\0" * 8 + weights.tobytes())
    onnx.save(model_with_external_w("weights.bin", 8), os.path.join(HERE, "external_ok", "model.onnx"))
    escaping = model_with_external_w("../external_ok/weights.bin", 8)
    onnx.save(escaping, os.path.join(HERE, "external_escape", "model.onnx"))
    data = escaping.SerializeToString()
    with open(os.path.join(HERE, "truncated.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])

    unsupported = helper.make_graph(
        [helper.make_node("Relu", ["X"], ["R"], name="relu"),
         helper.make_node("Unique", ["R"], ["Y"], name="unique")],
        "unsupported",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(unsupported, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(HERE, "unsupported_op.onnx"))
    negative = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[2, -3])
    negative.float_data.extend([0.0] * 6)
    onnx.save(add_model_with_w(negative), os.path.join(HERE, "negative_dim.onnx"))
    absurd = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[2**31, 2**31, 2**31])
    onnx.save(add_model_with_w(absurd), os.path.join(HERE, "absurd_dim.onnx"))


if __name__ == "__main__":
    main()
