#!/usr/bin/env bash
# Runs last: after the whole suite no env process, wisp cgroup, sandbox mount
# or daemon started by the tests may be left on the machine.
. "$(dirname "$0")/lib.sh"
plan 5
procs=$(pgrep -af '/var/runtime/|/var/task/bootstrap' | grep -v pgrep || true)
is "no env processes left" "$procs" ""
# Daemons the tests started have their data under /tmp/wisp-it-* or /tmp/wisp-pyit-*.
daemons=$(pgrep -af "$WISP_BIN serve" | grep -E -- '--data /tmp/wisp-(py)?it-' | grep -v pgrep || true)
is "no wisp daemons started by the tests left" "$daemons" ""
groups=$(find /sys/fs/cgroup -type d -path '*/wisp-*/*' 2>/dev/null | head -5)
is "no env cgroups left" "$groups" ""
mounts=$(grep -E 'wisp|/var/task' /proc/self/mountinfo | head -5)
is "no sandbox mounts left in the host namespace" "$mounts" ""
# Namespaces outlive their processes only through open descriptors or nsfs
# mounts: none may be held by a test daemon's spawner or an orphaned spawner.
held=""
for p in /proc/[0-9]*; do
    for f in "$p"/fd/*; do
        case "$(readlink "$f" 2>/dev/null)" in
        net:* | mnt:* | pid:* | ipc:* | uts:* | cgroup:*)
            ppid=$(awk '/^PPid:/ {print $2}' "$p/status" 2>/dev/null)
            owner=$(tr '\0' ' ' <"/proc/$ppid/cmdline" 2>/dev/null)
            if { [ "$ppid" = 1 ] && grep -q wisp "$p/comm"; } || printf '%s' "$owner" | grep -qE -- '--data /tmp/wisp-(py)?it-'; then
                held="$held ${p#/proc/}"
            fi
            break
            ;;
        esac
    done
done
nsfs=$(grep -c ' nsfs ' /proc/self/mountinfo)
is "no namespaces left (held by descriptors or nsfs mounts)" "$held/$nsfs" "/0"
