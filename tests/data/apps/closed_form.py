#!/usr/bin/env python3
# A test application whose valid region is known in closed form: the
# network's output gets the requested Gaussian error N(bias, std), and the
# application fails when |error| > 1 happens more than 5 % of the time.
# Answers exceed = P(|N(bias, std)| > 1), exactly (deterministic), after a
# short pause ($CALIPROX_TEST_PAUSE seconds, default 0.02) so that tests can
# interrupt a job between runs. $CALIPROX_TEST_TRACE, when set, names a file
# that gets each run's start and end time and its request file (which
# says where the run ran: an MPI worker writes requests in its own folder).
import json, math, os, time
with open(os.environ["CALIPROX_REQUEST"]) as f:
    req = json.load(f)
model = req["networks"]["network"]["error_model"]
b, s = float(model.get("bias", 0)), float(model.get("std", 0))
cdf = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))
p = (1.0 if abs(b) > 1 else 0.0) if s == 0 else cdf((-1 - b) / s) + 1 - cdf((1 - b) / s)
start = time.time()
time.sleep(float(os.environ.get("CALIPROX_TEST_PAUSE", "0.02")))
if os.environ.get("CALIPROX_TEST_TRACE"):  # when this run started and ended: tests count overlapping runs
    with open(os.environ["CALIPROX_TEST_TRACE"], "a") as f:
        f.write(f"{start} {time.time()} {os.environ['CALIPROX_REQUEST']}\n")
print(json.dumps({"metrics": {"exceed": p}}))
