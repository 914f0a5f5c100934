#!/usr/bin/python3
"""nodejs stems: envs bound from a node started ahead of need (DESIGN.md §4)
have every isolation property of an exec'd one, exactly their function's
environment, code, /tmp size and memory limit, and nothing of another
function; an env whose environment node reads at start is exec'd instead."""
import hashlib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wisplib import Daemon, Tap  # noqa: E402

# Every invocation of a probe function (idle_timeout_s 0) is a new env. A
# stem-born runtime still shows its start-up environment in
# /proc/self/environ (the variable WISP_STEM_FD): that is how the probe tells.
PROBE = r"""
const fs = require('fs');
const net = require('net');
const os = require('os');
const status = (k) => (fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(k + ':\\s*(\\S+)')) || [])[1];
const code = (f) => { try { f(); return 'ok'; } catch (e) { return e.code || String(e); } };
exports.handler = async (ev) => {
  const stem = fs.readFileSync('/proc/self/environ', 'utf8').includes('WISP_STEM_FD=');
  switch (ev.probe) {
  case 'who':
    return { stem, uid: process.getuid(), gid: process.getgid(), pid: process.pid, hostname: os.hostname(),
             capeff: status('CapEff'), capbnd: status('CapBnd'), capinh: status('CapInh'), nnp: status('NoNewPrivs'),
             seccomp: status('Seccomp'), env: process.env, cwd: process.cwd(),
             tzoff: new Date(Date.UTC(2026, 10, 26)).getTimezoneOffset(),
             task: fs.readdirSync('/var/task').sort(), ifaces: fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2)
               .map((l) => l.split(':')[0].trim()).filter(Boolean) };
  case 'files':
    return { stem, tmp: fs.readdirSync('/tmp'), shadow: code(() => fs.readFileSync('/etc/shadow')),
             data: code(() => fs.readdirSync(ev.data)),
             write_task: code(() => fs.writeFileSync('/var/task/x', 'x')),
             write_root: code(() => fs.writeFileSync('/x', 'x')),
             write_tmp: code(() => fs.writeFileSync('/tmp/x', 'x')) };
  case 'net':
    return await new Promise((resolve) => {
      const s = net.connect(ev.port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve({ stem, host: 'connected' }); });
      s.on('error', (e) => resolve({ stem, host: e.code }));
    });
  case 'tmpfill': {
    const chunk = Buffer.alloc(1 << 20, 1);
    let mb = 0;
    try { for (;;) { fs.appendFileSync('/tmp/fill', chunk); mb++; } }
    catch (e) { fs.rmSync('/tmp/fill', { force: true }); return { stem, error: e.code, written_mb: mb }; }
  }
  case 'hog': {
    const keep = [];
    for (;;) keep.push(Buffer.alloc(16 << 20, 1));
  }
  }
  return { stem, unknown: ev.probe };
};
"""


# A provided-runtime bootstrap that reports, per invocation, its env's
# identity: the start time of the env's first process (for the host to
# compare with an exec stem's), its log stream (one per env), and whether its
# environment and command line are exactly its own.
XSTEM_BOOT = r"""#!/usr/bin/python3
import json, os, urllib.request
api = "http://%s/2018-06-01/runtime/invocation/" % os.environ["AWS_LAMBDA_RUNTIME_API"]
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        r.read()
    with open("/proc/1/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    tmp = sorted(os.listdir("/tmp"))
    open("/tmp/left-by-" + rid, "w").write("x")
    env = open("/proc/self/environ").read().rstrip("\0").split("\0")
    out = {"start": start, "tmp": tmp, "stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
           "environ_same": sorted(env) == sorted("%s=%s" % kv for kv in os.environ.items()),
           "cmdline": open("/proc/1/cmdline").read().rstrip("\0").split("\0"),
           "fds": sorted(os.listdir("/proc/self/fd")), "cpus": sorted(os.sched_getaffinity(0))}
    req = urllib.request.Request(api + rid + "/response", data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()
"""


def starts(d):
    """wisp_env_starts_total by how, from /metrics."""
    _, _, body = d.request("GET", "/metrics", token=False)
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(rb'wisp_env_starts_total\{how="([a-z_]+)"\} ([0-9.e+]+)', body)}


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def exec_stem_checks(t, d, tag):
    """Exec stems (DESIGN.md §4): a sandbox built ahead of need for a provided
    function version started twice; only that version binds it, and the env it
    becomes has exactly its own environment and command line."""
    for name in ("xs-a", "xs-b"):
        d.deploy(name, {"bootstrap": (XSTEM_BOOT, 0o755)}, runtime="provided", idle_timeout_s=0)
    before = starts(d)
    seen = []
    for _ in range(2):
        st, h, body = d.invoke("xs-a")
        seen.append(json.loads(body) if st == 200 else {"status": st, "body": body[:300]})
        time.sleep(0.2)
    deadline = time.time() + 5
    while not stems(tag) and time.time() < deadline:
        time.sleep(0.05)
    ready = stems(tag)
    t.ok(len(ready) == 1 and all(s.get("environ_same") for s in seen),
         "a provided function version started twice gets one exec stem", (ready, seen))
    stem = ready[0] if ready else "0"
    stem_start = start_time(stem) if ready else None
    st, h, body = d.invoke("xs-b")  # the very same code, another function
    other = json.loads(body) if st == 200 else {}
    t.ok(st == 200 and other.get("start") != stem_start and stems(tag) == [stem],
         "another function with the same code never binds it", (st, other, stem_start, stems(tag)))
    st, h, body = d.invoke("xs-a")
    r = json.loads(body) if st == 200 else {"status": st, "body": body[:300]}
    t.ok(r.get("start") == stem_start and r.get("stream") not in [s.get("stream") for s in seen]
         and r.get("environ_same") is True and r.get("fds") == seen[0].get("fds")
         and r.get("tmp") == [] == seen[1].get("tmp")
         and r.get("cpus") == seen[0].get("cpus") == sorted(os.sched_getaffinity(0))
         and r.get("cmdline") == ["/usr/bin/python3", "/var/task/bootstrap"] == seen[0].get("cmdline"),
         "the version's next env is the stem, with exactly an exec'd env's environment, "
         "command line, descriptors and CPUs, and an empty /tmp", (r, stem_start, seen))
    after = starts(d)
    gained = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    t.ok(gained.get(b"exec") == 3 and gained.get(b"exec_stem") == 1 and after.get(b"nodejs_stem", 0) >= 1,
         "wisp_env_starts_total counts the envs by how they started", (before, after))


def main():
    t = Tap(19)
    with Daemon() as d:
        def probe(fn, ev):
            st, h, body = d.invoke(fn, ev, timeout=60)
            try:
                return st, h, json.loads(body)
            except ValueError:
                return st, h, {"raw": body[:300].decode(errors="replace")}

        d.deploy("stem-a", {"index.js": PROBE, "a-only.txt": "a"}, runtime="nodejs",
                 handler="index.handler", idle_timeout_s=0, memory_mb=1024, tmp_mb=600,
                 timeout_s=30, env={"FOO": "bar", "TZ": "Europe/Paris"})
        d.deploy("stem-b", {"index.js": PROBE, "b-only.txt": "b"}, runtime="nodejs",
                 handler="index.handler", idle_timeout_s=0, memory_mb=128, timeout_s=30)

        # The first nodejs env is exec'd and asks for stems; later ones are
        # bound from them once one is ready.
        r = {}
        for _ in range(100):
            st, h, r = probe("stem-a", {"probe": "who"})
            if r.get("stem"):
                break
            time.sleep(0.1)
        t.ok(r.get("stem") is True, "nodejs envs are bound from stems once they are ready", r)
        t.ok(r.get("uid") not in (None, 0) and r.get("gid") not in (None, 0)
             and (r.get("capeff"), r.get("capbnd"), r.get("capinh"), r.get("nnp"), r.get("seccomp"))
             == ("0000000000000000", "0000000000000000", "0000000000000000", "1", "2"),
             "stem env: unprivileged, no capabilities, no_new_privs, seccomp", r)
        t.ok(r.get("pid") == 1 and r.get("hostname") == "wisp" and r.get("ifaces") == ["lo"],
             "stem env: own pid, uts and network namespaces (loopback only)", r)
        env = r.get("env", {})
        t.ok(env.get("FOO") == "bar" and env.get("TZ") == "Europe/Paris"
             and env.get("AWS_LAMBDA_FUNCTION_NAME") == "stem-a"
             and env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") == "1024"
             and not [k for k in env if k.startswith("WISP_")] and r.get("tzoff") == -60,
             "stem env: exactly its function's environment (TZ=Europe/Paris in effect)",
             dict(env, tzoff=r.get("tzoff")))
        t.ok(r.get("task") == ["a-only.txt", "index.js"] and r.get("cwd") == "/var/task",
             "stem env: its own code at /var/task, the working folder", r)

        st, h, r = probe("stem-b", {"probe": "who"})
        for _ in range(50):
            if r.get("stem"):
                break
            time.sleep(0.1)
            st, h, r = probe("stem-b", {"probe": "who"})
        t.ok(r.get("stem") is True and r.get("task") == ["b-only.txt", "index.js"]
             and r.get("env", {}).get("AWS_LAMBDA_FUNCTION_NAME") == "stem-b"
             and "FOO" not in r.get("env", {}),
             "a stem bound to another function sees only that function's code and environment", r)

        def stem_probe(fn, ev):
            for _ in range(50):
                st, h, r = probe(fn, ev)
                if r.get("stem"):
                    return st, h, r
                time.sleep(0.1)
            return st, h, r

        st, h, r = stem_probe("stem-a", {"probe": "files", "data": d.data})
        t.ok(r.get("stem") and r.get("shadow") == "ENOENT" and r.get("data") == "ENOENT"
             and r.get("write_task") in ("EROFS", "EACCES") and r.get("write_root") in ("EROFS", "EACCES")
             and r.get("write_tmp") == "ok" and r.get("tmp") == [],
             "stem env: read-only root and code, no host files, an empty writable /tmp", r)
        st, h, r = stem_probe("stem-a", {"probe": "net", "port": d.admin_port})
        t.ok(r.get("stem") and r.get("host") in ("ECONNREFUSED", "ENETUNREACH"),
             "stem env: the host's loopback is out of reach", r)
        st, h, r = stem_probe("stem-a", {"probe": "tmpfill"})
        t.ok(r.get("stem") and r.get("error") == "ENOSPC" and 560 <= r.get("written_mb", 0) <= 600,
             "stem env: /tmp resized to the function's tmp_mb (600 MB; a stem has 512)", r)

        # The memory limit is the function's: a hog in a 128 MB function is
        # killed (wait until a stem is ready, then give it the hog).
        stem_probe("stem-b", {"probe": "who"})
        time.sleep(1.0)
        st, h, body = d.invoke("stem-b", {"probe": "hog"}, timeout=60)
        t.eq("stem env: the function's memory limit (128 MB) ends a hog",
             h.get("x-wisp-function-error"), "Runtime.OutOfMemory")
        time.sleep(0.3)
        st, h, body = d.request("GET", "/v1/functions/stem-b/logs?limit=500")
        reports = [l["line"] for l in json.loads(body).get("logs", []) if l["line"].startswith("REPORT")]
        used = [int(x.split("Max Memory Used: ")[1].split()[0]) for x in reports[-1:]
                if "Max Memory Used: " in x]
        t.ok(used and 100 <= used[0] <= 128, "the hog's REPORT shows the 128 MB limit reached",
             reports[-1:])

        # NODE_* is read by node when it starts: such an env is exec'd.
        d.deploy("stem-x", {"index.js": PROBE}, runtime="nodejs", handler="index.handler",
                 idle_timeout_s=0, env={"NODE_OPTIONS": "--max-old-space-size=100"})
        time.sleep(0.5)
        st, h, r = probe("stem-x", {"probe": "who"})
        t.ok(r.get("stem") is False and r.get("env", {}).get("NODE_OPTIONS") == "--max-old-space-size=100",
             "an env with NODE_* variables is exec'd, not bound from a stem", r)

        daemon_tag = "wisp-" + hashlib.sha256(os.path.realpath(d.data).encode()).hexdigest()[:12]
        exec_stem_checks(t, d, daemon_tag + "/xstem.")

        # Stems are the daemon's own: no stem is left after the daemon stops.
        log = d.log_tail(400)
        t.ok("nodejs stem" not in log and "exec stem" not in log, "no stem failed during the test",
             [l for l in log.splitlines() if "stem" in l][-3:])
        time.sleep(0.5)
        tag = daemon_tag + "/stem."
        ready = stems(tag)
        t.ok(1 <= len(ready) <= 2, "one or two stems are kept ready", ready)
    time.sleep(0.5)
    t.eq("stems end with the daemon", stems(tag) + stems(daemon_tag + "/xstem."), [])
    return 1 if t.failed else 0


def stems(tag):
    """pids of the unbound stems of one daemon (their memory cgroup is <daemon's>/stem.N)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if tag in f.read():
                    found.append(pid)
        except (OSError, ValueError):
            pass
    return found


if __name__ == "__main__":
    sys.exit(main())
