"""Fine-tuning an ONNX network in PyTorch without changing its structure.

The fine-tune hooks (models/finetune.py, examples/rowfollow/finetune.py) receive a pruned
network from `caliprox export --finetune` (or `eval --finetune`) as an ONNX file and must
return one with the same nodes, op types, initializer names and shapes. This module makes that
hold by construction: it reads the file's protobuf wire format itself (no python3-onnx needed),
runs the graph as a torch module whose float weights are parameters (`OnnxModule`), and writes
the trained values back into a copy of the same file, every other byte of which is kept
(`write_weights`). `check_plan` compares the plan caliprox wrote (schemas/prune-plan.schema.json)
with the model, and `fit` is the training loop both hooks share.
"""

import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---- protobuf wire format -----------------------------------------------------------------

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


class FormatError(ValueError):
    pass


def _varint(buf, pos):
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise FormatError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise FormatError("varint longer than 10 bytes")


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _encode_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def fields(buf):
    """[(field number, wire type, value, raw bytes of the whole field)] of a message."""
    out, pos = [], 0
    while pos < len(buf):
        start = pos
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire == FIXED64:
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wire == FIXED32:
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        elif wire == BYTES:
            size, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + size]), pos + size
        else:
            raise FormatError(f"wire type {wire} (field {number}) is not used by ONNX")
        if pos > len(buf):
            raise FormatError(f"field {number} runs past the end of its message")
        out.append((number, wire, value, bytes(buf[start:pos])))
    return out


def _bytes_field(number, payload):
    return _encode_varint(number << 3 | BYTES) + _encode_varint(len(payload)) + payload


def _repeated_ints(entries):
    """Values of a repeated integer field, packed or not."""
    values = []
    for _, wire, value, _ in entries:
        if wire == VARINT:
            values.append(_signed(value))
            continue
        pos = 0
        while pos < len(value):
            v, pos = _varint(value, pos)
            values.append(_signed(v))
    return values


def _repeated_fixed(entries, fmt):
    size = struct.calcsize(fmt)
    values = []
    for _, wire, value, _ in entries:
        values.extend(struct.unpack(f"<{len(value) // size}{fmt}", value))
    return values


def _by_number(msg_fields, number):
    return [f for f in msg_fields if f[0] == number]


def _string(msg_fields, number, default=""):
    found = _by_number(msg_fields, number)
    return found[-1][2].decode() if found else default


def _int(msg_fields, number, default=0):
    found = _by_number(msg_fields, number)
    return _signed(found[-1][2]) if found else default


# ---- ONNX messages (field numbers of onnx/onnx.proto) ------------------------------------

# TensorProto.DataType -> numpy dtype, and the typed field a value may be stored in.
DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_, 11: np.float64}
FLOAT = 1


def read_tensor(buf):
    """A TensorProto as (name, numpy array)."""
    f = fields(buf)
    name = _string(f, 8)
    dims = _repeated_ints(_by_number(f, 1))
    data_type = _int(f, 2)
    if data_type not in DTYPES:
        raise FormatError(f"initializer '{name}': element type {data_type} is not handled here")
    if _int(f, 14) == 1 or _by_number(f, 13):
        raise FormatError(f"initializer '{name}': external data is not handled here")
    dtype = np.dtype(DTYPES[data_type]).newbyteorder("<")
    raw = _by_number(f, 9)
    if raw:
        array = np.frombuffer(raw[-1][2], dtype=dtype)
    elif data_type == 1:
        array = np.array(_repeated_fixed(_by_number(f, 4), "f"), dtype=np.float32)
    elif data_type == 11:
        array = np.array(_repeated_fixed(_by_number(f, 10), "d"), dtype=np.float64)
    elif data_type == 7:
        array = np.array(_repeated_ints(_by_number(f, 7)), dtype=np.int64)
    else:
        array = np.array(_repeated_ints(_by_number(f, 5)), dtype=dtype)
    if array.size != math.prod(dims):
        raise FormatError(f"initializer '{name}': {array.size} values for shape {dims}")
    return name, array.reshape(dims).astype(dtype.newbyteorder("="))


def _attribute(buf):
    f = fields(buf)
    name, kind = _string(f, 1), _int(f, 20)
    if kind == 1 or (kind == 0 and _by_number(f, 2)):
        return name, struct.unpack("<f", _by_number(f, 2)[-1][2])[0]
    if kind == 2 or (kind == 0 and _by_number(f, 3)):
        return name, _int(f, 3)
    if kind == 3:
        return name, _by_number(f, 4)[-1][2].decode()
    if kind == 4:
        return name, read_tensor(_by_number(f, 5)[-1][2])[1]
    if kind == 6:
        return name, _repeated_fixed(_by_number(f, 7), "f")
    if kind == 7:
        return name, _repeated_ints(_by_number(f, 8))
    if kind == 8:
        return name, [v[2].decode() for v in _by_number(f, 9)]
    raise FormatError(f"attribute '{name}': kind {kind} is not handled here")


class Node:
    def __init__(self, buf):
        f = fields(buf)
        self.inputs = [v[2].decode() for v in _by_number(f, 1)]
        self.outputs = [v[2].decode() for v in _by_number(f, 2)]
        self.name = _string(f, 3)
        self.op_type = _string(f, 4)
        self.domain = _string(f, 7)
        self.attrs = dict(_attribute(v[2]) for v in _by_number(f, 5))


def _value_info(buf):
    """(name, [dims: int or symbol string])."""
    f = fields(buf)
    dims = []
    for t in _by_number(f, 2):                         # type
        for tensor in _by_number(fields(t[2]), 1):     # tensor_type
            for shape in _by_number(fields(tensor[2]), 2):
                for d in _by_number(fields(shape[2]), 1):
                    df = fields(d[2])
                    dims.append(_int(df, 1) if _by_number(df, 1) else _string(df, 2, "?"))
    return _string(f, 1), dims


class Model:
    """The parts of an ONNX ModelProto the hooks use, and its bytes for write_weights."""

    def __init__(self, path):
        with open(path, "rb") as fh:
            self.bytes = fh.read()
        self.path = path
        try:
            graphs = _by_number(fields(self.bytes), 7)
            if not graphs:
                raise FormatError("no graph")
            g = fields(graphs[-1][2])
            self.nodes = [Node(v[2]) for v in _by_number(g, 1)]
            self.initializers = dict(read_tensor(v[2]) for v in _by_number(g, 5))
            self.inputs = [vi for vi in (_value_info(v[2]) for v in _by_number(g, 11))
                           if vi[0] not in self.initializers]
            self.outputs = [_value_info(v[2]) for v in _by_number(g, 12)]
        except (FormatError, struct.error, UnicodeDecodeError) as e:
            raise FormatError(f"{path}: not an ONNX model this reader handles: {e}") from None
        for n in self.nodes:
            if n.domain not in ("", "ai.onnx"):
                raise FormatError(f"{path}: node '{n.name}' is in domain '{n.domain}'")

    def node(self, name):
        return next((n for n in self.nodes if n.name == name), None)


def write_weights(model, values, path):
    """A copy of `model` at `path` in which the float32 initializers named in `values` hold
    those arrays (same shapes); every other byte of the file is unchanged. Written to a
    temporary file first and renamed, so `path` never holds half a model."""
    out_model = []
    for number, wire, value, raw in fields(model.bytes):
        if number != 7:
            out_model.append(raw)
            continue
        graph = []
        for g_number, _, g_value, g_raw in fields(value):
            name = _string(fields(g_value), 8) if g_number == 5 else None
            if name not in values:
                graph.append(g_raw)
                continue
            old = model.initializers[name]
            new = np.ascontiguousarray(values[name], dtype="<f4")
            if old.dtype != np.float32 or new.shape != old.shape:
                raise ValueError(f"initializer '{name}': {new.shape} float32 cannot replace {old.shape} {old.dtype}")
            kept = [raw_t for n, _, _, raw_t in fields(g_value) if n not in (4, 5, 7, 9, 10, 11, 13, 14)]
            graph.append(_bytes_field(5, b"".join(kept) + _bytes_field(9, new.tobytes())))
        out_model.append(_bytes_field(7, b"".join(graph)))
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(b"".join(out_model))
    os.replace(tmp, path)


# ---- the graph as a torch module ----------------------------------------------------------

def _pads2d(node, name="pads"):
    pads = node.attrs.get(name, [0, 0, 0, 0])
    if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise NotImplementedError(f"node '{node.name}': auto_pad {node.attrs['auto_pad']}")
    return pads


def _padded(x, pads, fill):
    """(input, symmetric padding for torch): asymmetric pads are applied here."""
    top, left, bottom, right = pads
    if top == bottom and left == right:
        return x, (top, left)
    return F.pad(x, (left, right, top, bottom), value=fill), (0, 0)


def _conv(m, node, i):
    x, pad = _padded(i[0], _pads2d(node), 0.0)
    return F.conv2d(x, i[1], i[2] if len(i) > 2 else None, node.attrs.get("strides", [1, 1]), pad,
                    node.attrs.get("dilations", [1, 1]), node.attrs.get("group", 1))


def _batch_norm(m, node, i):
    train = m.training and m.bn_mode == "train"
    return F.batch_norm(i[0], i[3], i[4], i[1], i[2], training=train, momentum=m.bn_momentum,
                        eps=node.attrs.get("epsilon", 1e-5))


def _max_pool(m, node, i):
    x, pad = _padded(i[0], _pads2d(node), float("-inf"))
    k = node.attrs["kernel_shape"]
    return F.max_pool2d(x, k, node.attrs.get("strides", [1, 1]), pad, node.attrs.get("dilations", [1, 1]),
                        ceil_mode=bool(node.attrs.get("ceil_mode", 0)))


def _avg_pool(m, node, i):
    pads = _pads2d(node)
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise NotImplementedError(f"node '{node.name}': asymmetric AveragePool pads")
    return F.avg_pool2d(i[0], node.attrs["kernel_shape"], node.attrs.get("strides", [1, 1]), (pads[0], pads[1]),
                        ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
                        count_include_pad=bool(node.attrs.get("count_include_pad", 0)))


def _gemm(m, node, i):
    a = i[0].t() if node.attrs.get("transA", 0) else i[0]
    b = i[1].t() if node.attrs.get("transB", 0) else i[1]
    y = node.attrs.get("alpha", 1.0) * (a @ b)
    return y if len(i) < 3 or i[2] is None else y + node.attrs.get("beta", 1.0) * i[2]


def _reshape(m, node, i):
    shape = [int(v) for v in i[1].tolist()]
    if not node.attrs.get("allowzero", 0):
        shape = [i[0].shape[k] if v == 0 else v for k, v in enumerate(shape)]
    return i[0].reshape(shape)


def _clip(m, node, i):
    lo = i[1] if len(i) > 1 and i[1] is not None else node.attrs.get("min")
    hi = i[2] if len(i) > 2 and i[2] is not None else node.attrs.get("max")
    return torch.clamp(i[0], None if lo is None else float(lo), None if hi is None else float(hi))


def _flatten(m, node, i):
    axis = node.attrs.get("axis", 1)
    return i[0].reshape(math.prod(i[0].shape[:axis]), -1)


OPS = {
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "Relu": lambda m, n, i: torch.relu(i[0]),
    "LeakyRelu": lambda m, n, i: F.leaky_relu(i[0], n.attrs.get("alpha", 0.01)),
    "Sigmoid": lambda m, n, i: torch.sigmoid(i[0]),
    "Tanh": lambda m, n, i: torch.tanh(i[0]),
    "HardSigmoid": lambda m, n, i: torch.clamp(n.attrs.get("alpha", 0.2) * i[0] + n.attrs.get("beta", 0.5), 0, 1),
    "HardSwish": lambda m, n, i: F.hardswish(i[0]),
    "Clip": _clip,
    "MaxPool": _max_pool,
    "AveragePool": _avg_pool,
    "GlobalAveragePool": lambda m, n, i: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "Add": lambda m, n, i: i[0] + i[1],
    "Sub": lambda m, n, i: i[0] - i[1],
    "Mul": lambda m, n, i: i[0] * i[1],
    "Div": lambda m, n, i: i[0] / i[1],
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Gemm": _gemm,
    "MatMul": lambda m, n, i: torch.matmul(i[0], i[1]),
    "Concat": lambda m, n, i: torch.cat(i, dim=n.attrs["axis"]),
    "Softmax": lambda m, n, i: torch.softmax(i[0], dim=n.attrs.get("axis", -1)),
    "Identity": lambda m, n, i: i[0],
    "Dropout": lambda m, n, i: i[0],
}

# Inputs that hold trained weights: (op type, input index). Other float initializers
# (BatchNormalization's statistics, Clip bounds, ...) are not trained by gradient.
TRAINED = {("Conv", 1), ("Conv", 2), ("Gemm", 1), ("Gemm", 2), ("MatMul", 0), ("MatMul", 1),
           ("BatchNormalization", 1), ("BatchNormalization", 2)}
BN_STATISTICS = {("BatchNormalization", 3), ("BatchNormalization", 4)}


class OnnxModule(torch.nn.Module):
    """The ONNX graph of `model` as a torch module: weights (TRAINED) are parameters, the
    other initializers buffers. bn_mode "train": BatchNormalization normalises with batch
    statistics while training and updates its running statistics (momentum bn_momentum), which
    are written back too; "frozen": it always uses the stored statistics."""

    def __init__(self, model, bn_mode="train", bn_momentum=0.1):
        super().__init__()
        unknown = sorted({n.op_type for n in model.nodes} - set(OPS))
        if unknown:
            raise NotImplementedError(f"{model.path}: ops {unknown} are not interpreted here")
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(f"{model.path}: expected one input and one output, found {len(model.inputs)} "
                             f"and {len(model.outputs)}")
        self.nodes, self.bn_mode, self.bn_momentum = model.nodes, bn_mode, bn_momentum
        self.input_name, self.output_name = model.inputs[0][0], model.outputs[0][0]
        roles = {((n.op_type, k), name) for n in model.nodes for k, name in enumerate(n.inputs)}
        trained = {name for role, name in roles if role in TRAINED}
        self.statistics = {name for role, name in roles if role in BN_STATISTICS} if bn_mode == "train" else set()
        self.keys = {}
        self.weights = torch.nn.ParameterDict()
        for k, (name, value) in enumerate(model.initializers.items()):
            key = f"t{k}"
            self.keys[name] = key
            tensor = torch.from_numpy(np.array(value))
            if name in trained and value.dtype == np.float32:
                self.weights[key] = torch.nn.Parameter(tensor)
            else:
                self.register_buffer(key, tensor)

    def value(self, name):
        key = self.keys[name]
        return self.weights[key] if key in self.weights else getattr(self, key)

    def forward(self, x):
        env = {self.input_name: x}
        for node in self.nodes:
            inputs = [None if not name else env[name] if name in env else self.value(name) for name in node.inputs]
            env[node.outputs[0]] = OPS[node.op_type](self, node, inputs)
        return env[self.output_name]

    def trained_values(self):
        """name -> float32 array of every trained weight (and BN statistic in train mode)."""
        names = [n for n, key in self.keys.items() if key in self.weights or n in self.statistics]
        return {n: self.value(n).detach().numpy().astype(np.float32) for n in names}


# ---- the plan caliprox wrote -----------------------------------------------------------------

def _channels_in(model, name, replaced):
    """Input channels (Conv) or features (Gemm) of node `name`; for a node a later lowrank step
    factorised, of the node the factorisation put before it ("<name>/...")."""
    node = model.node(name)
    if name in replaced:
        node = next((n for n in model.nodes if n.name.startswith(name + "/")), None)
    if node is None:
        return None, None
    w = model.initializers.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if w is None:
        return node, None
    if node.op_type == "Conv":
        return node, w.shape[1] * node.attrs.get("group", 1)
    return node, w.shape[1] if node.attrs.get("transB", 0) else w.shape[0]


def check_plan(plan, model):
    """Raises ValueError saying how `plan` (a caliprox prune plan) and `model` disagree."""
    if plan.get("format") != "caliprox-prune-plan" or plan.get("version") != 1:
        raise ValueError("the plan is not a caliprox-prune-plan of version 1")
    steps = plan.get("steps", [])
    replaced = {s["node"] for s in steps if s["kind"] == "lowrank"}
    for s in steps:
        if s["kind"] != "prune":
            continue
        keep, channels = s["keep"], s["channels"]
        where = f"plan step {s['node']} ({s['knob']})"
        if not keep or sorted(set(keep)) != keep or keep[0] < 0 or keep[-1] >= channels:
            raise ValueError(f"{where}: keep must be increasing channel indices below {channels}")
        for name in s["members"]:
            node = model.node(name)
            w = model.initializers.get(node.inputs[1]) if node and len(node.inputs) > 1 else None
            if node is None or node.op_type != "Conv" or w is None:
                raise ValueError(f"{where}: member {name} is not a Conv with a stored weight in {model.path}")
            if w.shape[0] != len(keep):
                raise ValueError(f"{where}: member {name} has {w.shape[0]} output channels, the plan keeps {len(keep)}")
        for name in s["batch_norms"]:
            node = model.node(name)
            if node is None or node.op_type != "BatchNormalization":
                raise ValueError(f"{where}: {name} is not a BatchNormalization in {model.path}")
            size = model.initializers[node.inputs[1]].shape[0]
            if size != len(keep):
                raise ValueError(f"{where}: {name} normalises {size} channels, the plan keeps {len(keep)}")
        for name in s["conv_ends"] + s["gemm_ends"]:
            node, width = _channels_in(model, name, replaced)
            if node is None or width is None:
                raise ValueError(f"{where}: end {name} is missing from {model.path}")
            ok = width == len(keep) if name in s["conv_ends"] else width % len(keep) == 0
            if not ok:
                raise ValueError(f"{where}: {node.name} reads {width} channels or features; the plan keeps "
                                 f"{len(keep)} of {channels}")


# ---- what every hook does -------------------------------------------------------------------

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def add_hook_arguments(ap):
    """The arguments caliprox passes every hook (the experiment's finetune command)."""
    ap.add_argument("--plan", required=True, help="the prune plan caliprox wrote ({plan})")
    ap.add_argument("--model", required=True, help="the pruned network, ONNX ({model})")
    ap.add_argument("--out", required=True, help="where the fine-tuned network goes, ONNX ({out})")
    ap.add_argument("--seed", type=int, default=1, help="of torch and of the training data's draws")
    ap.add_argument("--threads", type=int, default=2, help="torch's")


def load_checked(args, bn_mode="train"):
    """(plan, Model, OnnxModule) of a hook's --plan and --model, the plan checked against the
    model, torch seeded and threaded; None after saying why on stderr."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        with open(args.plan) as f:
            plan = json.load(f)
        model = Model(args.model)
        check_plan(plan, model)
        return plan, model, OnnxModule(model, bn_mode)
    except (OSError, ValueError, KeyError, NotImplementedError) as e:
        log(f"{os.path.basename(sys.argv[0])}: {e}")
        return None


# ---- training -----------------------------------------------------------------------------


def fit(module, batches, steps_per_epoch, loss_fn, epochs, lr, weight_decay=0.0, log_every=50):
    """Adam with a cosine decay to zero over all steps. `batches(epoch)` yields steps_per_epoch
    (x, y) pairs."""
    steps = max(1, epochs * steps_per_epoch)
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))
    t0, step = time.time(), 0
    for epoch in range(epochs):
        module.train()
        total, count = 0.0, 0
        for x, y in batches(epoch):
            loss = loss_fn(module(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, count, step = total + float(loss), count + 1, step + 1
            if step % log_every == 0:
                log(f"  step {step}/{steps} loss {total / count:.4f} ({time.time() - t0:.0f} s)")
        log(f"  epoch {epoch + 1}/{epochs}: mean loss {total / max(count, 1):.4f} ({time.time() - t0:.0f} s)")
    module.eval()
    return module


def save_checked(module, model, path, probe):
    """Writes the trained weights into a copy of `model` at `path`, reads it back and checks
    that it computes what the module computes on `probe` (an input batch)."""
    write_weights(model, module.trained_values(), path)
    again = OnnxModule(Model(path), module.bn_mode).eval()
    module.eval()
    with torch.no_grad():
        a, b = module(probe), again(probe)
    diff = float((a - b).abs().max())
    if not diff <= 1e-5 * max(1.0, float(a.abs().max())):
        os.remove(path)
        raise RuntimeError(f"{path}: the written model differs from the trained one by {diff}")
