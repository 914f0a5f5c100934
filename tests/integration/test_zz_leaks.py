#!/usr/bin/python3
"""Runs last: after the whole suite, nothing the tests started may be left on
the machine: no daemon, env process, env cgroup, sandbox mount or namespace.

Daemons that were running before (a developer's, a benchmark's) are not the
suite's: their envs live in cgroups named after their data folder
(wisp-<sha256(data)[:12]>), which this check leaves alone."""
import glob
import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from wisplib import Tap

TEST_DATA = re.compile(r"--data /tmp/wisp-(py)?it-")


def cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ppid(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
daemons = {p: cmdline(p) for p in pids if " serve " in cmdline(p) + " " and "wisp" in cmdline(p)}
foreign = set()  # cgroup names of daemons the suite did not start
for p, cl in daemons.items():
    m = re.search(r"--data (\S+)", cl)
    if m and not TEST_DATA.search(cl):
        data = os.path.realpath(m.group(1))
        foreign.add("wisp-" + hashlib.sha256(data.encode()).hexdigest()[:12])


def foreign_group(path):
    return any(f"/{name}/" in path + "/" for name in foreign)


t = Tap(5)
left = [p for p, cl in daemons.items() if TEST_DATA.search(cl)]
t.eq("no wisp daemons started by the tests left", left, [])

envs = []
for p in pids:
    cl = cmdline(p)
    if "/var/runtime/" in cl or "/var/task/bootstrap" in cl:
        try:
            groups = open(f"/proc/{p}/cgroup").read()
        except OSError:
            continue
        if not foreign_group(groups):
            envs.append((p, cl[:80]))
t.eq("no env processes left", envs, [])

groups = [g for g in glob.glob("/sys/fs/cgroup/**/wisp-*/*", recursive=True)
          if os.path.isdir(g) and not foreign_group(g)]
t.eq("no env cgroups left", groups[:5], [])

mounts = [l for l in open("/proc/self/mountinfo") if "/var/task" in l or "wisp" in l]
t.eq("no sandbox mounts left in the host namespace", mounts[:5], [])

held = []
for p in pids:
    for fd in glob.glob(f"/proc/{p}/fd/*"):
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if re.match(r"(net|mnt|pid|ipc|uts|cgroup):\[", link):
            owner = cmdline(ppid(p))
            comm = open(f"/proc/{p}/comm").read().strip() if os.path.exists(f"/proc/{p}/comm") else ""
            if TEST_DATA.search(owner) or (ppid(p) == 1 and "wisp" in comm):
                held.append(p)
            break
nsfs = [l for l in open("/proc/self/mountinfo") if " nsfs " in l]
t.eq("no namespaces left (held by descriptors or nsfs mounts)", (held, nsfs), ([], []))
sys.exit(1 if t.failed else 0)
