#!/bin/sh
# Leaves a child behind and hangs: writes both pids to $PIDS first.
sleep 1000 &
echo "$$ $!" > "$PIDS"
sleep 1000
