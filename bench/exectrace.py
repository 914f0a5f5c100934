#!/usr/bin/python3
"""exectrace.py - a cold start's bootstrap, phase by phase, against the floor's (evidence for
docs/BENCHMARKS.md, "Where a cold start's exec goes on this guest").

Starts a daemon as bench.py does, deploys the no-op `provided` function with `idle_timeout_s: 0`
and records N cold invocations (3 ms apart, as the cold benchmark sends them) with
`perf record -a` on the scheduler's and a few system calls' tracepoints; then records the floor
(bench/spawn_baseline -a -p 3000: the same bootstrap spawned with no platform and no isolation,
answering one invocation) under the same tracing. For every bootstrap process it takes:
  - woke:       an exec stem's read of its bind message returned (wisp only);
  - execve:     the execve system call was entered;
  - exec done:  the new program replaced the old one (sched_process_exec);
  - connect:    the new program called connect (to the Runtime API);
and prints the percentiles of woke → execve, execve → exec done and exec done → connect.
Tracing slows every step (compare the two columns, not the absolute figures with the suite's).

    bench/exectrace.py BUILD [-n 40]

Run bench/run.sh once before (it builds BUILD/bench/{spawn_baseline,noop-bootstrap}).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

EVENTS = ["sched:sched_process_exec", "syscalls:sys_enter_execve", "syscalls:sys_exit_read",
          "syscalls:sys_enter_connect"]


def record(out, fn):
    """Run fn() under a system-wide perf record of EVENTS into out."""
    perf = subprocess.Popen(["perf", "record", "-q", "-a", "-o", out] +
                            sum([["-e", e] for e in EVENTS], []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        fn()
    finally:
        time.sleep(0.2)
        bench.stop_pid(perf, timeout=60)


def phases(data, bootstrap_name):
    """{phase: [µs, ...]} from a perf.data file: one sample per process that exec'd a
    program called bootstrap_name."""
    text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,time,event,trace"],
                          capture_output=True, text=True).stdout
    seen = {}
    for line in text.splitlines():
        p = line.split()
        if len(p) < 4 or p[0] == "perf":
            continue
        try:
            pid, t, ev = p[1], float(p[2].rstrip(":")), p[3]
        except ValueError:
            continue
        d = seen.setdefault(pid, {})
        if ev.startswith("syscalls:sys_exit_read") and p[0] == "exec-stem" and "exec" not in d:
            if not p[-1].startswith("0xfffffffffffff") and p[-1] != "0x0":
                d["woke"] = t
        elif ev.startswith("syscalls:sys_enter_execve"):
            d["execve"] = t
            d.pop("done", None)
        elif ev.startswith("sched:sched_process_exec"):
            if line.rstrip().split("filename=")[-1].split()[0].endswith("/" + bootstrap_name):
                d["done"] = t
        elif ev.startswith("syscalls:sys_enter_connect") and "done" in d and "connect" not in d:
            d["connect"] = t
    out = {"woke → execve": [], "execve → exec done": [], "exec done → connect": []}
    for d in seen.values():
        if "done" not in d or "execve" not in d:
            continue
        if "woke" in d and d["woke"] <= d["execve"]:
            out["woke → execve"].append((d["execve"] - d["woke"]) * 1e6)
        out["execve → exec done"].append((d["done"] - d["execve"]) * 1e6)
        if "connect" in d:
            out["exec done → connect"].append((d["connect"] - d["done"]) * 1e6)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("-n", type=int, default=40)
    args = ap.parse_args()
    build, tmp, d = bench.tool_daemon(args.build, "wisp-exectrace-")
    boot = os.path.join(build, "bench", "noop-bootstrap")
    work = tempfile.mkdtemp(prefix="wisp-exectrace-data-")
    try:
        with open(boot, "rb") as f:
            z = bench.zip_of({"bootstrap": (f.read(), 0o755)})
        d.deploy("trace", {"runtime": "provided", "handler": "bootstrap", "memory_mb": 128,
                           "timeout_s": 30, "idle_timeout_s": 0}, z)
        for _ in range(20):
            d.invoke("trace")
            time.sleep(0.003)

        def cold_starts():
            for _ in range(args.n):
                d.invoke("trace")
                time.sleep(0.003)

        record(os.path.join(work, "wisp.data"), cold_starts)
    finally:
        d.stop()
    floor = [os.path.join(build, "bench", "spawn_baseline"), "-a", "-p", "3000", "-n",
             str(args.n), "--", boot]
    record(os.path.join(work, "floor.data"),
           lambda: subprocess.run(floor, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={"PATH": "/usr/bin:/bin"}, check=True))
    w = phases(os.path.join(work, "wisp.data"), "bootstrap")
    f = phases(os.path.join(work, "floor.data"), "noop-bootstrap")
    print(f"# {args.n} cold starts of wisp and of the floor, traced (perf data in {work}); "
          "µs p50 / p90 (n)")
    print("| phase of the bootstrap's start | wisp (exec stem) | floor (posix_spawn) |")
    print("|---|---|---|")
    for k in w:
        cells = []
        for v in (sorted(w[k]), sorted(f[k])):
            if v:
                cells.append(f"{bench.quantile(v, 0.5):,.0f} / {bench.quantile(v, 0.9):,.0f} "
                             f"({len(v)})")
            else:
                cells.append("—")
        print(f"| {k} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
