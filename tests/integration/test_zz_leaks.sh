#!/usr/bin/env bash
# Runs last: after the whole suite no env process, wisp cgroup, sandbox mount
# or daemon started by the tests may be left on the machine.
. "$(dirname "$0")/lib.sh"
plan 4
procs=$(pgrep -af '/var/runtime/|/var/task/bootstrap' | grep -v pgrep || true)
is "no env processes left" "$procs" ""
# Daemons the tests started have their data under /tmp/wisp-it-* or /tmp/wisp-pyit-*.
daemons=$(pgrep -af "$WISP_BIN serve" | grep -E -- '--data /tmp/wisp-(py)?it-' | grep -v pgrep || true)
is "no wisp daemons started by the tests left" "$daemons" ""
groups=$(find /sys/fs/cgroup -type d -path '*/wisp-*/*' 2>/dev/null | head -5)
is "no env cgroups left" "$groups" ""
mounts=$(grep -E 'wisp|/var/task' /proc/self/mountinfo | head -5)
is "no sandbox mounts left in the host namespace" "$mounts" ""
