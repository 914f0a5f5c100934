"""wisp_bootstrap.py - wisp's built-in Python runtime (runtime "python3").

It speaks the AWS Lambda Runtime API so that handlers written for Lambda run
unmodified: it loads the handler named by _HANDLER ("module.function", the
module may be "dir/sub/module") from LAMBDA_TASK_ROOT, then loops forever:
GET /runtime/invocation/next, call function(event, context), POST the JSON of
the result to /response or an error document to /error. A handler that cannot
be loaded is reported once to /runtime/init/error and the process exits 1.

The daemon runs it through the small bootstrap.py next to it:

    /usr/bin/python3 -S -B /var/runtime/python3/bootstrap.py

(bootstrap.py imports this module so that its compiled form in __pycache__,
made by `make runtimes`, is used instead of compiling 2-3 ms of source at
every cold start.) -S skips the site module (half of the interpreter's start
time); the Debian dist-packages folders are then added to sys.path here, after
the function's own code, so "import boto3" still works when python3-boto3 is
installed on the host (.pth files there are not processed). -B stops Python
trying to write __pycache__ into the read-only /var/task. PYTHONPATH is
honoured (as on Lambda).

Start-up cost matters (cold starts), so only modules that load in microseconds
are imported before the handler: the HTTP client is a small one over _socket
(the daemon always answers with Content-Length; chunked bodies are accepted
too) instead of http.client (30 ms of imports), and JSON goes through the C
accelerator _json directly, falling back to the json module if that interface
ever changes. traceback is imported only when an error must be reported.

Compatibility notes: context.memory_limit_in_mb is a string, as the AWS
runtime gives it (it reads AWS_LAMBDA_FUNCTION_MEMORY_SIZE); an empty event
body becomes {}; a bytes result is sent as is; Decimal values are encoded as
numbers. If the handler's code imports the logging module, the root logger
gets Lambda's handler and format ("[LEVEL]\\t<time>Z\\t<request id>\\t<msg>")
unless the code configured a root handler itself.
"""

import _socket
import os
import sys
import time

RUNTIME_PATH = "/2018-06-01/runtime"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
JSON_SPACE = " \t\n\r"

_request_id = ""  # the current invocation's id, for the logging handler


class FaultError(Exception):
    """An error the runtime reports itself, with a Lambda errorType."""

    def __init__(self, error_type, message, trace=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


class ConnectionClosed(OSError):
    """The Runtime API closed the connection; pristine is True if it did so
    before sending any byte of the response (a stale keep-alive connection)."""

    def __init__(self, pristine):
        OSError.__init__(self, "runtime API closed the connection")
        self.pristine = pristine


# ---- JSON ----------------------------------------------------------------


def _json_default(obj):
    cls = type(obj)
    if cls.__name__ == "Decimal" and cls.__module__ in ("decimal", "_decimal", "_pydecimal"):
        if obj.is_nan():
            return float("nan")
        if obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % cls.__name__)


def _make_json():
    """Returns (loads, dumps) built on _json's scanner and encoder, which
    behave as json.loads and json.dumps(obj) with their default options."""
    try:
        import _json

        class ScanContext:
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = {
                "NaN": float("nan"),
                "Infinity": float("inf"),
                "-Infinity": float("-inf"),
            }.__getitem__
            memo = {}

        scan = _json.make_scanner(ScanContext())
        encode = _json.make_encoder(
            {}, _json_default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
        )

        def loads(text):
            start = len(text) - len(text.lstrip(JSON_SPACE))
            try:
                obj, end = scan(text, start)
                if end == len(text) or not text[end:].strip(JSON_SPACE):
                    return obj
            except Exception:
                pass
            # Malformed: the scanner needs json.decoder loaded to describe
            # the error, so let the json module parse it again and raise.
            import json

            return json.loads(text)

        def dumps(obj):
            if isinstance(obj, str):
                return _json.encode_basestring_ascii(obj)
            return "".join(encode(obj, 0))

        if loads(' {"a": [1, 2.5, "\\u00e9", null, true]} ') != {"a": [1, 2.5, "\xe9", None, True]}:
            raise ValueError("_json scanner self-test failed")
        if dumps({"a": [1, None, "\xe9"]}) != '{"a": [1, null, "\\u00e9"]}':
            raise ValueError("_json encoder self-test failed")
        return loads, dumps
    except Exception:
        import json

        return json.loads, lambda obj: json.dumps(obj, default=_json_default)


json_loads, json_dumps = _make_json()


# ---- Runtime API client ------------------------------------------------------


class RuntimeClient:
    """HTTP/1.1 client for the Runtime API over one keep-alive connection.
    Not thread-safe; the main loop is its only user."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.family = _socket.AF_INET
        if host.startswith("["):
            host = host[1:-1]
            self.family = _socket.AF_INET6
        self.addr = (host or "127.0.0.1", int(port))
        self.host_header = address
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buf = b""

    def _connect(self):
        sock = _socket.socket(self.family, _socket.SOCK_STREAM)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(self.addr)
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def request(self, method, path, body=b"", headers=()):
        """Sends one request; returns (status, headers with lower-case names,
        body bytes). Retries once on a fresh connection when a reused one
        turns out to be closed before any byte of the answer arrived."""
        head = ["%s %s%s HTTP/1.1\r\nHost: %s\r\n" % (method, RUNTIME_PATH, path, self.host_header)]
        if method != "GET":
            head.append("Content-Length: %d\r\n" % len(body))
        for name, value in headers:
            head.append("%s: %s\r\n" % (name, value))
        head.append("\r\n")
        head = "".join(head).encode("latin-1")
        while True:
            reused = self.sock is not None
            if not reused:
                self._connect()
            try:
                if len(body) < 65536:
                    self.sock.sendall(head + body)
                else:
                    self.sock.sendall(head)
                    self.sock.sendall(body)
                return self._read_response()
            except OSError as e:
                self.close()
                stale = isinstance(e, ConnectionClosed) and e.pristine
                stale = stale or isinstance(e, (BrokenPipeError, ConnectionResetError))
                if not (reused and stale):
                    raise

    def _recv(self, pristine):
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionClosed(pristine)
        return data

    def _read_exact(self, n):
        buf = self.buf
        if len(buf) < n:
            parts = [buf]
            have = len(buf)
            while have < n:
                data = self._recv(False)
                parts.append(data)
                have += len(data)
            buf = b"".join(parts)
        self.buf = buf[n:]
        return buf[:n]

    def _read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > MAX_HEADER_BYTES:
                raise OSError("runtime API sent an over-long line")
            self.buf += self._recv(False)

    def _read_response(self):
        pristine = not self.buf
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > MAX_HEADER_BYTES:
                raise OSError("runtime API sent over-long headers")
            self.buf += self._recv(pristine and not self.buf)
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        self.buf = self.buf[end + 4:]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise OSError("runtime API sent a bad status line: %r" % lines[0][:80])
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length < 0 or length > MAX_BODY_BYTES:
                raise OSError("runtime API sent a body of %d bytes" % length)
            body = self._read_exact(length)
        elif status in (204, 304) or status < 200:
            body = b""
        else:
            parts = [self.buf]
            self.buf = b""
            try:
                while True:
                    parts.append(self._recv(False))
            except ConnectionClosed:
                pass
            body = b"".join(parts)
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _read_chunked(self):
        parts = []
        total = 0
        while True:
            size = int(self._read_line().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self._read_line():
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise OSError("runtime API sent an over-long chunked body")
            parts.append(self._read_exact(size))
            self._read_line()

    def next(self):
        return self.request("GET", "/invocation/next")

    def post_response(self, request_id, payload):
        return self.request("POST", "/invocation/%s/response" % request_id, payload)

    def post_error(self, path, error_type, document):
        safe_type = "".join(c for c in error_type if " " <= c <= "~")[:256] or "Unknown"
        body = json_dumps(document).encode("utf-8")
        headers = (("Content-Type", "application/json"),
                   ("Lambda-Runtime-Function-Error-Type", safe_type))
        return self.request("POST", path, body, headers)


# ---- Handler loading ---------------------------------------------------------


def _trace_lines(tb):
    """Formats a traceback as Lambda's stackTrace list, without the runtime's
    own frames and the import machinery's."""
    import traceback

    frames = [f for f in traceback.extract_tb(tb)
              if f.filename != __file__ and not f.filename.startswith("<frozen ")]
    return traceback.format_list(frames)


def load_handler(spec):
    """Imports the handler named by spec ("module.function"); raises
    FaultError with Lambda's errorType when that fails."""
    import importlib

    modname, dot, fname = spec.rpartition(".")
    if not dot or not modname or not fname:
        raise FaultError("Runtime.MalformedHandlerName",
                         "Bad handler '%s': not enough values to unpack (expected 2, got 1)" % spec)
    if modname.split(".")[0] in sys.builtin_module_names:
        raise FaultError("Runtime.BuiltInModuleConflict",
                         "Cannot use built-in module %s as a handler module" % modname)
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultError("Runtime.ImportModuleError",
                         "Unable to import module '%s': %s" % (modname, e)) from None
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultError("Runtime.UserCodeSyntaxError",
                         "Syntax error in module '%s': %s" % (modname, e), trace) from None
    except Exception as e:
        raise FaultError(type(e).__name__, str(e), _trace_lines(e.__traceback__)) from None
    function = getattr(module, fname, None)
    if function is None:
        raise FaultError("Runtime.HandlerNotFound",
                         "Handler '%s' missing on module '%s'" % (fname, modname))
    return function


# ---- Context -----------------------------------------------------------------


class _Record:
    """A plain object whose attributes come from a dict (absent keys: None)."""

    def __init__(self, fields, data):
        for name in fields:
            setattr(self, name, data.get(name) if isinstance(data, dict) else None)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, vars(self))


class CognitoIdentity(_Record):
    pass


class Client(_Record):
    pass


class ClientContext(_Record):
    pass


class LambdaContext:
    """The context object passed to handlers, shaped as Lambda's."""

    def __init__(self, request_id, deadline_ms, function_arn, client_context, identity):
        env = os.environ
        self.aws_request_id = request_id
        self.invoked_function_arn = function_arn
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = None
        if isinstance(client_context, dict):
            cc = ClientContext(("custom", "env", "client"), client_context)
            if cc.client is not None:
                cc.client = Client(("installation_id", "app_title", "app_version_name",
                                    "app_version_code", "app_package_name"), cc.client)
            self.client_context = cc
        ids = identity if isinstance(identity, dict) else {}
        self.identity = CognitoIdentity(("cognito_identity_id", "cognito_identity_pool_id"), {
            "cognito_identity_id": ids.get("cognitoIdentityId"),
            "cognito_identity_pool_id": ids.get("cognitoIdentityPoolId"),
        })
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))
        sys.stdout.flush()

    def __repr__(self):
        return "LambdaContext(%s)" % {k: v for k, v in vars(self).items() if k[0] != "_"}


# ---- Logging -----------------------------------------------------------------


def install_logging():
    """Gives the root logger Lambda's handler and format, unless the
    function's code configured a root handler itself."""
    logging = sys.modules["logging"]
    root = logging.getLogger()
    if root.handlers:
        return

    class RequestIdFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _request_id
            return True

    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)


class LoggingImportHook:
    """Importing logging costs ~15 ms, so the runtime does not; instead this
    meta-path finder waits for the function's code to import it and installs
    Lambda's root handler right after the module has run, before any call to
    logging.info() could make basicConfig() install another."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_then_install(module):
            exec_module(module)
            install_logging()

        loader.exec_module = exec_then_install
        return spec


def log_error(error_type, message, trace):
    """Writes an error and its traceback to the function's log."""
    lines = ["[ERROR] %s: %s" % (error_type, message)]
    if trace:
        lines.append("Traceback (most recent call last):")
        for item in trace:
            lines.extend(item.rstrip("\n").split("\n"))
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def error_document(error_type, message, trace, request_id=""):
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id,
            "stackTrace": trace}


# ---- Main loop ---------------------------------------------------------------


def _parse_json_header(value, what):
    if not value:
        return None
    try:
        return json_loads(value)
    except ValueError as e:
        raise FaultError("Runtime.LambdaContextUnmarshalError",
                         "Unable to parse %s JSON: %s" % (what, e)) from None


def handle(client, handler, status, headers, body):
    """Runs one invocation and posts its outcome."""
    global _request_id
    request_id = headers.get("lambda-runtime-aws-request-id", "")
    _request_id = request_id
    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    try:
        try:
            deadline = int(headers.get("lambda-runtime-deadline-ms") or 0)
        except ValueError:
            deadline = 0
        context = LambdaContext(
            request_id, deadline, headers.get("lambda-runtime-invoked-function-arn"),
            _parse_json_header(headers.get("lambda-runtime-client-context"), "Client Context"),
            _parse_json_header(headers.get("lambda-runtime-cognito-identity"),
                               "Cognito Identity"))
        try:
            event = json_loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError as e:
            raise FaultError("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e) from None
        result = handler(event, context)
        if isinstance(result, (bytes, bytearray)):
            payload = bytes(result)
        else:
            try:
                payload = json_dumps(result).encode("utf-8")
            except (TypeError, ValueError, OverflowError, RecursionError) as e:
                raise FaultError("Runtime.MarshalError",
                                 "Unable to marshal response: %s" % e) from None
    except FaultError as e:
        log_error(e.error_type, e.message, e.trace)
        client.post_error("/invocation/%s/error" % request_id, e.error_type,
                          error_document(e.error_type, e.message, e.trace, request_id))
        return
    except Exception as e:
        error_type = type(e).__name__
        trace = _trace_lines(e.__traceback__)
        log_error(error_type, str(e), trace)
        client.post_error("/invocation/%s/error" % request_id, error_type,
                          error_document(error_type, str(e), trace, request_id))
        return
    status, _, answer = client.post_response(request_id, payload)
    if status >= 300:
        sys.stderr.write("wisp runtime: response for %s refused (%d): %s\n"
                         % (request_id, status, answer[:200].decode("utf-8", "replace")))


def _setup_path(task_root):
    """sys.path: the function's code first, layers, then what Python had
    (without this script's folder), then the system's dist-packages."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if p and p != here and p != task_root]
    front = [task_root]
    for layer in ("/opt/python/lib/python%d.%d/site-packages" % sys.version_info[:2],
                  "/opt/python"):
        if os.path.isdir(layer):
            front.append(layer)
    tail = []
    for site in ("/usr/local/lib/python%d.%d/dist-packages" % sys.version_info[:2],
                 "/usr/lib/python3/dist-packages"):
        if site not in rest and os.path.isdir(site):
            tail.append(site)
    sys.path[:] = front + rest + tail


def _die(message):
    sys.stdout.flush()
    sys.stderr.write("wisp runtime: %s\n" % message)
    sys.stderr.flush()
    os._exit(1)


def main():
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except AttributeError:
        pass
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        _die("AWS_LAMBDA_RUNTIME_API is not set")
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    _setup_path(task_root)
    try:
        os.chdir(task_root)
    except OSError:
        pass
    client = RuntimeClient(address)
    if "logging" in sys.modules:
        install_logging()
    else:
        sys.meta_path.insert(0, LoggingImportHook())

    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except FaultError as e:
        log_error(e.error_type, e.message, e.trace)
        try:
            client.post_error("/init/error", e.error_type,
                              error_document(e.error_type, e.message, e.trace))
        except OSError as oe:
            _die("could not report the init error: %s" % oe)
        _die("init failed: %s" % e.error_type)

    while True:
        try:
            status, headers, body = client.next()
        except OSError as e:
            _die("GET /next failed: %s" % e)
        if status != 200:
            _die("GET /next answered %d: %s" % (status, body[:200].decode("utf-8", "replace")))
        try:
            handle(client, handler, status, headers, body)
        except OSError as e:
            _die("posting the result failed: %s" % e)


