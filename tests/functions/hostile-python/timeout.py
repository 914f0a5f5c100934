"""timeout.py - never finishes: sleeps until the platform kills it.

Tries: to outlive the function's timeout. Expect Sandbox.Timedout (wisp:
X-Wisp-Function-Error: Timeout) and the environment replaced afterwards.
Event: {"busy": true} spins the CPU instead of sleeping; {"seconds": N} sleeps
only N seconds and then answers {"slept": N} (a control case).
"""
import time


def handler(event, context):
    seconds = event.get("seconds")
    if seconds is not None:
        time.sleep(float(seconds))
        return {"slept": seconds}
    if event.get("busy"):
        while True:
            pass
    while True:
        time.sleep(3600)
