"""ONNX export of the caliprox example models, plus an independent numpy check of the graph.

BatchNormalization is kept as separate nodes on purpose: caliprox's engine folds BN into the
preceding Conv itself, and the example models are where that folding is tested. torch 1.13
fuses Conv+BN in TrainingMode.EVAL (its eval peephole pass runs even with
do_constant_folding=False), so the model is exported in eval() state with
TrainingMode.PRESERVE, which leaves BN as an inference-mode BatchNormalization node.
PRESERVE exports running_mean / running_var as Identity nodes reading initializers; those are
replaced by plain initializers so the graph only holds compute nodes.

There is no onnxruntime for Debian's python here, so `check_against_numpy` evaluates the saved
graph with a small float64 numpy interpreter (only the ops these models use) and compares it
with the torch logits.
"""

import collections
import io
import json

import numpy as np
import onnx
import onnx.numpy_helper
import torch

OPSET = 13


def inline_identity_initializers(model):
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            dup = onnx.TensorProto()
            dup.CopyFrom(inits[node.input[0]])
            dup.name = node.output[0]
            graph.initializer.append(dup)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    used = {name for node in graph.node for name in node.input}
    used |= {o.name for o in graph.output}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)


def op_counts(model):
    return dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items()))


def export_onnx(model, path):
    """Export `model` (eval mode) to `path`; returns {op_type: count}."""
    model.eval()
    buf = io.BytesIO()
    torch.onnx.export(
        model, torch.zeros(2, 1, 28, 28), buf, opset_version=OPSET,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    proto = onnx.load_from_string(buf.getvalue())
    inline_identity_initializers(proto)
    proto.doc_string = "caliprox example model, Fashion-MNIST; see models/README.md"
    onnx.checker.check_model(proto, full_check=True)
    for value in list(proto.graph.input) + list(proto.graph.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        if dim0.dim_param != "N":
            raise RuntimeError(f"{path}: {value.name} dim 0 should be symbolic 'N', found {dim0}")
    for node in proto.graph.node:
        if node.op_type == "BatchNormalization" and len(node.output) != 1:
            raise RuntimeError(f"{path}: node {node.name} is a training-mode BatchNormalization")
    onnx.save(proto, path)
    return op_counts(proto)


def compact_json(data, indent=0):
    """JSON with lists of scalars on one line (reference_outputs.json stays readable)."""
    pad = " " * indent
    if isinstance(data, dict):
        items = [f'{pad} {json.dumps(k)}: {compact_json(v, indent + 1).lstrip()}'
                 for k, v in sorted(data.items())]
        return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}" + ("\n" if indent == 0 else "")
    if isinstance(data, list) and data and isinstance(data[0], list):
        rows = [compact_json(v, indent + 1) for v in data]
        return pad + "[\n" + ",\n".join(rows) + "\n" + pad + "]"
    return pad + json.dumps(data)


# ---- numpy interpreter for the ops of the example models ----------------------------------

def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _windows(x, kernel, strides, pads, dilations, fill):
    """[N,C,H,W] -> [N,C,KH,KW,OH,OW] sliding windows (pads = [top, left, bottom, right])."""
    n, c, h, w = x.shape
    xp = np.full((n, c, h + pads[0] + pads[2], w + pads[1] + pads[3]), fill, dtype=x.dtype)
    xp[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + w] = x
    oh = (xp.shape[2] - dilations[0] * (kernel[0] - 1) - 1) // strides[0] + 1
    ow = (xp.shape[3] - dilations[1] * (kernel[1] - 1) - 1) // strides[1] + 1
    out = np.empty((n, c, kernel[0], kernel[1], oh, ow), dtype=x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r0, c0 = i * dilations[0], j * dilations[1]
            out[:, :, i, j] = xp[:, :, r0:r0 + strides[0] * (oh - 1) + 1:strides[0],
                                 c0:c0 + strides[1] * (ow - 1) + 1:strides[1]]
    return out


def _conv(x, w, b, a):
    groups = a.get("group", 1)
    k = w.shape[2:]
    cols = _windows(x, k, a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0]),
                    a.get("dilations", [1, 1]), 0.0)
    n, c, _, _, oh, ow = cols.shape
    m = w.shape[0]
    cols = cols.reshape(n, groups, c // groups, k[0], k[1], oh, ow)
    wg = w.reshape(groups, m // groups, c // groups, k[0], k[1])
    y = np.einsum("ngcijhw,gmcij->ngmhw", cols, wg).reshape(n, m, oh, ow)
    return y if b is None else y + b[None, :, None, None]


def _maxpool(x, a):
    if a.get("ceil_mode", 0) or a.get("dilations", [1, 1]) != [1, 1]:
        raise NotImplementedError("MaxPool with ceil_mode or dilations")
    k = a["kernel_shape"]
    cols = _windows(x, k, a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0]), [1, 1], -np.inf)
    return cols.max(axis=(2, 3))


def _gemm(a_, b_, c_, a):
    a_ = a_.T if a.get("transA", 0) else a_
    b_ = b_.T if a.get("transB", 0) else b_
    y = a.get("alpha", 1.0) * (a_ @ b_)
    return y if c_ is None else y + a.get("beta", 1.0) * c_


def _batchnorm(x, scale, bias, mean, var, a):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = scale / np.sqrt(var + a.get("epsilon", 1e-5))
    return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)


def run_numpy(model, feed):
    """Evaluate an ONNX model in float64; supports only the ops listed in `kernels`."""
    env = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64)
           if t.data_type == onnx.TensorProto.FLOAT else onnx.numpy_helper.to_array(t)
           for t in model.graph.initializer}
    env.update(feed)
    kernels = {
        "Conv": lambda i, a: _conv(i[0], i[1], i[2] if len(i) > 2 else None, a),
        "BatchNormalization": lambda i, a: _batchnorm(*i[:5], a),
        "Relu": lambda i, a: np.maximum(i[0], 0.0),
        "MaxPool": lambda i, a: _maxpool(i[0], a),
        "Add": lambda i, a: i[0] + i[1],
        "Mul": lambda i, a: i[0] * i[1],
        "HardSigmoid": lambda i, a: np.clip(a.get("alpha", 0.2) * i[0] + a.get("beta", 0.5),
                                            0.0, 1.0),
        "HardSwish": lambda i, a: i[0] * np.clip(i[0] / 6.0 + 0.5, 0.0, 1.0),
        "GlobalAveragePool": lambda i, a: i[0].mean(axis=(2, 3), keepdims=True),
        "Flatten": lambda i, a: i[0].reshape(int(np.prod(i[0].shape[:a.get("axis", 1)])), -1),
        "Gemm": lambda i, a: _gemm(i[0], i[1], i[2] if len(i) > 2 else None, a),
        "Identity": lambda i, a: i[0],
    }
    for node in model.graph.node:
        if node.op_type not in kernels:
            raise NotImplementedError(f"numpy check: op {node.op_type} (node {node.name})")
        inputs = [env[name] if name else None for name in node.input]
        env[node.output[0]] = kernels[node.op_type](inputs, _attrs(node))
    return [env[o.name] for o in model.graph.output]


def check_against_numpy(path, inputs, torch_logits, tolerance=1e-3):
    """Run the saved ONNX graph with numpy at batch 1 and at the full batch; compare to torch."""
    model = onnx.load(path)
    name = model.graph.input[0].name
    full = run_numpy(model, {name: inputs.astype(np.float64)})[0]
    single = run_numpy(model, {name: inputs[:1].astype(np.float64)})[0]
    diff = max(np.abs(full - torch_logits).max(), np.abs(single - torch_logits[:1]).max())
    if not diff <= tolerance or not np.array_equal(full.argmax(1), torch_logits.argmax(1)):
        raise RuntimeError(f"{path}: ONNX graph (numpy) differs from torch: max |diff| {diff}")
    return float(diff)
