"""snoop.py - reports what the function can see of the host.

Tries: to read secrets and to see other processes, users, mounts, devices and
network interfaces. Expect: /etc/shadow, /root and /proc/1/environ unreadable
(or the host's files simply absent), only the sandbox's own processes in
/proc, its own hostname, no capabilities, no_new_privs set, seccomp filtering,
a non-root uid, only "lo" as a network interface.
Answers a JSON object; each probe is {"ok": bool, "value"|"error": ...}.
"""
import os
import socket


def _probe(fn):
    try:
        return {"ok": True, "value": fn()}
    except Exception as e:
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}


def _read(path, limit=4096):
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", "replace")


def _status_fields():
    fields = {}
    for line in _read("/proc/self/status", 65536).splitlines():
        name, _, value = line.partition(":")
        if name in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                    "NoNewPrivs", "Seccomp", "Seccomp_filters", "NSpid"):
            fields[name] = value.strip()
    return fields


def _pids():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())


def _signalable():
    """Which pids (below 4096 and those listed in /proc) answer kill(pid, 0)."""
    seen = {}
    for pid in sorted(set(list(range(1, 4096)) + _pids())):
        try:
            os.kill(pid, 0)
            seen[pid] = "ok"
        except ProcessLookupError:
            pass
        except PermissionError:
            seen[pid] = "EPERM"
    return {"count": len(seen), "sample": dict(list(seen.items())[:20])}


def handler(event, context):
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "euid": os.geteuid(),
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "status": _probe(_status_fields),
        "etc_shadow": _probe(lambda: _read("/etc/shadow", 64)),
        "etc_passwd_lines": _probe(lambda: len(_read("/etc/passwd", 1 << 20).splitlines())),
        "root_dir": _probe(lambda: sorted(os.listdir("/root"))[:20]),
        "home_dir": _probe(lambda: sorted(os.listdir("/home"))[:20]),
        "proc1_environ": _probe(lambda: _read("/proc/1/environ", 256)),
        "proc1_cmdline": _probe(lambda: _read("/proc/1/cmdline", 256).replace("\0", " ")),
        "proc_pids": _probe(_pids),
        "signalable": _probe(_signalable),
        "root_listing": _probe(lambda: sorted(os.listdir("/"))),
        "mounts": _probe(lambda: _read("/proc/self/mounts", 1 << 16).splitlines()),
        "net_dev": _probe(lambda: [line.split(":")[0].strip()
                                   for line in _read("/proc/net/dev").splitlines()[2:]]),
        "dev": _probe(lambda: sorted(os.listdir("/dev"))),
        "kmsg": _probe(lambda: _read("/dev/kmsg", 64)),
        "cgroup": _probe(lambda: _read("/proc/self/cgroup")),
        "sys_fs_cgroup": _probe(lambda: sorted(os.listdir("/sys/fs/cgroup"))[:20]),
        "env_keys": sorted(os.environ),
        "host_ssh_keys": _probe(lambda: sorted(os.listdir("/etc/ssh"))[:20]),
        "docker_sock": _probe(lambda: os.stat("/var/run/docker.sock").st_mode),
    }
