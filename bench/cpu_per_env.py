#!/usr/bin/python3
"""cpu_per_env.py - machine CPU time per env created, under sustained env creation.

Starts a daemon as bench.py does (the daemon's switches WISP_NETNS_REUSE and WISP_ZYGOTE pass
through from this environment), deploys the no-op `provided` function with `idle_timeout_s: 0`,
and while bench/loadgen keeps CONNS invocations in flight for SECONDS (every one needs a new env)
reads the whole machine's busy time from /proc/stat. Kernel work done on an env's behalf in
other contexts (namespace teardown in kernel workers, RCU callbacks) is counted, which per-process
CPU times miss. Run nothing else meanwhile; alternate the variants to compare them:

    for i in 1 2 3; do for r in 0 1; do
        WISP_NETNS_REUSE=$r bench/cpu_per_env.py build; done; done

Run bench/run.sh once before (it builds BUILD/bench/{loadgen,noop-bootstrap}).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--conns", type=int, default=8)
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.path.abspath(a.build)
    args = argparse.Namespace(root=root, build=build, tools=os.path.join(build, "bench"),
                              out=os.devnull, quick=False, only="", density=0)
    s = bench.Suite(args)
    s.start_daemon()
    try:
        fn = s.new_function("rate-c", "provided", {"handler": "bootstrap", "idle_timeout_s": 0})
        s.daemon.invoke(fn)
        b0 = bench.machine_busy_s()
        w = s.wisp_load(fn, conns=a.conns, threads=2, duration=a.seconds)
        busy = bench.machine_busy_s() - b0
        s.check_ok(w, "cpu per env")
        envs = w["cold"]
        print(f"WISP_NETNS_REUSE={os.environ.get('WISP_NETNS_REUSE', '(default)')} "
              f"envs={envs} rate={envs / w['elapsed_s']:.0f}/s "
              f"machine busy {busy:.2f} of {(os.cpu_count() or 1) * w['elapsed_s']:.2f} CPU-s; "
              f"CPU per env {busy / max(envs, 1) * 1000:.2f} ms")
    finally:
        s.cleanup()  # the daemon, then the suite's temporary folder


if __name__ == "__main__":
    main()
