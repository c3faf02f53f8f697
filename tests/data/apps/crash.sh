#!/bin/sh
# Writes half a reply, complains and fails.
printf '{"metrics": {'
echo "boom: the simulator fell over" >&2
exit 3
