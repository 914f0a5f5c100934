"""flood.py - writes a flood to stdout.

Tries: to swamp the log pipeline (and the daemon's memory) with output.
Expect the invocation to finish (or time out) with the daemon alive, logs
capped, and the line count/size the platform keeps bounded.
Event: {"mb": 100, "line": 1024} writes mb MiB in lines of about line bytes,
then answers {"printed_bytes": N, "seconds": T}. {"newlines": false} writes
one enormous line instead.
"""
import sys
import time


def handler(event, context):
    total = int(float(event.get("mb", 100)) * 1024 * 1024)
    width = max(int(event.get("line", 1024)), 2)
    if event.get("newlines", True):
        chunk = ("y" * (width - 1) + "\n") * max(65536 // width, 1)
    else:
        chunk = "z" * 65536
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
    data = chunk.encode()
    start = time.time()
    written = 0
    while written < total:
        piece = data[: total - written]
        out.write(piece)
        written += len(piece)
    out.flush()
    return {"printed_bytes": written, "seconds": round(time.time() - start, 3)}
