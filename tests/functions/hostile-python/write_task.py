"""write_task.py - tries to write where a function must not.

Tries: to modify its own code (/var/task), the runtime (/var/runtime), the
root file system (/, /etc, /usr, /opt) and kernel knobs (/proc/sys,
/sys/fs/cgroup). Expect every write refused (EROFS or EACCES) except /tmp.
Answers {"<path>": {"ok": bool, "error": "..."}} for each target ("ok" means
the file could be opened for writing or created; nothing is written and what
was created is removed), and "tmp_ok" for the one place that must work.
"""
import os

TARGETS = [
    "/var/task/hostile-was-here",
    "/var/task/timeout.py",
    "/var/runtime/hostile-was-here",
    "/hostile-was-here",
    "/etc/hostile-was-here",
    "/usr/hostile-was-here",
    "/opt/hostile-was-here",
    "/proc/sys/kernel/hostname",
    "/sys/fs/cgroup/hostile-was-here",
]


def _try_write(path):
    """Opens path for writing, creating it if absent; writes nothing, and
    removes what it created, so a platform that fails this test is not also
    left modified."""
    try:
        if os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY))
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(path)
        return {"ok": True, "error": None}
    except OSError as e:
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e.strerror)}


def handler(event, context):
    result = {path: _try_write(path) for path in TARGETS}
    result["tmp_ok"] = _try_write("/tmp/hostile-was-here")["ok"]
    return result
