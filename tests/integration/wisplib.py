"""wisplib - helpers for Python integration tests: a real wisp daemon on free
loopback ports with a temporary data folder, TAP output, boto3 clients.

    from wisplib import Daemon, Tap
    t = Tap(3)
    with Daemon() as d:
        lam = d.lambda_client()
        t.eq("list", lam.list_functions()["Functions"], [])
"""
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import urllib.error
import zipfile

ROOT = os.environ.get("WISP_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("WISP_BUILD") or os.path.join(ROOT, "build")


class Tap:
    """Minimal TAP producer; failures print diagnostics as '#' lines."""

    def __init__(self, plan):
        self.n = 0
        self.failed = 0
        print(f"1..{plan}", flush=True)

    def ok(self, cond, desc, diag=None):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {desc}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {desc}", flush=True)
            if diag:
                for line in str(diag).splitlines()[:30]:
                    print(f"#   {line}", flush=True)
        return cond

    def eq(self, desc, got, want):
        return self.ok(got == want, desc, f"got:  {got!r}\nwant: {want!r}")

    def skip(self, desc, why):
        self.n += 1
        print(f"ok {self.n} - {desc} # SKIP {why}", flush=True)

    def run(self, desc, fn):
        """Run fn(); an exception is a failure with its traceback."""
        try:
            fn()
        except Exception:
            self.ok(False, desc, traceback.format_exc())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def zip_bytes(files):
    """files: {name: (content bytes|str, mode)} -> zip bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, spec in files.items():
            data, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
            if isinstance(data, str):
                data = data.encode()
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


class Daemon:
    def __init__(self, *args, data=None):
        self.tmp = tempfile.mkdtemp(prefix="wisp-pyit-")
        self.data = data or os.path.join(self.tmp, "data")
        self.args = list(args)
        self.proc = None

    def start(self):
        self.admin_port = free_port()
        self.gateway_port = free_port()
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.gateway = f"http://127.0.0.1:{self.gateway_port}"
        self.log = open(os.path.join(self.tmp, "daemon.log"), "ab")
        env = {"PATH": "/usr/bin:/bin", "WISP_LOG_LEVEL": os.environ.get("WISP_LOG_LEVEL", "info")}
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "wisp"), "serve", "--listen", f"127.0.0.1:{self.gateway_port}",
             "--admin", f"127.0.0.1:{self.admin_port}", "--data", self.data,
             "--runtimes", os.path.join(BUILD, "runtimes")] + self.args,
            stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.admin + "/healthz", timeout=1).read()
                break
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError("daemon exited at start:\n" + self.log_tail())
                time.sleep(0.05)
        self.token = open(os.path.join(self.data, "admin.token")).read().strip()
        creds = open(os.path.join(self.data, "aws-credentials")).read()
        kv = {k.strip(): v.strip() for k, v in (l.split("=", 1) for l in creds.splitlines() if "=" in l)}
        self.akid = kv["aws_access_key_id"].strip()
        self.secret = kv["aws_secret_access_key"].strip()
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode if self.proc else None

    def log_tail(self, n=40):
        try:
            with open(os.path.join(self.tmp, "daemon.log"), "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            print("# daemon log:\n" + "\n".join("#   " + l for l in self.log_tail().splitlines()))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def request(self, method, path, body=None, headers=None, token=True, timeout=60):
        """Admin API call -> (status, headers dict (lower-case), body bytes)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {self.token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.admin + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def deploy(self, name, files, **config):
        """Create/replace a function from {name: content} files with the native API."""
        st, _, body = self.request("PUT", f"/v1/functions/{name}", config)
        if st not in (200, 201):
            raise RuntimeError(f"config {name}: {st} {body!r}")
        st, _, body = self.request("PUT", f"/v1/functions/{name}/code", zip_bytes(files),
                                   {"Content-Type": "application/zip"})
        if st != 200:
            raise RuntimeError(f"code {name}: {st} {body!r}")
        return json.loads(body)

    def invoke(self, name, event=None, timeout=120):
        data = event if isinstance(event, bytes) else json.dumps(event if event is not None else {}).encode()
        return self.request("POST", f"/v1/functions/{name}/invoke", data, timeout=timeout)

    def lambda_client(self):
        import boto3
        from botocore.config import Config
        return boto3.client("lambda", endpoint_url=self.admin, region_name="us-east-1",
                            aws_access_key_id=self.akid, aws_secret_access_key=self.secret,
                            config=Config(retries={"max_attempts": 0}, read_timeout=120))
