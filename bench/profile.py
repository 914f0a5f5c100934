#!/usr/bin/python3
"""profile.py - where the time goes on wisp's warm and cold paths (evidence for docs/BENCHMARKS.md).

Starts a daemon as bench.py does, deploys the no-op `provided` function, and while bench/loadgen
drives one path it records:
  - `perf record -g -e cpu-clock -p DAEMON,HELPERS` (this guest has no hardware counters; the
    envs, children of the helpers, inherit the events), then `perf report` by process (comm)
    and by symbol;
  - `strace -c -f` of the daemon and its helper processes (syscall counts and time);
  - the CPU time (utime+stime from /proc) each process group used per invocation.

    bench/profile.py BUILD [warm|cold|both] [--seconds N]

Run bench/run.sh once before (it builds BUILD/bench/{loadgen,noop-bootstrap}). Output goes to
stdout; perf data and full reports are left in a temporary folder whose path is printed.
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """utime + stime of pid and of its dead, reaped children (ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15])
    except OSError:
        return 0


def group_ticks(daemon_pid):
    """CPU ticks of the daemon, and of its direct children (spawner etc.) with their reaped
    children (the envs), from /proc."""
    d = cpu_ticks(daemon_pid)
    kids = {}
    for p in bench.descendants(daemon_pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
            comm = s[s.index("(") + 1:s.rindex(")")]
            ppid = int(s.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == daemon_pid:
            kids[f"{comm}[{p}]"] = cpu_ticks(p)
    return d, kids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("mode", nargs="?", default="both", choices=["warm", "cold", "both"])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--conns", type=int, default=1)
    args = ap.parse_args()
    build, tmp, d = bench.tool_daemon(args.build, "wisp-profile-")
    print(f"# profile output in {tmp}")
    try:
        with open(os.path.join(build, "bench", "noop-bootstrap"), "rb") as f:
            z = bench.zip_of({"bootstrap": (f.read(), 0o755)})
        modes = ["warm", "cold"] if args.mode == "both" else [args.mode]
        for mode in modes:
            name = f"prof-{mode}"
            d.deploy(name, {"runtime": "provided", "handler": "bootstrap", "memory_mb": 128,
                            "timeout_s": 30, "idle_timeout_s": 600 if mode == "warm" else 0}, z)
            d.invoke(name)
            url = f"{d.admin_url}/v1/functions/{name}/invoke"
            lg = [os.path.join(build, "bench", "loadgen"), "-j", "-c", str(args.conns), "-d",
                  str(args.seconds), "-b", "{}", "-H", d.auth_header(), "-H",
                  "Content-Type: application/json"]
            if mode == "cold":
                lg += ["-p", "3000"]
            lg.append(url)
            print(f"\n## {mode} path: {args.conns} connection(s), {args.seconds} s")
            # 1. CPU per invocation, by process group.
            t0 = group_ticks(d.pid)
            out = subprocess.run(lg, capture_output=True, text=True).stdout.strip()
            t1 = group_ticks(d.pid)
            res = bench.json.loads(out)
            n = max(res["requests"], 1)
            print(f"loadgen: {out}")
            print(f"daemon CPU per invocation: {(t1[0] - t0[0]) / CLK / n * 1e6:.0f} µs")
            for k in t1[1]:
                dk = t1[1][k] - t0[1].get(k, 0)
                print(f"{k} (and its reaped children) CPU per invocation: "
                      f"{dk / CLK / n * 1e6:.0f} µs")
            # 2. perf, system-wide.
            data = os.path.join(tmp, f"perf-{mode}.data")
            # Only this daemon and its helpers (their later children, the envs, inherit the
            # events): other wisp daemons on a shared machine stay out of the profile.
            pids = [d.pid] + [int(k.rsplit("[", 1)[1][:-1]) for k in t1[1]]
            perf = subprocess.Popen(["perf", "record", "-q", "-g", "-e", "cpu-clock",
                                     "-F", "4000", "-o", data, "-p",
                                     ",".join(str(p) for p in pids)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            subprocess.run(lg, capture_output=True, text=True)
            bench.stop_pid(perf, timeout=60)
            rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                  "--sort", "comm", "-g", "none"],
                                 capture_output=True, text=True).stdout
            print("perf (cpu-clock; the daemon, its helpers and their children) by process:")
            print("\n".join(l for l in rep.splitlines() if l.strip() and not l.startswith("#"))
                  [:1500])
            rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                  "--sort", "comm,dso,sym", "-g", "none"],
                                 capture_output=True, text=True).stdout
            with open(os.path.join(tmp, f"perf-{mode}.txt"), "w") as f:
                f.write(rep)
            print("perf top symbols:")
            lines = [l for l in rep.splitlines() if l.strip() and not l.startswith("#")]
            print("\n".join(lines[:40]))
            # 3. strace -c of the daemon and its helpers (not the envs: they are seccomp'd
            # and traced children would change what is measured).
            # One strace -c per process, so the daemon's and the spawner's syscalls stay apart.
            names = ["daemon"] + list(t1[1])
            traces = []
            for p, pname in zip(pids, names):
                st_out = os.path.join(tmp, f"strace-{mode}-{p}.txt")
                traces.append((pname, st_out, subprocess.Popen(
                    ["strace", "-c", "-o", st_out, "-p", str(p)], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)))
            time.sleep(0.5)
            lg2 = list(lg)
            lg2[lg2.index("-d") + 1] = str(min(args.seconds, 3))
            out = subprocess.run(lg2, capture_output=True, text=True).stdout.strip()
            res = bench.json.loads(out)
            for pname, st_out, st in traces:
                bench.stop_pid(st, timeout=30)
                print(f"strace -c of {pname} ({res['requests']} invocations; traced, so "
                      f"slower; calls per invocation in the last column):")
                with open(st_out) as f:
                    for line in f.readlines()[:26]:
                        parts = line.split()
                        if len(parts) >= 5 and parts[3].isdigit():
                            line = line.rstrip("\n") + f"   {int(parts[3]) / res['requests']:.2f}\n"
                        print(line, end="")
            d.delete(name)
    finally:
        d.stop()


if __name__ == "__main__":
    main()
