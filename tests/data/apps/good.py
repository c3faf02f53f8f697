#!/usr/bin/env python3
# A well-behaved application: reads its request and answers with metrics.
# collisions = seed % 2; foo echoes $FOO; leaked = 1 when a variable outside
# the allow-list (CALIPROX_TEST_SECRET) reached it.
import json, os
with open(os.environ["CALIPROX_REQUEST"]) as f:
    req = json.load(f)
print(json.dumps({"metrics": {"collisions": req["seed"] % 2, "deviation": 0.1,
                              "foo": float(os.environ.get("FOO", "-1")),
                              "leaked": 1 if "CALIPROX_TEST_SECRET" in os.environ else 0},
                  "valid": req.get("valid", True)}))
