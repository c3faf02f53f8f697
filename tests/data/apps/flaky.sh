#!/bin/sh
# Fails on its first attempt (no $COUNTER file yet), then answers.
if [ ! -f "$COUNTER" ]; then
  touch "$COUNTER"
  kill -9 $$
fi
echo '{"metrics": {"collisions": 0, "deviation": 0.1}}'
