#!/usr/bin/python3
"""Invocation through the native API: every runtime, warm reuse, Lambda-style
handlers unmodified, function errors, platform errors (timeout, exit, OOM,
oversized response, bad entry point, init errors), logs and records."""
import base64
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from wisplib import BUILD, ROOT, Daemon, Tap

PY_APP = '''
import json, os
def handler(event, context):
    return {"hello": event.get("name", "world"), "request_id": context.aws_request_id,
            "fn": context.function_name, "mem": context.memory_limit_in_mb,
            "arn": context.invoked_function_arn, "remaining": context.get_remaining_time_in_millis(),
            "env_region": os.environ.get("AWS_REGION"), "custom": os.environ.get("GREETING")}
'''
NODE_APP = '''
exports.handler = async (event, context) => ({
  hello: event.name || "world", request_id: context.awsRequestId,
  remaining: context.getRemainingTimeInMillis(), fn: context.functionName });
'''
NODE_ESM = 'export const handler = async (event) => ({ esm: true, got: event });\n'
NODE_CB = 'exports.handler = (event, context, callback) => { callback(null, {cb: event.n * 2}); };\n'
SHELL_BOOTSTRAP = '''#!/bin/sh
# A provided-runtime bootstrap in shell, as in AWS's tutorial.
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
  HEADERS=$(mktemp)
  EVENT=$(curl -sS -LD "$HEADERS" "$API/next")
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  echo "shell got $EVENT"
  curl -sS -X POST "$API/$ID/response" -d "{\\"shell\\":$EVENT}" >/dev/null
  rm -f "$HEADERS"
done
'''

STREAM_BOOTSTRAP = r'''#!/usr/bin/python3
# A provided runtime that answers in response streaming mode, raw HTTP.
import base64, os, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")

def call(raw):
    s = socket.create_connection((host, int(port)))
    s.sendall(raw)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get(b"content-length", b"0"))
    while len(body) < n:
        body += s.recv(65536)
    s.close()
    return hdrs, body

while True:
    h, ev = call(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
    rid = h[b"lambda-runtime-aws-request-id"]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"part1-", b"part2-", b"part3"))
    trailer = b""
    if b"fail" in ev:
        trailer = (b"Lambda-Runtime-Function-Error-Type: Stream.Broken\r\n"
                   b"Lambda-Runtime-Function-Error-Body: " +
                   base64.b64encode(b'{"errorMessage":"midway"}') + b"\r\n")
    call(b"POST /2018-06-01/runtime/invocation/" + rid + b"/response HTTP/1.1\r\nHost: x\r\n"
         b"Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
         b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
         + chunks + b"0\r\n" + trailer + b"\r\n")
'''

BIG = b'''
def handler(event, context):
    line = "%s-" % event["tag"] + "z" * 100000
    for k in range(event.get("n", 38)):
        print(line, k, flush=True)
    return event.get("n", 38)
'''


def follow_checks(t, d):
    """A follow whose backlog (about 23 MB) is larger than the 16 MiB a
    lagging client may leave untaken: it is sent as the client takes it,
    whole, then the live lines follow on the same stream."""
    import http.client
    d.deploy("big", {"app.py": BIG}, runtime="python3", handler="app.handler", timeout_s=30)
    for i in range(6):
        d.invoke("big", {"tag": "old%d" % i})
    conn = http.client.HTTPConnection("127.0.0.1", d.admin_port, timeout=30)
    conn.request("GET", "/v1/functions/big/logs?follow=1",
                 headers={"Authorization": f"Bearer {d.token}"})
    resp = conn.getresponse()
    time.sleep(1.5)  # a client that starts reading late
    seen, deadline = 0, time.time() + 60
    while seen < 6 * 38 and time.time() < deadline:
        line = resp.readline()
        if not line:
            break
        seen += b'"line":"old' in line
    t.eq("a follow sends a 23 MB backlog whole to a client that reads late", seen, 6 * 38)
    d.invoke("big", {"tag": "live", "n": 1})
    live = False
    while not live and time.time() < deadline:
        line = resp.readline()
        if not line:
            break
        live = b'"line":"live-' in line
    t.ok(live, "then the live lines on the same stream", seen)
    conn.close()
    def states():
        st, _, body = d.request("GET", "/metrics", token=False)
        m = re.search(rb"^wisp_invoker_functions (\d+)$", body, re.M)
        return body, int(m.group(1)) if m else -1

    body, before = states()
    had = b'function="big"' in body
    d.request("DELETE", "/v1/functions/big")
    body, _ = states()
    t.ok(had and b'function="big"' not in body and b'function="py"' in body,
         "a deleted function's metric series go with it", had)
    deadline = time.time() + 10
    while states()[1] != before - 1 and time.time() < deadline:
        time.sleep(0.1)
    t.eq("and its state in the invoker once its env is gone", states()[1], before - 1)

    # The invoker's function table starts at 64 buckets and doubles as it fills:
    # 70 more functions make it grow (with each one rehashed); every one must
    # still be found under its own name, and removing them must leave the
    # rest of the table as it was.
    _, base = states()
    names = [f"many{i}" for i in range(70)]
    for n in names:
        d.deploy(n, {"app.py": "def handler(e, c):\n    return c.function_name\n"},
                 runtime="python3", handler="app.handler", idle_timeout_s=0)
    answers = [d.invoke(n) for n in names] + [d.invoke(n) for n in names]
    wrong = [(n, a[0], a[2]) for n, a in zip(names + names, answers)
             if a[0] != 200 or json.loads(a[2]) != n]
    t.eq("a grown function table finds each of 70 more functions, twice", (wrong, states()[1]),
         ([], base + 70))
    for n in names:
        d.request("DELETE", f"/v1/functions/{n}")
    deadline = time.time() + 10
    while states()[1] != base and time.time() < deadline:
        time.sleep(0.1)
    st, _, body = d.invoke("py", {"name": "after"})
    t.eq("and forgets them when they are deleted, the others still found",
         (states()[1], st, json.loads(body).get("hello") if st == 200 else body), (base, 200, "after"))


t = Tap(41)
with Daemon() as d:
    # python3
    d.deploy("py", {"app.py": PY_APP}, runtime="python3", handler="app.handler",
             env={"GREETING": "hi"}, memory_mb=256)
    st, h, body = d.invoke("py", {"name": "wisp"})
    t.eq("python3 invoke answers 200", st, 200)
    r = json.loads(body) if st == 200 else {}
    t.eq("python3 handler result", r.get("hello"), "wisp")
    t.eq("cold start header on first invoke", h.get("x-wisp-cold-start"), "1")
    t.ok(r.get("request_id") == h.get("x-wisp-request-id") and len(r.get("request_id", "")) == 36,
         "context.aws_request_id equals X-Wisp-Request-Id", (r, h))
    t.eq("context fields", (r.get("fn"), r.get("mem"), r.get("env_region"), r.get("custom")),
         ("py", "256", "us-east-1", "hi"))
    t.ok(r.get("arn", "").endswith(":function:py") and 0 < r.get("remaining", 0) <= 3000,
         "ARN and remaining time", r)
    st, h, body = d.invoke("py", {"name": "again"})
    t.eq("second invoke is warm", (st, h.get("x-wisp-cold-start")), (200, "0"))
    t.ok(float(h.get("x-wisp-duration-ms", "-1")) >= 0, "duration header", h)

    # nodejs: CommonJS async, ESM, callback style
    d.deploy("node", {"index.js": NODE_APP}, runtime="nodejs", handler="index.handler")
    st, h, body = d.invoke("node", {"name": "n"})
    t.eq("nodejs async handler", (st, json.loads(body).get("hello") if st == 200 else body), (200, "n"))
    d.deploy("esm", {"index.mjs": NODE_ESM}, runtime="nodejs", handler="index.handler")
    st, h, body = d.invoke("esm", {"k": 1})
    t.eq("nodejs ESM handler", json.loads(body) if st == 200 else body, {"esm": True, "got": {"k": 1}})
    d.deploy("cb", {"index.js": NODE_CB}, runtime="nodejs", handler="index.handler")
    st, h, body = d.invoke("cb", {"n": 21})
    t.eq("nodejs callback handler", json.loads(body) if st == 200 else body, {"cb": 42})

    # provided: shell bootstrap and the C example
    d.deploy("sh", {"bootstrap": (SHELL_BOOTSTRAP, 0o755)}, runtime="provided")
    st, h, body = d.invoke("sh", {"s": 1})
    t.eq("provided shell bootstrap", json.loads(body) if st == 200 else body, {"shell": {"s": 1}})
    cboot = os.path.join(BUILD, "examples", "hello-c", "bootstrap")
    if os.path.exists(cboot):
        d.deploy("c", {"bootstrap": (open(cboot, "rb").read(), 0o755)}, runtime="provided")
        st, h, body = d.invoke("c", {"name": "c"})
        t.ok(st == 200 and b"c" in body, "provided C bootstrap (runtimes/c)", (st, body))
    else:
        t.ok(False, "provided C bootstrap (runtimes/c)", f"{cboot} not built")

    # response streaming mode (chunked /response, an error in the trailers)
    d.deploy("stream", {"bootstrap": (STREAM_BOOTSTRAP, 0o755)}, runtime="provided")
    st, h, body = d.invoke("stream", {"ok": 1})
    t.eq("streamed response is collected", (st, body, h.get("x-wisp-function-error")),
         (200, b"part1-part2-part3", None))
    st, h, body = d.invoke("stream", {"fail": 1})
    t.ok(h.get("x-wisp-function-error") == "Stream.Broken" and b"midway" in body,
         "error in the stream's trailers", (h, body))

    # function errors
    d.deploy("boom", {"app.py": "def handler(e, c):\n    raise ValueError('bad input')\n"},
             runtime="python3", handler="app.handler")
    st, h, body = d.invoke("boom", {})
    err = json.loads(body) if body else {}
    t.eq("handler exception: 200 with X-Wisp-Function-Error", (st, h.get("x-wisp-function-error")),
         (200, "ValueError"))
    t.ok(err.get("errorMessage") == "bad input" and err.get("errorType") == "ValueError"
         and isinstance(err.get("stackTrace"), list), "error JSON shape", err)

    # platform errors
    d.deploy("slow", {"app.py": "import time\ndef handler(e, c):\n    time.sleep(30)\n"},
             runtime="python3", handler="app.handler", timeout_s=1)
    t0 = time.time()
    st, h, body = d.invoke("slow", {})
    el = time.time() - t0
    err = json.loads(body) if body else {}
    t.eq("timeout: Sandbox.Timedout", h.get("x-wisp-function-error"), "Sandbox.Timedout")
    t.ok("Task timed out after 1.00 seconds" in err.get("errorMessage", "") and el < 5,
         "timeout message and the caller is answered at the deadline", (err, el))

    d.deploy("exit", {"app.py": "import os\ndef handler(e, c):\n    os._exit(42)\n"},
             runtime="python3", handler="app.handler")
    st, h, body = d.invoke("exit", {})
    err = json.loads(body) if body else {}
    t.eq("exit mid-invocation: Runtime.ExitError", h.get("x-wisp-function-error"), "Runtime.ExitError")
    t.ok("exit status 42" in err.get("errorMessage", ""), "exit status in the message", err)
    st, h, body = d.invoke("exit", {})
    t.eq("a crashed env is replaced (next invoke runs cold)", (h.get("x-wisp-function-error"),
         h.get("x-wisp-cold-start")), ("Runtime.ExitError", "1"))

    d.deploy("oom", {"app.py": "def handler(e, c):\n    x = []\n    while True:\n        x.append(bytearray(16 << 20))\n"},
             runtime="python3", handler="app.handler", memory_mb=128)
    st, h, body = d.invoke("oom", {})
    t.eq("memory limit: Runtime.OutOfMemory", h.get("x-wisp-function-error"), "Runtime.OutOfMemory")

    d.deploy("big", {"app.py": "def handler(e, c):\n    return 'x' * (7 << 20)\n"},
             runtime="python3", handler="app.handler")
    st, h, body = d.invoke("big", {})
    t.eq("response over 6 MiB: Function.ResponseSizeTooLarge", h.get("x-wisp-function-error"),
         "Function.ResponseSizeTooLarge")

    d.deploy("huge", {"app.py": "def handler(e, c):\n    return 'x' * (20 << 20)\n"},
             runtime="python3", handler="app.handler", memory_mb=512)
    st, h, body = d.invoke("huge", {})
    t.eq("response of 20 MiB (refused by the HTTP layer): Function.ResponseSizeTooLarge",
         h.get("x-wisp-function-error"), "Function.ResponseSizeTooLarge")

    d.deploy("noentry", {"README": "no bootstrap here"}, runtime="provided")
    st, h, body = d.invoke("noentry", {})
    t.eq("missing bootstrap: Runtime.InvalidEntrypoint", h.get("x-wisp-function-error"),
         "Runtime.InvalidEntrypoint")

    d.deploy("noimport", {"app.py": "import does_not_exist\ndef handler(e, c):\n    return 1\n"},
             runtime="python3", handler="app.handler")
    st, h, body = d.invoke("noimport", {})
    t.eq("import error is an init error", h.get("x-wisp-function-error"), "Runtime.ImportModuleError")

    st, h, body = d.invoke("nosuchfn", {})
    t.eq("unknown function: 404", st, 404)
    st, h, body = d.request("POST", "/v1/functions/py/invoke", b"x" * ((6 << 20) + 1))
    t.eq("request payload over 6 MiB: 413", st, 413)

    # logs and records
    st, h, body = d.invoke("py", {"name": "logs"})
    rid = h.get("x-wisp-request-id")
    time.sleep(0.3)
    st, _, body = d.request("GET", f"/v1/functions/py/logs?request_id={rid}")
    lines = [l["line"] for l in json.loads(body).get("logs", [])] if st == 200 else []
    t.ok(any(l.startswith(f"START RequestId: {rid}") for l in lines) and
         any(l.startswith(f"END RequestId: {rid}") for l in lines), "START and END lines", lines)
    rep = [l for l in lines if l.startswith("REPORT")]
    t.ok(rep and "Duration:" in rep[0] and "Billed Duration:" in rep[0] and
         "Memory Size: 256 MB" in rep[0] and "Max Memory Used:" in rep[0], "REPORT line", rep)
    st, h, body = d.request("POST", "/v1/functions/boom/invoke", b"{}", {"X-Wisp-Log-Type": "Tail"})
    tail = base64.b64decode(h.get("x-wisp-log-result", "")).decode(errors="replace")
    t.ok("START RequestId" in tail and "ValueError" in tail and "REPORT RequestId" in tail,
         "X-Wisp-Log-Type: Tail returns the invocation's log", (h, tail))
    st, _, body = d.request("GET", f"/v1/invocations/{rid}")
    rec = json.loads(body) if st == 200 else {}
    t.ok(rec.get("function") == "py" and rec.get("outcome") == "success" and rec.get("cold") is False,
         "invocation record", (st, rec))
    st, _, body = d.request("GET", "/metrics", token=False)
    t.ok(b'wisp_invocations_total{function="py",outcome="success"}' in body and
         b"wisp_cold_starts_total" in body, "invocation metrics", body[:300])
    follow_checks(t, d)
    t.eq("daemon exits 0 on SIGTERM", d.stop(), 0)
sys.exit(1 if t.failed else 0)
