"""big_response.py - returns a result larger than the 6 MiB limit.

Tries: to push an oversized response through the Runtime API. Expect
Function.ResponseSizeTooLarge (the Runtime API answers the POST with 413)
and no crash or silent truncation.
Event: {"mb": 7} (default 7; use a small value such as 1 as a control case).
The result is a JSON string of that many MiB of "x".
"""


def handler(event, context):
    size = int(float(event.get("mb", 7)) * 1024 * 1024)
    return "x" * size
