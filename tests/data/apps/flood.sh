#!/bin/sh
# 100 MB on stdout.
yes '{"metrics": {"collisions": 0}}' | head -c 100000000
