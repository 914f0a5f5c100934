"""oom.py - allocates and touches memory until it cannot.

Tries: to take more memory than the function's memory_mb. Expect the memory
cgroup to kill the sandbox (wisp: X-Wisp-Function-Error: OOM, Lambda:
Runtime.ExitError with signal: killed) long before the host suffers.
Event: {"chunk_mb": 8, "max_mb": 100000}. If allocation stops with a
MemoryError (an rlimit rather than the cgroup) it answers
{"allocated_mb": N, "error": "..."}; when max_mb is reached first it answers
{"allocated_mb": max_mb, "error": null} (a control case with a small max_mb).
"""


def handler(event, context):
    chunk_mb = int(event.get("chunk_mb", 8))
    max_mb = int(event.get("max_mb", 100000))
    hoard = []
    allocated = 0
    try:
        while allocated + chunk_mb <= max_mb:
            block = bytearray(chunk_mb * 1024 * 1024)
            # Touch every page so the memory is really committed.
            for i in range(0, len(block), 4096):
                block[i] = 1
            hoard.append(block)
            allocated += chunk_mb
    except MemoryError as e:
        return {"allocated_mb": allocated, "error": "MemoryError: %s" % e}
    return {"allocated_mb": allocated, "error": None}
