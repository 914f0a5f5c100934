"""forkbomb.py - creates processes until the platform says no.

Tries: to exhaust the host's process table. Expect the pids limit of the
sandbox (pids_max, default 256) to stop it: fork() fails with EAGAIN.
Event {"mode": "count"} (default): the handler forks children that just sleep
until fork fails or "max" (default 100000) is reached, answers
{"forked": N, "error": "..."} and then kills and reaps its children, so the
environment stays usable. Event {"mode": "bomb"}: a real fork bomb (every
child forks too, forever); it never answers, and the platform must contain
it and kill the whole sandbox at the timeout.
"""
import os
import signal
import time


def _bomb():
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)


def handler(event, context):
    if event.get("mode") == "bomb":
        _bomb()
    limit = int(event.get("max", 100000))
    children = []
    error = None
    while len(children) < limit:
        try:
            pid = os.fork()
        except OSError as e:
            error = "%s: %s" % (type(e).__name__, e)
            break
        if pid == 0:
            try:
                time.sleep(3600)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
    return {"forked": len(children), "error": error}
