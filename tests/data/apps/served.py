#!/usr/bin/env python3
# An application that asks `caliprox serve` (the socket in its request) for
# each network's output on one fixed, non-constant 28x28 image, with the
# standard library only. Metrics: <name>_mean, the mean of each network's
# output, and diff, the largest |difference| between the first two
# networks' outputs (0 with one network). Exits 2 without a server.
import json, os, socket, struct, sys

with open(os.environ["CALIPROX_REQUEST"]) as f:
    req = json.load(f)
if not req.get("serve"):
    sys.exit("served.py: the request names no server")
image = [((i * 7919) % 255) / 255.0 for i in range(28 * 28)]


def read(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("served.py: the server closed the connection")
        data += chunk
    return data


outputs = {}
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.connect(req["serve"])
    for name in sorted(req["networks"]):
        header = json.dumps({"network": name, "inputs": [{"dtype": "float32", "shape": [1, 1, 28, 28]}]}).encode()
        payload = struct.pack(f"<{len(image)}f", *image)
        s.sendall(struct.pack("<I", len(header)) + header + struct.pack("<Q", len(payload)) + payload)
        reply = json.loads(read(s, struct.unpack("<I", read(s, 4))[0]))
        size = struct.unpack("<Q", read(s, 8))[0]
        if "error" in reply:
            sys.exit(f"served.py: {reply['error']}")
        outputs[name] = struct.unpack(f"<{size // 4}f", read(s, size))
metrics = {f"{n}_mean": sum(y) / len(y) for n, y in outputs.items()}
ys = list(outputs.values())
metrics["diff"] = max(abs(a - b) for a, b in zip(ys[0], ys[1])) if len(ys) > 1 else 0.0
print(json.dumps({"metrics": metrics}))
