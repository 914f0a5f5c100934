"""escape.py - tries privileged system calls that a sandbox must refuse.

Tries, through ctypes: setuid(0), unshare() of user/mount/net/pid
namespaces, mount(tmpfs), chroot, ptrace(PTRACE_TRACEME), opening
/proc/1/mem, a raw packet socket, keyctl, bpf, perf_event_open, reboot,
kexec_load, init_module, setns into /proc/1/ns/net, mknod of a block device,
and opening /proc/sys/kernel/core_pattern for writing. Expect each to fail
with EPERM/EACCES (seccomp or missing capabilities), EROFS or ENOSYS, and the
sandbox to stay alive.

Every probe is chosen to have no lasting effect if it is allowed (so running
this outside a sandbox, even as root, changes nothing outside the process):
reboot/kexec/init_module get arguments the kernel rejects only after its
permission check (EPERM = refused, EINVAL/EFAULT/ENOEXEC = it was allowed), a
successful mount is undone, a created device node removed, core_pattern only
opened.
Answers {"<attempt>": {"ok": bool, "errno": N, "error": "..."}, "alive": true}.
"""
import ctypes
import errno
import os
import socket

libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x10000000, 0x40000000, 0x20000000
SYS = {"keyctl": 250, "bpf": 321, "perf_event_open": 298, "kexec_load": 246,
       "init_module": 175, "reboot": 169, "ptrace": 101}  # x86-64 numbers


def _result(rc):
    if rc == -1:
        e = ctypes.get_errno()
        return {"ok": False, "errno": e, "error": errno.errorcode.get(e, str(e))}
    return {"ok": True, "rc": rc}


def _call(fn, *args):
    ctypes.set_errno(0)
    return _result(fn(*args))


def _syscall(name, *args):
    ctypes.set_errno(0)
    return _result(libc.syscall(ctypes.c_long(SYS[name]), *[ctypes.c_long(a) for a in args]))


def _py(fn):
    try:
        fn()
        return {"ok": True}
    except OSError as e:
        return {"ok": False, "errno": e.errno, "error": errno.errorcode.get(e.errno, str(e))}


def _mount():
    target = "/tmp/wisp-escape-mnt"
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as e:
        return {"ok": False, "errno": e.errno, "error": "mkdir: %s" % e.strerror}
    got = _call(libc.mount, b"none", target.encode(), b"tmpfs", ctypes.c_ulong(0), None)
    if got["ok"]:
        libc.umount2(target.encode(), 2)
    try:
        os.rmdir(target)
    except OSError:
        pass
    return got


def _mknod():
    path = "/tmp/wisp-escape-sda"
    got = _py(lambda: os.mknod(path, 0o600 | 0o060000, os.makedev(8, 0)))
    if got["ok"]:
        os.unlink(path)
    return got


def _setns():
    try:
        fd = os.open("/proc/1/ns/net", os.O_RDONLY)
    except OSError as e:
        return {"ok": False, "errno": e.errno, "error": "open: %s" % e.strerror}
    try:
        return _call(libc.setns, fd, 0)
    finally:
        os.close(fd)


def handler(event, context):
    out = {
        "setuid0": _py(lambda: os.setuid(0)),
        "mount_tmpfs": _mount(),
        "chroot": _call(libc.chroot, b"/"),
        "mknod_block_dev": _mknod(),
        "ptrace_traceme": _syscall("ptrace", 0, 0, 0, 0),
        "proc1_mem": _py(lambda: open("/proc/1/mem", "rb").close()),
        "packet_socket": _py(lambda: socket.socket(17, socket.SOCK_RAW, 0).close()),
        "keyctl": _syscall("keyctl", 0, -3, 0),
        "bpf": _syscall("bpf", 0, 0, 0),
        "perf_event_open": _syscall("perf_event_open", 0, 0, -1, -1, 0),
        "reboot_bad_magic": _syscall("reboot", 0, 0, 0, 0),
        "kexec_load_bad_flags": _syscall("kexec_load", 0, 0, 0, 0x7fff0000),
        "init_module_null": _syscall("init_module", 0, 0, 0),
        "core_pattern_open": _py(lambda: os.close(os.open("/proc/sys/kernel/core_pattern",
                                                          os.O_WRONLY))),
        "unshare_mount": _call(libc.unshare, CLONE_NEWNS),
        "unshare_pid": _call(libc.unshare, CLONE_NEWPID),
        "unshare_net": _call(libc.unshare, CLONE_NEWNET),
        "setns_net_1": _setns(),
    }
    # Last: entering a new user namespace would change what the others see.
    out["unshare_user"] = _call(libc.unshare, CLONE_NEWUSER)
    out["alive"] = True
    return out
