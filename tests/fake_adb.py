#!/usr/bin/env python3
"""A stand-in for `adb`, for tests/cli_deploy_test.py: no Android device or
emulator can be reached here. It implements the part of adb's command line
that `caliprox deploy` uses, with adb's exit codes and error messages:

  adb [-s SERIAL] push LOCAL REMOTE     copy a file to the "device"
  adb [-s SERIAL] pull REMOTE/. LOCAL   copy a folder's contents back
  adb [-s SERIAL] shell COMMAND         run COMMAND with /bin/sh, exit status passed on

The "device" is this machine's file system (remote paths are real paths).
Its state comes from fake_adb.json beside the `adb` link that runs this
script (caliprox passes no test variables to the programs it runs):
{"serial": "...", "offline": false}. With -s naming another serial, or
offline, it fails as adb does ("device '...' not found" / "device offline",
exit 1).
"""
import json
import os
import shutil
import subprocess
import sys


def fail(message):
    print(f"adb: error: {message}", file=sys.stderr)
    sys.exit(1)


def main(args):
    conf_path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "fake_adb.json")
    conf = json.load(open(conf_path)) if os.path.exists(conf_path) else {}
    serial = conf.get("serial", "emulator-5554")
    if args[:1] == ["-s"]:
        if len(args) < 2:
            fail("-s requires an argument")
        if args[1] != serial:
            fail(f"device '{args[1]}' not found")
        args = args[2:]
    if conf.get("offline"):
        fail("device offline")
    if not args:
        fail("no command")
    cmd, rest = args[0], args[1:]
    if cmd == "push" and len(rest) == 2:
        try:
            shutil.copyfile(rest[0], rest[1])
        except OSError as e:
            fail(f"failed to copy '{rest[0]}' to '{rest[1]}': {e.strerror}")
        print(f"{rest[0]}: 1 file pushed.")
        return 0
    if cmd == "pull" and len(rest) == 2:
        src = rest[0][:-2] if rest[0].endswith("/.") else rest[0]
        if not os.path.isdir(src):
            fail(f"remote object '{rest[0]}' does not exist")
        shutil.copytree(src, rest[1], dirs_exist_ok=True)
        print(f"{rest[0]}: pulled.")
        return 0
    if cmd == "shell" and rest:
        return subprocess.run(["/bin/sh", "-c", " ".join(rest)]).returncode
    fail(f"unknown command {' '.join(args)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
