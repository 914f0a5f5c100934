"""fill_tmp.py - fills /tmp until the disk is full.

Tries: to exhaust the host's disk or memory through /tmp. Expect the
size-limited tmpfs of the sandbox (tmp_mb, default 512) to stop it with
ENOSPC near tmp_mb, and the host untouched.
Event: {"max_mb": 100000, "keep": false}. Answers
{"written_mb": N, "error": "...", "statvfs_total_mb": M}; the file is removed
afterwards unless "keep" is true (then the next invocation in the same
environment sees a full /tmp).
"""
import os


def handler(event, context):
    max_mb = int(event.get("max_mb", 100000))
    path = "/tmp/fill-tmp.bin"
    block = b"\xa5" * (1024 * 1024)
    written = 0
    error = None
    try:
        with open(path, "wb") as f:
            while written < max_mb:
                f.write(block)
                f.flush()
                written += 1
            os.fsync(f.fileno())
    except OSError as e:
        error = "%s: %s" % (type(e).__name__, e.strerror)
    st = os.statvfs("/tmp")
    if not event.get("keep"):
        try:
            os.unlink(path)
        except OSError:
            pass
    return {"written_mb": written, "error": error,
            "statvfs_total_mb": st.f_blocks * st.f_frsize // (1024 * 1024)}
