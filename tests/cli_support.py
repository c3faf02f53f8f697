"""What the end-to-end tests of the caliprox binary share: the binary and
source root from argv, fixtures, the test runner (@test runs a test as it is
defined; finish() prints "N passed, N failed, N skipped" and exits), and the
helpers that start it, write inputs and check errors.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

CALIPROX = os.path.abspath(sys.argv[1])
ROOT = os.path.abspath(sys.argv[2])
LENET = os.path.join(ROOT, "models", "fashion_lenet.onnx")
FIXTURES = os.path.join(ROOT, "tests", "data")
ENV = dict(os.environ, OMP_WAIT_POLICY="passive")

results = {"passed": 0, "failed": 0, "skipped": 0}


def run(*args, cwd=None, timeout=300):
    return subprocess.run([CALIPROX, *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout)


def npy_bytes(descr, shape, payload, fortran=False):
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False", "".join(f"{d}, " for d in shape))
    header = header.encode()
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def read_npy_shape(path):
    with open(path, "rb") as f:
        data = f.read()
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode()
    shape = header.split("'shape': (")[1].split(")")[0]
    return [int(x) for x in shape.split(",") if x.strip()]


def structure(value):
    """The golden form of a JSON value: keys kept, leaves replaced by type names."""
    if isinstance(value, dict):
        return {k: structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [structure(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else "null"


def golden(name):
    with open(os.path.join(FIXTURES, "golden", name)) as f:
        return json.load(f)


ONLY = os.environ.get("CALIPROX_CLI_TEST_ONLY")  # substring of the test names to run (development)


def schema_errors(value, schema, root=None, at="$"):
    """The ways `value` breaks a JSON schema (the subset schemas/ use: type,
    const, enum, required, properties, additionalProperties, items, $ref to
    #/$defs, minimum, maximum); [] when it conforms."""
    root = root or schema
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    def is_a(v, t):
        if t == "number":
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        if t == "integer":
            return isinstance(v, int) and not isinstance(v, bool)
        return isinstance(v, kinds[t])
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(is_a(value, t) for t in types):
            return [f"{at}: {value!r:.60} is not {schema['type']}"]
    if "const" in schema and value != schema["const"]:
        return [f"{at}: {value!r} is not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {schema['enum']}"]
    errors = []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{at}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        errors += [f"{at}: no '{k}'" for k in schema.get("required", []) if k not in value]
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], root, f"{at}.{k}")
            elif extra is False:
                errors.append(f"{at}: '{k}' is not allowed")
            elif isinstance(extra, dict):
                errors += schema_errors(v, extra, root, f"{at}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += schema_errors(v, schema["items"], root, f"{at}[{i}]")
    return errors


def conforms(value, schema_name):
    """Asserts that `value` conforms to schemas/<schema_name>."""
    with open(os.path.join(ROOT, "schemas", schema_name)) as f:
        errors = schema_errors(value, json.load(f))
    assert not errors, f"{schema_name}: " + "; ".join(errors[:5])


def test(fn):
    name = fn.__name__
    if ONLY and ONLY not in name:
        return fn
    try:
        fn()
    except SkipTest as e:
        results["skipped"] += 1
        print(f"SKIP {name}: {e}")
        return fn
    except AssertionError as e:
        results["failed"] += 1
        print(f"FAIL {name}: {e}")
        return fn
    results["passed"] += 1
    print(f"ok   {name}")
    return fn


class SkipTest(Exception):
    pass


def expect_error(proc, code, *needles):
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}; stderr: {proc.stderr.strip()}"
    for n in needles:
        assert n in proc.stderr, f"stderr lacks {n!r}: {proc.stderr.strip()}"
    assert proc.stdout == "", f"stdout should be empty on error, got {proc.stdout!r}"


def lenet_input(tmp, batch=2, descr="<f4"):
    size = {"<f4": 4, "<f8": 8, "<u2": 2, "<c8": 8}[descr]
    return write(os.path.join(tmp, f"x{descr[1:]}.npy"),
                 npy_bytes(descr, [batch, 1, 28, 28], b"\0" * (batch * 784 * size)))


def experiment(tmp, **overrides):
    """configs/fashion-lenet.yaml with absolute paths and some lines replaced."""
    with open(os.path.join(ROOT, "configs", "fashion-lenet.yaml")) as f:
        text = f.read().replace("../models/", os.path.join(ROOT, "models") + "/")
    for old, new in overrides.items():
        old = old.replace("__", " ")
        assert old in text, old
        text = text.replace(old, new)
    return write(os.path.join(tmp, "exp.yaml"), text)


def calibrate_experiment(tmp, points=25, pause="0.02", name="exp.yaml", jobs=1, batch=1, trace=""):
    """The LeNet experiment judged by tests/data/apps/closed_form.py, whose valid region is known."""
    app = os.path.join(ROOT, "tests", "data", "apps", "closed_form.py")
    exp = experiment(tmp)
    with open(exp) as f:
        text = f.read()
    text += (f"application:\n  command: [{app}]\n"
             f"  env: {{CALIPROX_TEST_PAUSE: '{pause}', CALIPROX_TEST_TRACE: '{trace}'}}\n"
             f"  goal: [{{metric: exceed, max: 0.05}}]\n  jobs: {jobs}\n"
             f"calibrate:\n  axes: [{{param: bias, lo: 0, hi: 1.5}}, {{param: std, lo: 0, hi: 1}}]\n"
             f"  points: {points}\n  batch: {batch}\n")
    return write(os.path.join(tmp, name), text)


SSHD = "/usr/sbin/sshd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """An sshd on 127.0.0.1 (or another loopback `address`) that accepts one throwaway key for the current user."""

    def __init__(self, tmp, address="127.0.0.1"):
        self.dir = os.path.join(tmp, "sshd")
        os.makedirs(self.dir)
        for key in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(self.dir, key)],
                           check=True)
        shutil.copy(os.path.join(self.dir, "user.pub"), os.path.join(self.dir, "authorized_keys"))
        self.port = free_port()
        config = write(os.path.join(self.dir, "sshd_config"), "\n".join([
            f"Port {self.port}", f"ListenAddress {address}", f"HostKey {self.dir}/host",
            f"AuthorizedKeysFile {self.dir}/authorized_keys", f"PidFile {self.dir}/sshd.pid",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "PermitRootLogin prohibit-password", ""]))
        os.makedirs("/run/sshd", exist_ok=True) if os.geteuid() == 0 else None
        # -D: in the foreground, so the test owns the process and stops it.
        self.proc = subprocess.Popen([SSHD, "-D", "-f", config, "-E", os.path.join(self.dir, "log")])
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex((address, self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                raise SkipTest("sshd did not start: " + open(os.path.join(self.dir, "log")).read()[-500:])
            time.sleep(0.05)
        raise SkipTest("sshd did not listen within 10 s")

    @staticmethod
    def user():
        return os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()

    def target(self, name, workdir, **extra):
        user = self.user()
        keys = {"transport": "ssh", "host": f"{user}@127.0.0.1", "port": self.port, "identity": f"{self.dir}/user",
                "ssh_options": ["-o", f"UserKnownHostsFile={self.dir}/known_hosts", "-o",
                                "StrictHostKeyChecking=accept-new"],
                "workdir": workdir, **extra}
        return f"  - name: {name}\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in keys.items())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def finish():
    print(f"{results['passed']} passed, {results['failed']} failed, {results['skipped']} skipped")
    sys.exit(1 if results["failed"] else 0)


def serve_request(path, shape, payload=None, first_sample=0, header=None):
    """One frame to `caliprox serve` (man caliprox-serve) and its reply: (header dict, floats)."""
    n = 1
    for d in shape:
        n *= d
    payload = struct.pack(f"<{n}f", *([0.0] * n)) if payload is None else payload
    h = json.dumps(header or {"inputs": [{"dtype": "float32", "shape": shape}], "first_sample": first_sample}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(struct.pack("<I", len(h)) + h + struct.pack("<Q", len(payload)) + payload)
        data = b""
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            data += b
            if len(data) >= 4:
                hn = struct.unpack("<I", data[:4])[0]
                if len(data) >= 12 + hn and len(data) >= 12 + hn + struct.unpack("<Q", data[4 + hn:12 + hn])[0]:
                    break
    hn = struct.unpack("<I", data[:4])[0]
    reply = json.loads(data[4:4 + hn])
    size = struct.unpack("<Q", data[4 + hn:12 + hn])[0]
    return reply, struct.unpack(f"<{size // 4}f", data[12 + hn:12 + hn + size])


def start_server(argv, sock, **popen):
    """A `caliprox serve` command, once its socket exists (or it exited)."""
    server = subprocess.Popen(argv, **popen)
    for _ in range(200):
        if os.path.exists(sock) or server.poll() is not None:
            break
        time.sleep(0.05)
    return server

