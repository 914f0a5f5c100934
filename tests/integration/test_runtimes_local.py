#!/usr/bin/python3
"""test_runtimes_local.py - wisp's built-in runtimes against a real Runtime API.

No daemon and no sandbox: an in-process HTTP/1.1 server on 127.0.0.1 plays the
Lambda Runtime API (GET /next long poll, POST /response, /error, /init/error)
and each runtime runs as a real process, given the environment the daemon
gives, with LAMBDA_TASK_ROOT pointing at a temporary copy of the code:
runtimes/python3/bootstrap.py, runtimes/nodejs/bootstrap.js, the static C
example bootstrap ($WISP_BUILD/examples/hello-c/bootstrap, built here if
absent) and the shell example. Prints TAP.

    tests/integration/test_runtimes_local.py        # WISP_BUILD defaults to <repo>/build
"""
import http.server
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WISP_BUILD") or os.path.join(ROOT, "build")
RUNTIMES = os.path.join(ROOT, "runtimes")
EXAMPLES = os.path.join(ROOT, "examples")
PYTHON = "/usr/bin/python3"
NODE = "/usr/bin/node"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"
WAIT = 15.0


# ---- The Runtime API --------------------------------------------------------


class RuntimeAPI:
    """A Runtime API for one runtime process: events are queued with push();
    what the runtime posts is collected and awaited with result()."""

    def __init__(self, close_after_post=False):
        self.close_after_post = close_after_post
        self.events = queue.Queue()
        self.results = {}
        self.init_errors = []
        self.pending = set()
        self.connections = 0
        self.stopping = threading.Event()
        self.cond = threading.Condition()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                http.server.BaseHTTPRequestHandler.setup(self)
                with api.cond:
                    api.connections += 1

            def log_message(self, *args):
                pass

            def reply(self, status, body, headers=()):
                if api.close_after_post and self.command == "POST":
                    headers = list(headers) + [("Connection", "close")]
                    self.close_connection = True
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404, b'{"errorType":"NotFound"}')
                while True:
                    try:
                        request_id, body, headers = api.events.get(timeout=0.1)
                        break
                    except queue.Empty:
                        if api.stopping.is_set():
                            self.close_connection = True
                            return
                self.reply(200, body, [("Content-Type", "application/json")] + headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = self.path.split("/")
                # /2018-06-01/runtime/invocation/<id>/<kind> or /2018-06-01/runtime/init/error
                if self.path == "/2018-06-01/runtime/init/error":
                    with api.cond:
                        api.init_errors.append((body, dict(self.headers)))
                        api.cond.notify_all()
                    return self.reply(202, b'{"status":"OK"}')
                if len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
                    with api.cond:
                        if parts[4] not in api.pending:
                            return self.reply(400, b'{"errorType":"InvalidRequestID"}')
                        api.pending.discard(parts[4])
                        api.results[parts[4]] = (parts[5], body, dict(self.headers))
                        api.cond.notify_all()
                    return self.reply(202, b'{"status":"OK"}')
                return self.reply(404, b'{"errorType":"NotFound"}')

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # A runtime killed mid-request is expected here.

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.address = "127.0.0.1:%d" % self.server.server_address[1]

    def push(self, event, timeout_ms=3000, trace="Root=1-5e1b4151-5ac6c58f5b5d4b5a9c1e2f3a;Sampled=1",
             client_context=None, identity=None):
        """Queues an event (bytes, str or a JSON value); returns its request id."""
        request_id = str(uuid.uuid4())
        if isinstance(event, bytes):
            body = event
        elif isinstance(event, str):
            body = event.encode()
        else:
            body = json.dumps(event).encode()
        headers = [("Lambda-Runtime-Aws-Request-Id", request_id),
                   ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + timeout_ms)),
                   ("Lambda-Runtime-Invoked-Function-Arn", ARN)]
        if trace:
            headers.append(("Lambda-Runtime-Trace-Id", trace))
        if client_context is not None:
            headers.append(("Lambda-Runtime-Client-Context", json.dumps(client_context)))
        if identity is not None:
            headers.append(("Lambda-Runtime-Cognito-Identity", json.dumps(identity)))
        with self.cond:
            self.pending.add(request_id)
        self.events.put((request_id, body, headers))
        return request_id

    def result(self, request_id, timeout=WAIT):
        """(kind "response"|"error", body bytes, headers) or None on timeout."""
        deadline = time.time() + timeout
        with self.cond:
            while request_id not in self.results:
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.results[request_id]

    def init_error(self, timeout=WAIT):
        deadline = time.time() + timeout
        with self.cond:
            while not self.init_errors:
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.init_errors[0]

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class Runtime:
    """One runtime process with the environment the daemon gives it."""

    def __init__(self, argv, task_root, handler, env=None, close_after_post=False):
        self.api = RuntimeAPI(close_after_post)
        self.task_root = task_root
        full_env = {
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": RUNTIMES,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef",
            "TZ": ":UTC",
            "LANG": "C.UTF-8",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LD_LIBRARY_PATH": os.path.join(task_root, "lib"),
        }
        full_env.update(env or {})
        self.output = []
        self.proc = subprocess.Popen(argv, env=full_env, cwd="/", stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line.decode("utf-8", "replace").rstrip("\n"))

    def invoke(self, event, **kw):
        """Pushes an event and waits for the outcome: (kind, decoded JSON or
        raw bytes, headers)."""
        request_id = self.api.push(event, **kw)
        got = self.api.result(request_id)
        if got is None:
            raise AssertionError("no result for %s within %ss; exit=%s; output:\n%s"
                                 % (request_id, WAIT, self.proc.poll(), self.log_tail()))
        kind, body, headers = got
        try:
            value = json.loads(body)
        except ValueError:
            value = body
        return kind, value, headers, request_id

    def exit_status(self, timeout=WAIT):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, n=30):
        return "\n".join(self.output[-n:])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(5)
        self.api.close()


# ---- Helpers ----------------------------------------------------------------


def expect(cond, message, runtime=None):
    if not cond:
        if runtime is not None:
            message += "\n--- runtime output ---\n" + runtime.log_tail()
        raise AssertionError(message)


def task_dir(files=None, copy_from=None):
    """A temporary task root: a copy of copy_from and/or the given files."""
    root = tempfile.mkdtemp(prefix="wisp-rt-")
    dest = os.path.join(root, "task")
    if copy_from:
        shutil.copytree(copy_from, dest)
    else:
        os.mkdir(dest)
    for name, text in (files or {}).items():
        path = os.path.join(dest, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    _tmp_dirs.append(root)
    return dest


_tmp_dirs = []


def python_runtime(task_root, handler, env=None, **kw):
    argv = [PYTHON, "-S", "-B", os.path.join(RUNTIMES, "python3", "bootstrap.py")]
    return Runtime(argv, task_root, handler, env, **kw)


def node_runtime(task_root, handler, env=None, **kw):
    return Runtime([NODE, os.path.join(RUNTIMES, "nodejs", "bootstrap.js")], task_root, handler,
                   env, **kw)


_c_bootstrap = None


def c_bootstrap():
    """The static hello-c bootstrap: from the build, else compiled here."""
    global _c_bootstrap
    if _c_bootstrap:
        return _c_bootstrap
    built = os.path.join(BUILD, "examples", "hello-c", "bootstrap")
    if os.access(built, os.X_OK):
        _c_bootstrap = built
        return built
    out = os.path.join(tempfile.mkdtemp(prefix="wisp-rt-c-"), "bootstrap")
    _tmp_dirs.append(os.path.dirname(out))
    subprocess.run(["gcc", "-std=gnu11", "-O2", "-static", "-I", os.path.join(RUNTIMES, "c"),
                    "-o", out, os.path.join(EXAMPLES, "hello-c", "main.c"),
                    os.path.join(RUNTIMES, "c", "wisp_runtime.c")], check=True)
    _c_bootstrap = out
    return out


# ---- Fixtures ---------------------------------------------------------------

PY_FIXTURE = {
    "ctx.py": '''
import os, sys

def handler(event, context):
    cc = context.client_context
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory": context.memory_limit_in_mb,
        "log_group": context.log_group_name,
        "log_stream": context.log_stream_name,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "custom": cc.custom if cc else None,
        "app_title": cc.client.app_title if cc and cc.client else None,
        "identity_id": context.identity.cognito_identity_id,
        "cwd": os.getcwd(),
        "path0": sys.path[0],
    }

def boom(event, context):
    raise KeyError("missing thing")

def unserialisable(event, context):
    return {"a": {1, 2}}

def echo(event, context):
    return event

def logs(event, context):
    import logging
    logging.getLogger().setLevel(logging.INFO)
    logging.info("hello from logging")
    print("printed line")
    return "ok"

def exits(event, context):
    os._exit(42)
''',
    "pkg/mod.py": '''
def fn(event, context):
    return {"nested": True, "module": __name__}
''',
    "bad.py": "def handler(event, context:\n    return 1\n",
    "raises_at_import.py": "raise RuntimeError('no config')\n",
}

NODE_FIXTURE = {
    "esm.mjs": '''
export const handler = async (event, context) => ({
    event,
    requestId: context.awsRequestId,
    arn: context.invokedFunctionArn,
    remaining: context.getRemainingTimeInMillis(),
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    memory: context.memoryLimitInMB,
    logGroup: context.logGroupName,
    trace: process.env._X_AMZN_TRACE_ID,
    clientContext: context.clientContext,
    identity: context.identity,
    cwd: process.cwd(),
    kind: 'esm',
});
export const fails = async () => { throw new TypeError('bad input'); };
export const late = async () => {
    setTimeout(() => { throw new Error('thrown from a timer'); }, 10);
    return new Promise(() => {});
};
''',
    "cjs.js": '''
exports.handler = async (event) => ({ kind: 'cjs', event });
exports.api = { v1: { handler: async () => ({ kind: 'nested-export' }) } };
exports.notfn = 42;
''',
    "cb.cjs": '''
let fired = false;
exports.waits = (event, context, callback) => {
    fired = false;
    setTimeout(() => { fired = true; }, 300);
    callback(null, { kind: 'callback', started: Date.now() });
};
exports.nowait = (event, context, callback) => {
    context.callbackWaitsForEmptyEventLoop = false;
    setTimeout(() => {}, 5000);
    callback(null, { kind: 'nowait' });
};
exports.cberror = (event, context, callback) => callback(new RangeError('out of range'));
exports.succeed = (event, context) => { context.succeed({ kind: 'succeed' }); };
exports.plain = (event) => { /* neither returns a promise nor calls back */ };
''',
    "sub/package.json": '{"type": "module"}\n',
    "sub/esm.js": "export const handler = async () => ({ kind: 'esm-in-js' });\n",
    "bad.js": "exports.handler = (;\n",
}


# ---- Tests ------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def run(runtime, body):
    try:
        body(runtime)
    finally:
        runtime.close()


@test
def python_example_two_events():
    """python3: the hello-python example answers two events"""
    def body(rt):
        for name in ("Ada", "Linus"):
            kind, value, _, rid = rt.invoke({"name": name})
            expect(kind == "response", "kind %s: %r" % (kind, value), rt)
            expect(value["message"] == "Hello, %s!" % name, repr(value), rt)
            expect(value["request_id"] == rid, repr(value), rt)
        expect(rt.api.connections == 1, "%d connections for 2 events" % rt.api.connections, rt)
    run(python_runtime(task_dir(copy_from=os.path.join(EXAMPLES, "hello-python")), "app.handler"),
        body)


@test
def python_context():
    """python3: context fields, trace id, client context, identity, cwd"""
    def body(rt):
        kind, v, _, rid = rt.invoke({"k": 1}, timeout_ms=5000, client_context={
            "custom": {"a": "b"}, "client": {"app_title": "t"}}, identity={
            "cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool"})
        expect(kind == "response", repr(v), rt)
        expect(v["event"] == {"k": 1} and v["request_id"] == rid and v["arn"] == ARN, repr(v))
        expect(3000 < v["remaining"] <= 5000, "remaining %r" % v["remaining"])
        expect(v["function_name"] == "fn" and v["function_version"] == "$LATEST", repr(v))
        expect(v["memory"] == "128" and v["log_group"] == "/aws/lambda/fn", repr(v))
        expect(v["trace"].startswith("Root=1-"), repr(v["trace"]))
        expect(v["custom"] == {"a": "b"} and v["app_title"] == "t", repr(v))
        expect(v["identity_id"] == "id-1", repr(v))
        expect(v["cwd"] == rt.task_root and v["path0"] == rt.task_root, repr(v))
        kind, v, _, _ = rt.invoke({}, trace=None)
        expect(v["trace"] is None, "trace id not cleared: %r" % v["trace"])
    run(python_runtime(task_dir(PY_FIXTURE), "ctx.handler"), body)


@test
def python_empty_and_large_events():
    """python3: an empty event is {}; a 2 MiB event round-trips"""
    def body(rt):
        kind, v, _, _ = rt.invoke(b"")
        expect(kind == "response" and v == {}, repr(v), rt)
        big = {"blob": "x" * (2 * 1024 * 1024)}
        kind, v, _, _ = rt.invoke(big)
        expect(kind == "response" and v == big, "2 MiB echo differs", rt)
        kind, v, _, _ = rt.invoke(b"{not json")
        expect(kind == "error" and v["errorType"] == "Runtime.UnmarshalError", repr(v), rt)
    run(python_runtime(task_dir(PY_FIXTURE), "ctx.echo"), body)


@test
def python_handler_error():
    """python3: an exception becomes an error document with stackTrace and header"""
    def body(rt):
        kind, v, headers, rid = rt.invoke({})
        expect(kind == "error", "kind %s" % kind, rt)
        expect(v["errorType"] == "KeyError" and "missing thing" in v["errorMessage"], repr(v))
        expect(isinstance(v["stackTrace"], list) and v["stackTrace"], repr(v))
        expect("ctx.py" in v["stackTrace"][0] and "bootstrap" not in "".join(v["stackTrace"]),
               repr(v["stackTrace"]))
        expect(headers.get("Lambda-Runtime-Function-Error-Type") == "KeyError", repr(headers))
        kind, v, _, _ = rt.invoke({})
        expect(kind == "error", "second invocation after an error: %s" % kind, rt)
    run(python_runtime(task_dir(PY_FIXTURE), "ctx.boom"), body)


@test
def python_marshal_error():
    """python3: a result that is not JSON gives Runtime.MarshalError"""
    def body(rt):
        kind, v, _, _ = rt.invoke({})
        expect(kind == "error" and v["errorType"] == "Runtime.MarshalError", repr(v), rt)
        expect("not JSON serializable" in v["errorMessage"], repr(v))
    run(python_runtime(task_dir(PY_FIXTURE), "ctx.unserialisable"), body)


@test
def python_nested_handler():
    """python3: handler "pkg/mod.fn" loads pkg/mod.py"""
    def body(rt):
        kind, v, _, _ = rt.invoke({})
        expect(kind == "response" and v == {"nested": True, "module": "pkg.mod"}, repr(v), rt)
    run(python_runtime(task_dir(PY_FIXTURE), "pkg/mod.fn"), body)


@test
def python_logging():
    """python3: print and logging reach stdout, logging in Lambda's format"""
    def body(rt):
        kind, v, _, rid = rt.invoke({})
        expect(kind == "response" and v == "ok", repr(v), rt)
        time.sleep(0.2)
        out = "\n".join(rt.output)
        expect("printed line" in out, out)
        expect(any(line.startswith("[INFO]\t") and rid in line and "hello from logging" in line
                   for line in rt.output), out)
    run(python_runtime(task_dir(PY_FIXTURE), "ctx.logs"), body)


def init_error_case(make, handler, want_type, want_text):
    rt = make(handler)
    try:
        got = rt.api.init_error()
        expect(got is not None, "no init error", rt)
        v = json.loads(got[0])
        expect(v["errorType"] == want_type, "errorType %r, want %r: %r" % (v["errorType"],
               want_type, v), rt)
        expect(want_text in v["errorMessage"], "message %r lacks %r" % (v["errorMessage"],
               want_text))
        expect(got[1].get("Lambda-Runtime-Function-Error-Type") == want_type, repr(got[1]))
        status = rt.exit_status()
        expect(status not in (None, 0), "exit status %r after an init error" % status, rt)
    finally:
        rt.close()


@test
def python_init_errors():
    """python3: missing module, missing function, syntax error, import-time exception"""
    root = task_dir(PY_FIXTURE)
    make = lambda h: python_runtime(root, h)  # noqa: E731
    init_error_case(make, "nope.handler", "Runtime.ImportModuleError", "No module named 'nope'")
    init_error_case(make, "ctx.nope", "Runtime.HandlerNotFound", "Handler 'nope' missing")
    init_error_case(make, "bad.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module")
    init_error_case(make, "raises_at_import.handler", "RuntimeError", "no config")
    init_error_case(make, "nodot", "Runtime.MalformedHandlerName", "Bad handler")


@test
def python_exit_mid_invocation():
    """python3: a handler calling os._exit(42) ends the process with 42"""
    rt = python_runtime(task_dir(PY_FIXTURE), "ctx.exits")
    try:
        rid = rt.api.push({})
        expect(rt.exit_status() == 42, "exit status %r" % rt.proc.poll(), rt)
        expect(rt.api.result(rid, 0.5) is None, "a result was posted anyway")
    finally:
        rt.close()


@test
def node_example_two_events():
    """nodejs: the hello-node example (ESM, async) answers two events on one connection"""
    def body(rt):
        for name in ("Ada", "Grace"):
            kind, v, _, rid = rt.invoke({"name": name})
            expect(kind == "response" and v["message"] == "Hello, %s!" % name, repr(v), rt)
            expect(v["request_id"] == rid, repr(v))
        expect(rt.api.connections == 1, "%d connections for 2 events" % rt.api.connections, rt)
    run(node_runtime(task_dir(copy_from=os.path.join(EXAMPLES, "hello-node")), "index.handler"),
        body)


@test
def node_context():
    """nodejs: context fields, memoryLimitInMB string, trace id, client context, cwd"""
    def body(rt):
        kind, v, _, rid = rt.invoke({"k": 2}, timeout_ms=5000, client_context={"custom": {"a": 1}},
                                    identity={"cognitoIdentityId": "id-2"})
        expect(kind == "response" and v["kind"] == "esm", repr(v), rt)
        expect(v["event"] == {"k": 2} and v["requestId"] == rid and v["arn"] == ARN, repr(v))
        expect(3000 < v["remaining"] <= 5000, "remaining %r" % v["remaining"])
        expect(v["memory"] == "128" and v["functionName"] == "fn", repr(v))
        expect(v["functionVersion"] == "$LATEST" and v["logGroup"] == "/aws/lambda/fn", repr(v))
        expect(v["trace"].startswith("Root=1-"), repr(v))
        expect(v["clientContext"] == {"custom": {"a": 1}}, repr(v))
        expect(v["identity"] == {"cognitoIdentityId": "id-2"}, repr(v))
        expect(v["cwd"] == rt.task_root, repr(v))
        kind, v, _, _ = rt.invoke(b"")
        expect(v["event"] == {} and "trace" not in v or v.get("trace") is not None, repr(v))
    run(node_runtime(task_dir(NODE_FIXTURE), "esm.handler"), body)


@test
def node_module_kinds():
    """nodejs: CommonJS .js, nested export, .js under "type": "module", nested folder"""
    root = task_dir(NODE_FIXTURE)
    for handler, want in (("cjs.handler", "cjs"), ("cjs.api.v1.handler", "nested-export"),
                          ("sub/esm.handler", "esm-in-js")):
        rt = node_runtime(root, handler)
        try:
            kind, v, _, _ = rt.invoke({"x": 1})
            expect(kind == "response" and v["kind"] == want, "%s: %r" % (handler, v), rt)
        finally:
            rt.close()


@test
def node_callbacks():
    """nodejs: callback waits for the empty event loop unless told not to; succeed; plain"""
    root = task_dir(NODE_FIXTURE)
    rt = node_runtime(root, "cb.waits")
    try:
        rt.invoke({})  # warm up
        t0 = time.time()
        kind, v, _, _ = rt.invoke({})
        took = time.time() - t0
        expect(kind == "response" and v["kind"] == "callback", repr(v), rt)
        expect(took >= 0.25, "callback answered after %.3fs, before the 300 ms timer" % took, rt)
    finally:
        rt.close()
    rt = node_runtime(root, "cb.nowait")
    try:
        rt.invoke({})
        t0 = time.time()
        kind, v, _, _ = rt.invoke({})
        took = time.time() - t0
        expect(kind == "response" and v["kind"] == "nowait", repr(v), rt)
        expect(took < 2, "callbackWaitsForEmptyEventLoop=false still waited %.3fs" % took, rt)
    finally:
        rt.close()
    for handler, want in (("cb.succeed", {"kind": "succeed"}), ("cb.plain", None)):
        rt = node_runtime(root, handler)
        try:
            kind, v, _, _ = rt.invoke({})
            expect(kind == "response" and v == want, "%s: %r" % (handler, v), rt)
        finally:
            rt.close()


@test
def node_errors():
    """nodejs: async throw and callback(err) give {errorType, errorMessage, trace}"""
    root = task_dir(NODE_FIXTURE)
    for handler, etype, msg in (("esm.fails", "TypeError", "bad input"),
                                ("cb.cberror", "RangeError", "out of range")):
        rt = node_runtime(root, handler)
        try:
            kind, v, headers, _ = rt.invoke({})
            expect(kind == "error" and v["errorType"] == etype and v["errorMessage"] == msg,
                   "%s: %r" % (handler, v), rt)
            expect(isinstance(v["trace"], list) and v["trace"][0].startswith(etype), repr(v))
            expect(headers.get("Lambda-Runtime-Function-Error-Type") == etype, repr(headers))
            kind, v, _, _ = rt.invoke({})
            expect(kind == "error", "second invocation: %s" % kind, rt)
        finally:
            rt.close()


@test
def node_uncaught_exception():
    """nodejs: an exception thrown from a timer fails the invocation and exits 129"""
    rt = node_runtime(task_dir(NODE_FIXTURE), "esm.late")
    try:
        kind, v, _, _ = rt.invoke({})
        expect(kind == "error" and v["errorMessage"] == "thrown from a timer", repr(v), rt)
        expect(rt.exit_status() == 129, "exit status %r" % rt.proc.poll(), rt)
    finally:
        rt.close()


@test
def node_init_errors():
    """nodejs: missing module, missing/non-function export, syntax error, bad name"""
    root = task_dir(NODE_FIXTURE)
    make = lambda h: node_runtime(root, h)  # noqa: E731
    init_error_case(make, "nope.handler", "Runtime.ImportModuleError", "Cannot find module")
    init_error_case(make, "esm.nope", "Runtime.HandlerNotFound", "esm.nope is undefined")
    init_error_case(make, "cjs.notfn", "Runtime.HandlerNotFound", "is not a function")
    init_error_case(make, "bad.handler", "Runtime.UserCodeSyntaxError", "SyntaxError")
    init_error_case(make, "nodot", "Runtime.MalformedHandlerName", "Bad handler")


@test
def c_example_two_events():
    """c: the static hello-c bootstrap answers two events on one connection"""
    def body(rt):
        for name in ("Ada", "K&R \"C\""):
            kind, v, _, rid = rt.invoke({"name": name}, timeout_ms=4000)
            expect(kind == "response", "kind %s: %r" % (kind, v), rt)
            expect(v["message"] == "Hello, %s!" % name and v["request_id"] == rid, repr(v))
            expect(v["function_arn"] == ARN and 2000 < v["remaining_ms"] <= 4000, repr(v))
        kind, v, _, _ = rt.invoke(b"")
        expect(kind == "response" and v["message"] == "Hello, world!", repr(v), rt)
        expect(rt.api.connections == 1, "%d connections for 3 events" % rt.api.connections, rt)
    run(Runtime([c_bootstrap()], task_dir({"x": ""}), "unused"), body)


@test
def c_example_error():
    """c: wisp_rt_fail becomes an error document with the header"""
    def body(rt):
        kind, v, headers, _ = rt.invoke({"fail": True})
        expect(kind == "error" and v["errorType"] == "HelloError", repr(v), rt)
        expect(v["errorMessage"] == "asked to fail by the event" and v["stackTrace"] == [], repr(v))
        expect(headers.get("Lambda-Runtime-Function-Error-Type") == "HelloError", repr(headers))
        kind, v, _, _ = rt.invoke({"name": 7})
        expect(kind == "error" and v["errorType"] == "InvalidInput", repr(v), rt)
        kind, v, _, _ = rt.invoke({"name": "after errors"})
        expect(kind == "response" and v["message"] == "Hello, after errors!", repr(v), rt)
    run(Runtime([c_bootstrap()], task_dir({"x": ""}), "unused"), body)


@test
def c_bad_api_address():
    """c: a bootstrap with an unusable AWS_LAMBDA_RUNTIME_API exits non-zero"""
    rt = Runtime([c_bootstrap()], task_dir({"x": ""}), "unused",
                 {"AWS_LAMBDA_RUNTIME_API": "no-port"})
    try:
        status = rt.exit_status()
        expect(status not in (None, 0), "exit status %r" % status, rt)
    finally:
        rt.close()


@test
def shell_example():
    """shell: the hello-shell bootstrap (sh + curl) answers events and reports errors"""
    if not os.access("/usr/bin/curl", os.X_OK):
        return "SKIP curl is not installed"
    root = task_dir(copy_from=os.path.join(EXAMPLES, "hello-shell"))

    def body(rt):
        for n in (1, 2):
            kind, v, _, rid = rt.invoke({"n": n})
            expect(kind == "response" and v["event"] == {"n": n} and v["request_id"] == rid,
                   repr(v), rt)
            expect(v["function_arn"] == ARN, repr(v))
        kind, v, headers, _ = rt.invoke({"fail": True})
        expect(kind == "error" and v["errorType"] == "Unhandled", repr(v), rt)
    run(Runtime([os.path.join(root, "bootstrap")], root, "function.handler"), body)


@test
def reconnect_after_connection_close():
    """python3, nodejs, c: a Runtime API that closes after every answer is reconnected to"""
    runtimes = [
        python_runtime(task_dir(PY_FIXTURE), "ctx.echo", close_after_post=True),
        node_runtime(task_dir(NODE_FIXTURE), "cjs.handler", close_after_post=True),
        Runtime([c_bootstrap()], task_dir({"x": ""}), "unused", close_after_post=True),
    ]
    try:
        for rt in runtimes:
            for n in range(3):
                kind, v, _, _ = rt.invoke({"n": n})
                expect(kind == "response", "%s: %s %r" % (rt.proc.args[0], kind, v), rt)
            expect(rt.api.connections >= 3, "%s: only %d connections" % (rt.proc.args[0],
                   rt.api.connections), rt)
    finally:
        for rt in runtimes:
            rt.close()


def main():
    print("1..%d" % len(TESTS), flush=True)
    failed = 0
    for n, fn in enumerate(TESTS, 1):
        name = (fn.__doc__ or fn.__name__).strip()
        try:
            outcome = fn()
        except Exception as e:
            failed += 1
            print("not ok %d - %s" % (n, name))
            text = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            for line in text.splitlines():
                print("# " + line)
        else:
            if isinstance(outcome, str) and outcome.startswith("SKIP"):
                print("ok %d - %s # %s" % (n, name, outcome))
            else:
                print("ok %d - %s" % (n, name))
        sys.stdout.flush()
    for d in _tmp_dirs:
        shutil.rmtree(d, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
