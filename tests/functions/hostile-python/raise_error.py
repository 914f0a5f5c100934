"""raise_error.py - raises an exception of its own class.

Tries: nothing hostile; the error path. Expect an error document
{"errorType": "HostileError", "errorMessage": "raised on purpose: <detail>",
"stackTrace": [...]} (wisp: X-Wisp-Function-Error: Unhandled) and the
environment kept warm for the next invocation.
Event: {"detail": "..."}.
"""


class HostileError(Exception):
    pass


def handler(event, context):
    raise HostileError("raised on purpose: %s" % event.get("detail", "no detail"))
