"""exit42.py - exits with status 42 in the middle of an invocation.

Tries: to leave an invocation without an answer. Expect Runtime.ExitError
"RequestId: <id> Error: Runtime exited with error: exit status 42", and a
fresh environment for the next invocation.
Event: {"code": N} to exit with another status; {"signal": "SIGSEGV"} to die
by that signal instead.
"""
import os
import signal
import sys


def handler(event, context):
    print("about to exit mid-invocation", flush=True)
    sig = event.get("signal")
    if sig:
        os.kill(os.getpid(), getattr(signal, sig))
    sys.stdout.flush()
    os._exit(int(event.get("code", 42)))
