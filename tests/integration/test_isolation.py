#!/usr/bin/python3
"""Hostile functions: each test deploys code that tries to escape or harm the
host and checks that the sandbox stops it (DESIGN.md §2 isolation) while the
daemon stays healthy."""
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from wisplib import Daemon, Tap

PROBE = r'''
import ctypes, errno, json, os, resource, socket, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)

def syscall_errno(fn, *args):
    r = fn(*args)
    return 0 if r >= 0 else ctypes.get_errno()

def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out

def try_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def connect(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()

def handler(event, context):
    p = event["probe"]
    if p == "identity":
        st = status()
        return {"uid": os.getuid(), "gid": os.getgid(), "capeff": st.get("CapEff"),
                "capbnd": st.get("CapBnd"), "capinh": st.get("CapInh"), "capprm": st.get("CapPrm"), "nnp": st.get("NoNewPrivs"), "seccomp": st.get("Seccomp"),
                "pid": os.getpid(), "pids": sorted(int(x) for x in os.listdir("/proc") if x.isdigit()),
                "hostname": socket.gethostname(), "env": sorted(os.environ),
                "core": resource.getrlimit(resource.RLIMIT_CORE),
                "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}
    if p == "files":
        return {k: os.path.exists(k) for k in event["paths"]} | {
            "task": sorted(os.listdir("/var/task")),
            "write_task": try_write("/var/task/x"), "write_usr": try_write("/usr/x"),
            "write_root": try_write("/x"), "write_tmp": try_write("/tmp/x")}
    if p == "net":
        names = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
        routes = open("/proc/net/route").read().splitlines()[1:]
        return {"ifaces": names, "routes": routes, "host_admin": connect(event["port"])}
    if p == "syscalls":
        CLONE_NEWNS, CLONE_NEWNET = 0x20000, 0x40000000
        out = {"mount": syscall_errno(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
               "unshare_ns": syscall_errno(libc.unshare, CLONE_NEWNS),
               "unshare_net": syscall_errno(libc.unshare, CLONE_NEWNET),
               "ptrace": syscall_errno(libc.ptrace, 0, 0, None, None),
               "bpf": syscall_errno(libc.syscall, 321, 0, None, 0),
               "keyctl": syscall_errno(libc.syscall, 250, 0, 0, 0, 0),
               "kexec": syscall_errno(libc.syscall, 246, 0, 0, None, 0),
               "init_module": syscall_errno(libc.syscall, 175, None, 0, b""),
               "setuid0": syscall_errno(libc.setuid, 0),
               "chroot": syscall_errno(libc.chroot, b"/tmp")}
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
            out["packet_socket"] = 0
        except OSError as e:
            out["packet_socket"] = e.errno
        try:
            socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
            out["raw_socket"] = 0
        except OSError as e:
            out["raw_socket"] = e.errno
        return out
    if p == "tmpfill":
        n = 0
        try:
            with open("/tmp/fill", "wb") as f:
                while n < (2048 << 20):
                    f.write(b"\0" * (1 << 20))
                    f.flush()
                    n += 1 << 20
            return {"written_mb": n >> 20, "error": None}
        except OSError as e:
            return {"written_mb": n >> 20, "error": errno.errorcode.get(e.errno)}
        finally:
            try: os.unlink("/tmp/fill")
            except OSError: pass
    if p == "forkbomb":
        kids, err = [], None
        try:
            for _ in range(5000):
                pid = os.fork()
                if pid == 0:
                    import time; time.sleep(30); os._exit(0)
                kids.append(pid)
        except OSError as e:
            err = errno.errorcode.get(e.errno)
        for k in kids:
            os.kill(k, 9)
        for k in kids:
            os.waitpid(k, 0)
        return {"forked": len(kids), "error": err}
    if p == "orphan":
        subprocess.Popen(["/bin/sleep", event["marker"]], start_new_session=True)
        import time; time.sleep(60)
    if p == "spew":  # a background thread that prints short lines as fast as it can, forever
        def spew():
            chunk = b"x\n" * 32768
            while True:
                os.write(1, chunk)
        import threading
        threading.Thread(target=spew, daemon=True).start()
        return {"spewing": True}
    if p == "apiconns":  # hold many connections to the Runtime API
        host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
        socks = []
        for _ in range(event["n"]):
            try:
                socks.append(socket.create_connection((host, int(port)), timeout=2))
            except OSError:
                break
        import time
        time.sleep(0.5)
        alive = 0
        for s in socks:
            s.settimeout(0)
            try:
                alive += s.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
            s.close()
        return {"opened": len(socks), "alive": alive}
    if p == "lines":  # short lines within the invocation
        os.write(1, b"x\n" * (event["kb"] * 512))
        return {"lines": event["kb"] * 512}
    if p == "flood":
        chunk = "y" * 1023 + "\n"
        for _ in range(event["mb"] * 1024):
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return {"flooded": event["mb"]}
    if p == "netns":
        global KEEP
        if event.get("listen"):
            KEEP = socket.socket()
            KEEP.bind(("127.0.0.1", 9002))
            KEEP.listen(4)
        return {"netns": os.readlink("/proc/self/ns/net"), "port9002": connect(9002)}
    return {"unknown": p}
'''

GARBAGE = b'''#!/bin/bash
# Sends garbage to the Runtime API, closes, then exits.
printf 'GARBAGE \\x01\\x02\\r\\n\\r\\n' | curl -s --max-time 2 -X BLAH --data-binary @- "http://$AWS_LAMBDA_RUNTIME_API/%%%%%%" >/dev/null 2>&1
exec 3<>/dev/tcp/127.0.0.1/9001 2>/dev/null || true
exit 7
'''

# The same probe, told whether its process was forked from the python3 zygote
# (which has ctypes loaded before any function code runs; an exec'd runtime
# does not).
ZPROBE = "import sys\nZYGOTE = 'ctypes' in sys.modules\n" + PROBE.replace(
    '    return {"unknown": p}', '    if p == "zygote":\n        return {"zygote": ZYGOTE}\n'
    '    if p == "procself":\n'
    '        env = open("/proc/self/environ").read().rstrip("\\0").split("\\0")\n'
    '        own = ["%s=%s" % kv for kv in os.environ.items() if kv[0] != "_X_AMZN_TRACE_ID"]\n'
    '        return {"environ_same": sorted(env) == sorted(own), "fds": os.listdir("/proc/self/fd"),\n'
    '                "cmdline": open("/proc/self/cmdline").read().rstrip("\\0").split("\\0")}\n'
    '    return {"unknown": p}')


def metric_envs(d):
    _, _, body = d.request("GET", "/metrics", token=False)
    return sum(int(n) for n in re.findall(rb'wisp_envs\{state="[a-z]+"\} (\d+)', body))


def netns_checks(t, d):
    """An ended env's network namespace serves only the next env of the same
    function, and nothing the previous env had open is left in it."""
    for name in ("probe", "zprobe", "zexec", "garbage"):
        d.request("DELETE", f"/v1/functions/{name}")  # their envs go: count only ours below
    for name in ("nsa", "nsb"):
        d.deploy(name, {"app.py": PROBE}, runtime="python3", handler="app.handler",
                 idle_timeout_s=0)

    def no_envs():
        deadline = time.time() + 10
        while metric_envs(d) > 0 and time.time() < deadline:
            time.sleep(0.05)

    def netns(name, listen=False):
        no_envs()
        st, h, body = d.invoke(name, {"probe": "netns", "listen": listen})
        no_envs()
        try:
            return json.loads(body)
        except ValueError:
            return {"raw": body[:300]}

    a1 = netns("nsa", listen=True)
    a2 = netns("nsa")
    b1 = netns("nsb")
    t.ok(a1.get("port9002") == "connected" and a2.get("netns") == a1.get("netns"),
         "the next env of a function reuses its network namespace", (a1, a2))
    t.eq("nothing the previous env listened on is left in it", a2.get("port9002"), "ECONNREFUSED")
    t.ok(b1.get("netns") not in (None, a1.get("netns")), "another function never gets it", (a1, b1))


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0


def all_lines(d, fn, rid=None):
    """Every stored log line of a function (of one request), page by page."""
    lines, after = [], 0
    for _ in range(50):
        q = f"/v1/functions/{fn}/logs?limit=10000&after={after}"
        st, _, body = d.request("GET", q + (f"&request_id={rid}" if rid else ""))
        if st != 200:
            break
        page = json.loads(body)
        lines += [l["line"] for l in page.get("logs", [])]
        after = page.get("next", after)
        if not page.get("more"):
            break
    return lines


def quiet_output_checks(t, d, probe):
    """Output between invocations (a background thread that prints forever)
    is capped: past 4 MiB the env's pipes are not read until its next
    invocation, so the daemon neither grows nor spends CPU on it."""
    d.deploy("spewer", {"app.py": PROBE}, runtime="python3", handler="app.handler",
             idle_timeout_s=600)
    st, h, r = probe({"probe": "spew"}, "spewer")
    t.ok(st == 200 and r.get("spewing"), "a function leaves a thread printing between invocations",
         (st, r))
    time.sleep(1)
    # The logs query waits until everything captured so far is stored.
    lines = all_lines(d, "spewer")
    t.ok(lines and "outside an invocation" in lines[-1] and "dropped" in lines[-1],
         "past 4 MiB, a notice says output outside an invocation is dropped (and nothing follows)",
         (len(lines), lines[-2:]))
    pid = d.proc.pid
    rss0, cpu0 = proc_rss_mb(pid), proc_cpu_s(pid)
    time.sleep(2)
    rss1, cpu1 = proc_rss_mb(pid), proc_cpu_s(pid)
    t.ok(cpu1 - cpu0 < 0.3 and rss1 - rss0 < 16,
         "meanwhile the printing costs the daemon no CPU and no memory",
         {"cpu_s": round(cpu1 - cpu0, 3), "rss_mb": (round(rss0), round(rss1))})
    st, h, r = probe({"probe": "identity"}, "spewer")
    t.ok(st == 200 and h.get("x-wisp-cold-start") == "0" and r.get("uid"),
         "the env still answers its next invocation", (st, h.get("x-wisp-cold-start"), r))
    d.request("DELETE", "/v1/functions/spewer")


def log_buffer_checks(t):
    """With a 1 MiB log buffer, output faster than the store takes it is
    dropped (counted and said) instead of filling the daemon's memory."""
    with Daemon("--log-buffer-mb", "1") as d2:
        d2.deploy("lines", {"app.py": PROBE}, runtime="python3", handler="app.handler",
                  timeout_s=20)
        st, h, body = d2.invoke("lines", {"probe": "lines", "kb": 3072}, timeout=120)
        t.ok(st == 200 and json.loads(body).get("lines") == 3072 * 512,
             "3 MiB of short lines in one invocation: it still answers", (st, body[:200]))
        lines = all_lines(d2, "lines", h.get("x-wisp-request-id"))
        t.ok(any("the log store was behind" in l for l in lines) and
             any(l.startswith("REPORT RequestId") for l in lines) and len(lines) < 3072 * 512,
             "lines past the log buffer are dropped with a notice before END/REPORT",
             (len(lines), [l for l in lines if l.startswith("[wisp]")][:2]))
        st, _, body = d2.request("GET", "/metrics", token=False)
        m = re.search(rb'wisp_logs_dropped_total\{function="lines",what="lines"\} (\d+)', body)
        t.ok(m and int(m.group(1)) > 0, "wisp_logs_dropped_total counts them",
             m.group(0) if m else body[-300:])
        st, h, body = d2.invoke("lines", {"probe": "lines", "kb": 1})
        time.sleep(0.3)
        lines = all_lines(d2, "lines", h.get("x-wisp-request-id"))
        t.ok(len([l for l in lines if l == "x"]) == 512 and not any("behind" in l for l in lines),
             "once the store has caught up, every line is kept again",
             (len(lines), lines[-3:]))


def zygote_checks(t, d, probe):
    """A sandbox forked from the python3 zygote has every isolation property
    of an exec'd one (each invocation of zprobe starts a new env)."""
    d.deploy("zprobe", {"app.py": ZPROBE}, runtime="python3", handler="app.handler", tmp_mb=512,
             memory_mb=1024, timeout_s=20, idle_timeout_s=0)
    # The first python3 env starts the zygote; wait until one is born from it.
    born = False
    for _ in range(50):
        st, h, r = probe({"probe": "zygote"}, "zprobe")
        if r.get("zygote"):
            born = True
            break
        time.sleep(0.1)
    t.ok(born, "python3 envs are forked from the zygote once it is up", r)
    st, h, r = probe({"probe": "identity"}, "zprobe")
    t.ok(r.get("uid") not in (None, 0) and r.get("gid") not in (None, 0)
         and (r.get("capeff"), r.get("capbnd"), r.get("capinh"), r.get("capprm"), r.get("nnp"),
              r.get("seccomp"))
         == ("0000000000000000", "0000000000000000", "0000000000000000", "0000000000000000", "1",
             "2"),
         "zygote env: unprivileged, no capabilities (any set), no_new_privs, seccomp", r)
    t.ok(r.get("pid") == 1 and len(r.get("pids", [])) < 10 and r.get("hostname") == "wisp",
         "zygote env: own pid and uts namespaces", r)
    env = r.get("env", [])
    t.ok("AWS_LAMBDA_RUNTIME_API" in env and "_HANDLER" in env
         and not [k for k in env if k.startswith("WISP_") or k in ("HOME", "USER", "SUDO_USER")],
         "zygote env: exactly the Lambda environment", env)
    t.eq("zygote env: rlimits", (r.get("core"), r.get("nofile")), ([0, 0], [1024, 1024]))
    st, h, r = probe({"probe": "procself"}, "zprobe")
    t.ok(r.get("environ_same") is True and len(r.get("fds", [])) < 8
         and r.get("cmdline") == ["/usr/bin/python3", "-S", "-B", "/var/runtime/python3/bootstrap.py"],
         "zygote env: /proc/self shows its own environment, descriptors and command line", r)
    paths = ["/etc/shadow", "/root", d.data, "/home", "/sys/fs/cgroup", "/run/wisp"]
    st, h, r = probe({"probe": "files", "paths": paths}, "zprobe")
    t.ok(not any(r.get(k) for k in paths) and r.get("task") == ["app.py"]
         and r.get("write_task") in ("EROFS", "EACCES") and r.get("write_usr") in ("EROFS", "EACCES")
         and r.get("write_root") in ("EROFS", "EACCES") and r.get("write_tmp") == "ok",
         "zygote env: read-only root with only its code, writable /tmp", r)
    st, h, r = probe({"probe": "net", "port": d.admin_port}, "zprobe")
    t.ok(r.get("ifaces") == ["lo"] and r.get("routes") == []
         and r.get("host_admin") in ("ECONNREFUSED", "ENETUNREACH"), "zygote env: loopback only", r)
    st, h, r = probe({"probe": "syscalls"}, "zprobe")
    t.ok(all(r.get(k) not in (None, 0) for k in r), "zygote env: forbidden system calls refused", r)
    st, h, r = probe({"probe": "tmpfill"}, "zprobe")
    t.ok(r.get("error") == "ENOSPC" and 400 <= r.get("written_mb", 0) <= 512,
         "zygote env: /tmp limited to tmp_mb", r)
    st, h, r = probe({"probe": "forkbomb"}, "zprobe")
    t.ok(r.get("error") == "EAGAIN" and r.get("forked", 9999) < 300,
         "zygote env: fork bomb stopped by the pids limit", r)
    # An environment the interpreter reads at start (PYTHON*) cannot come
    # from the zygote: that env is exec'd, and sees its variable.
    d.deploy("zexec", {"app.py": ZPROBE}, runtime="python3", handler="app.handler",
             idle_timeout_s=0, env={"PYTHONHASHSEED": "7"})
    st, h, r = probe({"probe": "zygote"}, "zexec")
    t.eq("an env with PYTHON* variables is exec'd, not forked", r.get("zygote"), False)


t = Tap(56)
with Daemon("--max-envs", "64") as d:
    # /tmp is a tmpfs charged to the env's memory cgroup: give it room for tmp_mb.
    d.deploy("probe", {"app.py": PROBE}, runtime="python3", handler="app.handler", tmp_mb=512,
             memory_mb=1024, timeout_s=20)

    def probe(ev, name="probe"):
        st, h, body = d.invoke(name, ev, timeout=120)
        try:
            return st, h, json.loads(body)
        except ValueError:
            return st, h, {"raw": body[:500]}

    st, h, r = probe({"probe": "identity"})
    t.ok(r.get("uid") not in (None, 0) and r.get("gid") not in (None, 0), "runs as an unprivileged uid/gid", r)
    t.eq("no capabilities (effective, bounding, inheritable, permitted)",
         (r.get("capeff"), r.get("capbnd"), r.get("capinh"), r.get("capprm")),
         ("0000000000000000",) * 4)
    t.eq("no_new_privs and seccomp filter on", (r.get("nnp"), r.get("seccomp")), ("1", "2"))
    t.ok(r.get("pid", 99999) < 100 and len(r.get("pids", [])) < 10, "own pid namespace", r.get("pids"))
    t.ok(r.get("hostname") not in (None, socket.gethostname()), "own uts namespace (hostname)", r.get("hostname"))
    leaked = [k for k in r.get("env", []) if k.startswith("WISP_") or k in ("HOME", "USER", "SUDO_USER")]
    t.ok("AWS_LAMBDA_RUNTIME_API" in r.get("env", []) and not leaked,
         "environment is the Lambda one, nothing of the daemon's", r.get("env"))
    t.eq("core dumps off and files limited", (r.get("core"), r.get("nofile")), ([0, 0], [1024, 1024]))

    paths = ["/etc/shadow", "/root", d.data, os.path.join(d.data, "wisp.db"), "/etc/hostname",
             "/home", "/var/lib", "/sys/fs/cgroup"]
    st, h, r = probe({"probe": "files", "paths": paths})
    t.eq("/etc/shadow invisible", r.get("/etc/shadow"), False)
    t.eq("/root invisible", r.get("/root"), False)
    t.eq("the data folder invisible", (r.get(d.data), r.get(os.path.join(d.data, "wisp.db"))), (False, False))
    t.eq("/var/task holds only this function's code", r.get("task"), ["app.py"])
    t.ok(r.get("write_task") in ("EROFS", "EACCES") and r.get("write_usr") in ("EROFS", "EACCES")
         and r.get("write_root") in ("EROFS", "EACCES"), "code and root are read-only", r)
    t.eq("/tmp is writable", r.get("write_tmp"), "ok")

    st, h, r = probe({"probe": "net", "port": d.admin_port})
    t.eq("only loopback in its network namespace", r.get("ifaces"), ["lo"])
    t.eq("no routes out", r.get("routes"), [])
    t.ok(r.get("host_admin") in ("ECONNREFUSED", "ENETUNREACH"), "host admin listener unreachable", r)

    st, h, r = probe({"probe": "syscalls"})
    EPERM = 1
    t.ok(r.get("mount") not in (None, 0) and r.get("chroot") not in (None, 0), "mount and chroot refused", r)
    t.ok(r.get("unshare_ns") not in (None, 0) and r.get("unshare_net") not in (None, 0), "new namespaces refused", r)
    t.ok(all(r.get(k) not in (None, 0) for k in ("ptrace", "bpf", "keyctl", "kexec", "init_module")),
         "ptrace, bpf, keyctl, kexec, module loading refused", r)
    t.ok(r.get("packet_socket") not in (None, 0) and r.get("raw_socket") not in (None, 0), "raw sockets refused", r)
    t.ok(r.get("setuid0") not in (None, 0), "cannot become root", r)

    st, h, r = probe({"probe": "tmpfill"})
    t.ok(r.get("error") == "ENOSPC" and 400 <= r.get("written_mb", 0) <= 512, "/tmp limited to tmp_mb", r)

    st, h, r = probe({"probe": "forkbomb"})
    t.ok(r.get("error") == "EAGAIN" and r.get("forked", 9999) < 300, "fork bomb stopped by the pids limit", r)
    st2, _, _ = d.request("GET", "/healthz", token=False)
    t.eq("daemon healthy after the fork bomb", st2, 200)

    marker = "%d.123" % (os.getpid() + 7000)
    d.request("PUT", "/v1/functions/probe", {"timeout_s": 2})
    st, h, r = probe({"probe": "orphan", "marker": marker})
    t.eq("timeout kills the env", h.get("x-wisp-function-error"), "Sandbox.Timedout")
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout.split()
    t.eq("no process of a timed-out env survives", left, [])

    d.request("PUT", "/v1/functions/probe", {"timeout_s": 60})
    t0 = time.time()
    st, h, r = probe({"probe": "flood", "mb": 100})
    t.ok(st == 200 and r.get("flooded") == 100, "100 MB of stdout does not break the invocation",
         (st, r, time.time() - t0))
    st, _, body = d.request("GET", f"/v1/functions/probe/logs?request_id={h.get('x-wisp-request-id')}&limit=10000")
    lines = [l["line"] for l in json.loads(body).get("logs", [])] if st == 200 else []
    t.ok(any("dropped" in l for l in lines) and len(lines) < 10000, "flooded log is capped with a notice",
         (st, len(lines), lines[-3:]))

    d.deploy("garbage", {"bootstrap": (GARBAGE, 0o755)}, runtime="provided")
    st, h, r = probe({}, "garbage")
    t.ok(h.get("x-wisp-function-error") == "Runtime.ExitError" and "exit status 7" in json.dumps(r),
         "garbage on the Runtime API then exit: clear error", (st, h.get("x-wisp-function-error"), r))
    st, _, _ = d.request("GET", "/healthz", token=False)
    t.eq("daemon healthy after hostile functions", st, 200)
    zygote_checks(t, d, probe)
    st, _, _ = d.request("GET", "/healthz", token=False)
    t.eq("daemon healthy after the zygote checks", st, 200)
    netns_checks(t, d)
    quiet_output_checks(t, d, probe)
    d.deploy("conns", {"app.py": PROBE}, runtime="python3", handler="app.handler", timeout_s=20)
    st, h, r = probe({"probe": "apiconns", "n": 300}, "conns")
    t.ok(r.get("opened") == 300 and 1 <= r.get("alive", 0) <= 8,
         "an env holds at most 8 Runtime API connections (the rest are closed)", r)
    st, _, _ = d.request("GET", "/healthz", token=False)
    t.eq("daemon healthy after the output checks", st, 200)
log_buffer_checks(t)
sys.exit(1 if t.failed else 0)
