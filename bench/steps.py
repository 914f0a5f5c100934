#!/usr/bin/python3
"""steps.py - where a cold start's time goes, step by step (evidence for docs/BENCHMARKS.md).

Starts a daemon as bench.py does, with WISP_STEPS=1: the daemon, its spawner and its pool maker
then write "step NAME MICROSECONDS" lines (CLOCK_MONOTONIC) to the daemon's log at each step of an
invocation (core/log.h, wisp_step). It deploys the no-op `provided` function with
`idle_timeout_s: 0`, sends N cold invocations one after the other with bench/loadgen (a pause
between them, as the suite's cold benchmark does), and prints:
  - the percentiles of each step of the daemon's path (invoke → spawn-request → spawned →
    first-next → response → answered), and of the whole;
  - the client's latency (loadgen), for the part outside the daemon;
  - the slowest invocations with every step of every process between their start and the next
    invocation's (sp-*: the spawner; pool-make: the pool maker), relative to the start.

    bench/steps.py BUILD [-n 1000] [--pause-us 3000] [--slowest 15]

Run bench/run.sh once before (it builds BUILD/bench/{loadgen,noop-bootstrap}). The step lines
cost a write(2) each, about 1% of a cold start.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

PATH_STEPS = ["invoke", "spawn-request", "spawned", "first-next", "response", "answered"]


def read_steps(log_path):
    out = []
    with open(log_path, errors="replace") as f:
        for line in f:
            p = line.split()
            if len(p) == 3 and p[0] == "step" and p[2].isdigit():
                out.append((int(p[2]), p[1]))
    out.sort()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--pause-us", type=int, default=3000)
    ap.add_argument("--slowest", type=int, default=15)
    args = ap.parse_args()
    build, tmp, d = bench.tool_daemon(args.build, "wisp-steps-", {"WISP_STEPS": "1"})
    try:
        with open(os.path.join(build, "bench", "noop-bootstrap"), "rb") as f:
            z = bench.zip_of({"bootstrap": (f.read(), 0o755)})
        d.deploy("steps", {"runtime": "provided", "handler": "bootstrap", "memory_mb": 128,
                           "timeout_s": 30, "idle_timeout_s": 0}, z)
        d.invoke("steps")
        d.invoke("steps")  # the second start makes the function's exec stem wanted
        first = os.path.getsize(d.log_path)
        lg = [os.path.join(build, "bench", "loadgen"), "-j", "-c", "1", "-n", str(args.n), "-b",
              "{}", "-H", d.auth_header(), "-H", "Content-Type: application/json", "-p",
              str(args.pause_us), f"{d.admin_url}/v1/functions/steps/invoke"]
        res = json.loads(subprocess.run(lg, capture_output=True, text=True,
                                        check=True).stdout.strip().splitlines()[-1])
    finally:
        d.stop()
    with open(d.log_path, "rb") as f:
        f.seek(first)
        part = os.path.join(tmp, "steps.log")
        with open(part, "wb") as o:
            o.write(f.read())
    steps = read_steps(part)
    starts = [i for i, (_, name) in enumerate(steps) if name == "invoke"]
    rows = []
    for k, i in enumerate(starts):
        j = starts[k + 1] if k + 1 < len(starts) else len(steps)
        t0 = steps[i][0]
        seq = [(t - t0, name) for t, name in steps[i:j]]
        first_of = {}
        for t, name in seq:
            first_of.setdefault(name, t)
        if all(s in first_of for s in PATH_STEPS):
            rows.append((first_of, seq))
    if not rows:
        sys.exit("steps.py: no complete invocation in the log (is the build older than "
                 "wisp_step?)")

    def pct(values):
        v = sorted(values)
        q = lambda p: v[min(len(v) - 1, int(p * len(v)))]  # noqa: E731
        return f"{q(0.5):7.0f} {q(0.9):7.0f} {q(0.99):7.0f}"

    print(f"# {len(rows)} cold invocations, {args.pause_us} µs apart; microseconds: "
          f"p50 p90 p99")
    for a_, b_ in zip(PATH_STEPS, PATH_STEPS[1:]):
        print(f"{a_:>14} → {b_:<14} {pct([f[b_] - f[a_] for f, _ in rows])}")
    print(f"{'daemon total':>31} {pct([f['answered'] for f, _ in rows])}")
    # How each env came: bound in the daemon from a ready exec stem (no "sp-request" before
    # "spawned"), or through the spawner (bound there to a stem that was being built when
    # the request came, or built for the request).
    def how(seq):
        for _, name in seq:
            if name == "spawned":
                return "ready stem"
            if name == "sp-request":
                return "spawner"
        return "spawner"
    for kind in ("ready stem", "spawner"):
        sel = [f for f, seq in rows if how(seq) == kind]
        if sel:
            print(f"{'total, ' + kind + f' ({len(sel)})':>31} "
                  f"{pct([f['answered'] for f in sel])}")
    lat = res["lat_us"]
    print(f"{'client (loadgen)':>31} {lat['p50']:7.0f} {lat['p90']:7.0f} {lat['p99']:7.0f}")
    print(f"\n# the {args.slowest} slowest, every step until the next invocation (µs from "
          f"its start):")
    rows.sort(key=lambda r: r[0]["answered"])
    for f, seq in rows[-args.slowest:]:
        print(f"{f['answered']:6d}: " + " ".join(f"{name}@{t}" for t, name in seq[1:]))


if __name__ == "__main__":
    main()
