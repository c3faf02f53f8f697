"""A client of `caliprox serve` (man caliprox-serve): standard library and numpy.

    from caliprox_client import Client
    with Client("/tmp/net.sock") as c:
        y = c.infer(x)  # x: float32 array [N, ...]; y: the network's output
        d = c.infer(x, network="distance")  # experiments with several networks

Frames: u32 LE header length | header (JSON) | u64 LE payload length | payload;
tensors are raw little-endian float32 in the payload. Errors raise ServeError.
"""
import json
import socket
import struct

import numpy as np


class ServeError(RuntimeError):
    pass


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def _read(self, n):
        chunks = []
        while n > 0:
            b = self.sock.recv(min(n, 1 << 20))
            if not b:
                raise ServeError("the server closed the connection")
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def infer(self, x, first_sample=0, network=None):
        """One batch in, the network's output out (numpy float32).

        `network` names the network when the experiment has several (its
        `networks:` keys); None means the only one."""
        x = np.ascontiguousarray(x, dtype="<f4")
        h = {"inputs": [{"dtype": "float32", "shape": list(x.shape)}], "first_sample": int(first_sample)}
        if network is not None:
            h["network"] = str(network)
        header = json.dumps(h).encode()
        payload = x.tobytes()
        self.sock.sendall(struct.pack("<I", len(header)) + header + struct.pack("<Q", len(payload)) + payload)
        (h,) = struct.unpack("<I", self._read(4))
        reply = json.loads(self._read(h))
        (n,) = struct.unpack("<Q", self._read(8))
        data = self._read(n)
        if "error" in reply:
            raise ServeError(reply["error"])
        out = reply["outputs"][0]
        return np.frombuffer(data, dtype="<f4").reshape(out["shape"])
