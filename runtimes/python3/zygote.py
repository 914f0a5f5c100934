"""zygote.py - the python3 zygote: an interpreter with wisp's runtime already
imported that forks into each new python3 sandbox, so a cold start skips the
interpreter's start-up and the runtime's imports.

The spawner starts it as root, in its own mount namespace (where the
sandboxes' read-only root template is mounted), with the environment every
fitting sandbox shares at interpreter start:

    /usr/bin/python3 -S -B <runtime dir>/python3/zygote.py TEMPLATE UID GID

and the request socket as descriptor 3. It says "ready", then for each
request (the spawn request, and the status pipe, network namespace, stdout,
stderr and cgroup descriptors) forks, as os.fork does but into new pid,
mount, ipc and uts namespaces and as a child of the spawner (CLONE_PARENT),
the sandbox's first process, and reports its pid on the status pipe. The
first process makes itself a sandbox through libwispenter.so (the same C code a sandbox
runs before exec: cgroups, network, root, stdio, rlimits, privileges,
seccomp), takes exactly the spec's environment and then runs the runtime as
bootstrap.py would. See src/sandbox/zygote_child.c for the C half.
"""

import _socket
import ctypes
import gc
import mmap
import os
import select
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_REQUEST = 64 * 1024 + 64
MAX_FDS = 8
SPARE_IDLE_S = 0.005  # idle time before a spare process is forked
ZYG_PID = 1  # struct wisp__zyg_status (src/sandbox/internal.h): kind PID,
ZYG_MSG = 400  # and the size of its msg field


def _fail(message):
    sys.stderr.write("wisp python3 zygote: %s\n" % message)
    sys.stderr.flush()
    os._exit(1)


def _load():
    # PyDLL: calls keep the GIL, which the interpreter's fork hooks expect.
    lib = ctypes.PyDLL(os.path.join(HERE, "libwispenter.so"))
    lib.wisp_zygote_init.argtypes = (ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_char_p, ctypes.c_size_t)
    lib.wisp_zygote_fork.argtypes = (ctypes.c_int,)
    lib.wisp_zygote_enter.argtypes = (ctypes.c_char_p, ctypes.c_size_t,
                                      ctypes.POINTER(ctypes.c_int), ctypes.c_int)
    lib.wisp_zygote_env.argtypes = (ctypes.c_uint,)
    lib.wisp_zygote_env.restype = ctypes.c_char_p
    return lib


def _receive(sock):
    """One request: (bytes, [fds]); (b"", []) at end of file."""
    data, anc, flags, _ = sock.recvmsg(MAX_REQUEST, _socket.CMSG_SPACE(MAX_FDS * 4))
    if not data and not anc:
        return b"", []
    fds = []
    for level, kind, payload in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            n = len(payload) // 4
            fds.extend(int.from_bytes(payload[i * 4:i * 4 + 4], sys.byteorder, signed=True)
                       for i in range(n))
    if flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC) or len(fds) < 4:
        for fd in fds:
            os.close(fd)
        return None, []
    return data, fds


def _become_sandbox(lib, sock, data, fds):
    """In the sandbox's first process, just forked: returns once it is a
    sandbox with exactly the spec's environment; exits on any failure."""
    try:
        # The C side closes every other descriptor; the socket object must
        # not close a reused number later.
        sock.detach()
        arr = (ctypes.c_int * len(fds))(*fds)
        if lib.wisp_zygote_enter(data, len(data), arr, len(fds)) != 0:
            os._exit(127)
        # The C side set the process's environment to the spec's; os.environ
        # must show the same (its dict directly: clear() and update() would
        # call unsetenv/putenv per variable, 0.3 ms).
        env = {}
        i = 0
        while True:
            entry = lib.wisp_zygote_env(i)
            if entry is None:
                break
            name, sep, value = entry.partition(b"=")
            if sep:
                env[name] = value
            i += 1
        tz = os.environ.get("TZ")
        mapping = getattr(os.environ, "_data", None)
        if isinstance(mapping, dict) and all(type(k) is bytes for k in mapping):
            mapping.clear()
            mapping.update(env)
        else:
            os.environ.clear()
            os.environ.update((os.fsdecode(k), os.fsdecode(v)) for k, v in env.items())
        if os.environ.get("TZ") != tz:
            time.tzset()
        # As exec'd: argv of bootstrap.py; sys.path without the script's folder.
        sys.argv[:] = ["/var/runtime/python3/bootstrap.py"]
        sys.path[:] = [p for p in sys.path if p != HERE]
    except BaseException:
        os._exit(127)


def _fd_bytes(fds):
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def _pid_record(pid):
    """A struct wisp__zyg_status PID record."""
    return (ZYG_PID.to_bytes(4, sys.byteorder, signed=True)
            + pid.to_bytes(4, sys.byteorder, signed=True) + bytes(ZYG_MSG))


def _pretouch(chan):
    """Takes the spare's copy-on-write faults before it is needed: a forked
    sandbox's start is mostly the faults of the first writes to the pages it
    shares with the zygote (every object's reference count is written), and a
    fault costs from one to tens of microseconds depending on the machine.
    It writes one byte (its own value) in every present page of the private
    writable mappings (the interpreter's heap and object arenas, the data of
    the interpreter and its libraries, the stack); pages not present are left
    alone (mincore), so nothing new is allocated. It stops as soon as a request
    comes on chan: a request never waits for it."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read().splitlines()
    except OSError:
        return
    page = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    waiting = select.poll()
    waiting.register(chan, select.POLLIN)
    for line in maps:
        parts = line.split()
        if len(parts) < 5 or parts[1] != "rw-p":
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        n = (hi - lo) // page
        vec = (ctypes.c_ubyte * n)()
        if libc.mincore(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), vec) != 0:
            continue
        for i in range(n):
            if i % 64 == 0 and waiting.poll(0):
                return
            if vec[i] & 1:
                b = ctypes.c_char.from_address(lo + i * page)
                b.value = b.value


def _fork_spare(lib, sock):
    """Forks a spare sandbox process ahead of the next request (the fork is
    then not on a cold start's path): in the zygote returns (pid, channel),
    or () if the fork failed; in the spare returns None only once it is a
    sandbox (it waits for its request on the channel, and exits if the
    zygote goes away)."""
    chan, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    pid = lib.wisp_zygote_fork(-1)
    if pid < 0:
        chan.close()
        theirs.close()
        return ()
    if pid:
        theirs.close()
        return pid, chan
    try:
        chan.close()
        _pretouch(theirs)
        theirs.settimeout(None)
        data, fds = _receive(theirs)
        theirs.detach()
    except BaseException:
        os._exit(1)
    if not data:
        os._exit(0)
    _become_sandbox(lib, sock, data, fds)
    return None


def serve():
    """Answers requests until the spawner goes away; returns only in a new
    sandbox."""
    if len(sys.argv) != 4:
        _fail("usage: zygote.py TEMPLATE UID GID")
    try:
        lib = _load()
    except OSError as e:
        _fail("cannot load libwispenter.so: %s" % e)
    err = ctypes.create_string_buffer(512)
    if lib.wisp_zygote_init(os.fsencode(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                            err, len(err)) != 0:
        _fail(err.value.decode("utf-8", "replace"))
    # What every sandbox imports before the function's code (importlib: to
    # import the handler).
    import importlib  # noqa: F401
    import wisp_bootstrap  # noqa: F401

    # The interpreter's first compile() of source costs about 1 ms of one-time
    # set-up; pay it here rather than when each sandbox imports its handler.
    compile("def handler(event, context):\n    return {}\n", "<wisp-warm-up>", "exec")

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, 3)
    # Objects made so far are never collected: the children's collector then
    # leaves their pages shared.
    gc.collect()
    gc.freeze()
    sock.send(b"ready")
    spare = None
    while True:
        # A spare is forked only once no request came for a while, so that
        # forking never competes with a sandbox that is starting.
        sock.settimeout(None if spare else SPARE_IDLE_S)
        try:
            data, fds = _receive(sock)
        except TimeoutError:
            spare = _fork_spare(lib, sock)
            if spare is None:
                return
            continue
        if data == b"":
            os._exit(0)
        if data is None:
            continue
        sent = False
        if spare:
            pid, chan = spare
            spare = None
            try:
                # The spawner pinned us to its CPU, where nothing else runs
                # while it waits: the spare starts there at once.
                os.sched_setaffinity(pid, os.sched_getaffinity(0))
                chan.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _fd_bytes(fds))])
                sent = True
                os.write(fds[0], _pid_record(pid))
            except OSError:
                pass  # A spare that is gone: fork anew below.
            chan.close()
        if not sent:
            pid = lib.wisp_zygote_fork(fds[0])
            if pid == 0:
                _become_sandbox(lib, sock, data, fds)
                return
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    serve()
    del serve
    import wisp_bootstrap

    wisp_bootstrap.main()
