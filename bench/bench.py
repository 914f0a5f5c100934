#!/usr/bin/python3
"""bench.py - wisp's benchmark suite (called by bench/run.sh, which builds the tools first).

Each benchmark measures wisp and, in the same run, a baseline on the same machine (a bare
process start, nginx, a container runtime, a Node Lambda emulator), and prints a table of
p50/p90/p99/max and throughput with the ratio to the baseline and the target of issue 4.
Percentiles are computed here from the raw latencies that bench/loadgen and
bench/spawn_baseline write (nearest rank), so wisp and its baseline are summarised alike.

Cold-start baselines and wisp are measured in alternating rounds, so that noise from other
work on a shared machine falls on both sides.

    bench.py --root ROOT --build BUILD --tools DIR --out FILE [--quick] [--only a,b]
"""
import argparse
import datetime
import http.client
import io
import json
import math
import mmap
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile

CLEAN_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
PYTHON = "/usr/bin/python3"
NODE = "/usr/bin/node"
# Seconds to wait after a run before reading the machine's busy time, so the kernel's deferred
# teardown of what the run created (namespaces, cgroups, freed programs) is counted in it.
SETTLE_S = 0.3


# ---------------------------------------------------------------------------------------------
# Statistics and formatting


def quantile(values, q):
    """The q-quantile of sorted values by the nearest-rank method."""
    if not values:
        return float("nan")
    r = math.ceil(q * len(values))
    return values[max(r, 1) - 1]


class Dist:
    """A latency distribution in microseconds (raw values kept for merging)."""

    def __init__(self, values, elapsed_s=None, count=None):
        self.values = sorted(values)
        self.elapsed_s = elapsed_s
        self.count = len(self.values) if count is None else count

    @property
    def n(self):
        return len(self.values)

    def q(self, q):
        return quantile(self.values, q)

    @property
    def p50(self):
        return self.q(0.5)

    @property
    def p90(self):
        return self.q(0.9)

    @property
    def p99(self):
        return self.q(0.99)

    @property
    def max(self):
        return self.values[-1] if self.values else float("nan")

    @property
    def rate(self):
        if not self.elapsed_s:
            return float("nan")
        return self.count / self.elapsed_s

    def merge(self, other):
        el = None
        if self.elapsed_s is not None and other.elapsed_s is not None:
            el = self.elapsed_s + other.elapsed_s
        return Dist(self.values + other.values, el, self.count + other.count)


def read_raw(path, cold_only=False):
    """Latencies (µs) of a raw file: "latency [cold]" lines; cold_only keeps cold == 1."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if cold_only and (len(parts) < 2 or parts[1] != "1"):
                continue
            out.append(float(parts[0]))
    return out


def fmt_us(us):
    """Microseconds as a short human figure."""
    if us is None or (isinstance(us, float) and math.isnan(us)):
        return "n/a"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1e6:.2f} s"


def fmt_rate(r, unit="/s"):
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return "n/a"
    if r >= 10000:
        return f"{r / 1000:.1f}k{unit}"
    return f"{r:.0f}{unit}"


def fmt_ratio(x):
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "n/a"
    return f"{x:.2f}×"


def ratio(a, b):
    try:
        if b == 0 or a is None or b is None or math.isnan(a) or math.isnan(b):
            return float("nan")
    except TypeError:
        return float("nan")
    return a / b


class Report:
    """Collects the markdown text of the run and the targets checked."""

    def __init__(self):
        self.lines = []
        self.targets = []  # (benchmark, target, measured, met or None)
        self.failures = []  # benchmarks of wisp that could not run

    def add(self, text=""):
        self.lines.append(text)
        print(text, flush=True)

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            self.add("| " + " | ".join(str(c) for c in r) + " |")
        self.add()

    def dist_table(self, rows, extra_header=None):
        """rows: (label, Dist, extra cells...)."""
        header = ["measured", "n", "p50", "p90", "p99", "max", "throughput"]
        if extra_header:
            header += extra_header
        out = []
        for label, d, *extra in rows:
            if d is None:
                out.append([label, "—", "n/a", "n/a", "n/a", "n/a", "n/a"] + list(extra))
                continue
            out.append([label, d.n, fmt_us(d.p50), fmt_us(d.p90), fmt_us(d.p99), fmt_us(d.max),
                        fmt_rate(d.rate)] + list(extra))
        self.table(header, out)

    def target(self, bench, text, measured, met):
        self.targets.append((bench, text, measured, met))
        mark = "met" if met else ("NOT met" if met is not None else "not measured")
        self.add(f"- target: {text} — measured {measured}: **{mark}**")

    def text(self):
        return "\n".join(self.lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Processes and the daemon


def page_fault_us(mib=64):
    """Mean cost of the first write to a fresh anonymous page, in µs (best of 3)."""
    best = float("inf")
    pages = (mib << 20) // mmap.PAGESIZE
    for _ in range(3):
        m = mmap.mmap(-1, mib << 20)
        t0 = time.perf_counter()
        for i in range(0, mib << 20, mmap.PAGESIZE):
            m[i] = 1
        best = min(best, (time.perf_counter() - t0) / pages * 1e6)
        m.close()
    return best


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, timeout=600, check=True, env=None, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env if env is not None else {"PATH": CLEAN_PATH}, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return p


def stop_pid(proc, timeout=20):
    """SIGTERM a process we started, then SIGKILL if it does not exit."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def descendants(pid):
    """All live descendants of pid, from /proc (children files)."""
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            # A multi-threaded process: children may hang off any thread.
            kids = []
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                if int(t) == p:
                    continue
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        out += kids
        todo += kids
    return out


def proc_status(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def rss_kib(pid):
    v = proc_status(pid, "VmRSS")
    return int(v.split()[0]) if v else 0


def pss_kib(pid):
    """PSS of a process (KiB) from smaps_rollup, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def meminfo_kib(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def machine_busy_s():
    """CPU-seconds the whole machine has been busy since boot (/proc/stat: every state but
    idle and iowait). Differences count kernel work done in other contexts too (namespace
    teardown in kernel workers, RCU callbacks), which per-process CPU times miss."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def tool_daemon(build_arg, prefix, env_over=None):
    """For the analysis tools (profile.py, steps.py): BUILD made absolute (relative to the
    repository), a temporary folder, and a daemon started in it as the suite starts one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.path.abspath(build_arg if os.path.isabs(build_arg)
                            else os.path.join(root, build_arg))
    tmp = tempfile.mkdtemp(prefix=prefix)
    args = argparse.Namespace(build=build)
    return build, tmp, Daemon(args, tmp, env_over=env_over)


class Daemon:
    """A wisp daemon started for the benchmarks, with a clean environment."""

    def __init__(self, args, tmp, extra=(), env_over=None):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="daemon-", dir=tmp)
        self.data = os.path.join(self.dir, "data")
        self.gw_port = free_port()
        self.admin_port = free_port()
        self.log_path = os.path.join(self.dir, "daemon.log")
        cmd = [os.path.join(args.build, "wisp"), "serve",
               "--listen", f"127.0.0.1:{self.gw_port}",
               "--admin", f"127.0.0.1:{self.admin_port}",
               "--data", self.data, "--runtimes", os.path.join(args.build, "runtimes"),
               "--max-envs", "100000", "--memory-budget-mb", "100000000",
               "--queue-wait-ms", "60000", "--queue-max", "100000"] + list(extra)
        self.log = open(self.log_path, "ab")
        env = {"PATH": "/usr/bin:/bin", "WISP_LOG_LEVEL": os.environ.get("WISP_LOG_LEVEL", "warn")}
        # The daemon's on/off switches pass through, for A/B runs of one build.
        for k in ("WISP_NETNS_REUSE", "WISP_ZYGOTE", "WISP_EXEC_STEMS"):
            if k in os.environ:
                env[k] = os.environ[k]
        env.update(env_over or {})
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.time() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wisp serve exited at start ({self.proc.returncode}): "
                                   + self.log_tail())
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("wisp serve did not answer /healthz: " + self.log_tail())
            time.sleep(0.05)
        with open(os.path.join(self.data, "admin.token")) as f:
            self.token = f.read().strip()
        self.conn = None

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return " | ".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    def auth_header(self):
        return f"Authorization: Bearer {self.token}"

    def request(self, method, path, body=None, headers=None, timeout=60):
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                                       timeout=timeout)
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def deploy(self, name, config, zip_bytes):
        st, _, body = self.request("PUT", f"/v1/functions/{name}", json.dumps(config),
                                   {"Content-Type": "application/json"})
        if st not in (200, 201):
            raise RuntimeError(f"PUT /v1/functions/{name}: {st} {body[:300]!r}")
        st, _, body = self.request("PUT", f"/v1/functions/{name}/code", zip_bytes,
                                   {"Content-Type": "application/zip"})
        if st != 200:
            raise RuntimeError(f"PUT /v1/functions/{name}/code: {st} {body[:300]!r}")

    def configure(self, name, config):
        st, _, body = self.request("PUT", f"/v1/functions/{name}", json.dumps(config),
                                   {"Content-Type": "application/json"})
        if st not in (200, 201):
            raise RuntimeError(f"PUT /v1/functions/{name}: {st} {body[:300]!r}")

    def delete(self, name):
        st, _, body = self.request("DELETE", f"/v1/functions/{name}")
        if st not in (200, 204, 404):
            raise RuntimeError(f"DELETE /v1/functions/{name}: {st} {body[:300]!r}")

    def invoke(self, name, event=b"{}", timeout=120):
        st, h, body = self.request("POST", f"/v1/functions/{name}/invoke", event,
                                   {"Content-Type": "application/json"}, timeout=timeout)
        if st != 200 or h.get("x-wisp-function-error"):
            raise RuntimeError(f"invoke {name}: {st} {h.get('x-wisp-function-error')} "
                               f"{body[:300]!r} | daemon: {self.log_tail(5)}")
        return h, body

    def metrics(self):
        st, _, body = self.request("GET", "/metrics")
        return body.decode(errors="replace") if st == 200 else ""

    def envs_by_state(self):
        """wisp_envs{state=...} summed over functions."""
        out = {}
        for line in self.metrics().splitlines():
            m = re.match(r'wisp_envs\{([^}]*)\}\s+([0-9.eE+-]+)', line)
            if not m:
                continue
            sm = re.search(r'state="([^"]+)"', m.group(1))
            if sm:
                out[sm.group(1)] = out.get(sm.group(1), 0) + float(m.group(2))
        return out

    def stop(self):
        if self.conn is not None:
            self.conn.close()
        t0 = time.time()
        rc = stop_pid(self.proc, timeout=60)
        self.stop_s = time.time() - t0
        self.log.close()
        return rc


def zip_of(files):
    """files: {name: (bytes, mode)} -> zip bytes (modes kept for executables)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, (data, mode) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# The suite


class Suite:
    def __init__(self, args):
        self.a = args
        self.quick = args.quick
        self.tmp = tempfile.mkdtemp(prefix="wisp-bench-")
        self.rep = Report()
        self.tools = args.tools
        self.loadgen = os.path.join(self.tools, "loadgen")
        self.spawn = os.path.join(self.tools, "spawn_baseline")
        self.bootstrap = os.path.join(self.tools, "noop-bootstrap")
        with open(self.bootstrap, "rb") as f:
            self.c_zip = zip_of({"bootstrap": (f.read(), 0o755)})
        fdir = os.path.join(args.root, "bench", "functions")
        with open(os.path.join(fdir, "noop-python", "app.py"), "rb") as f:
            self.py_zip = zip_of({"app.py": (f.read(), 0o644)})
        with open(os.path.join(fdir, "noop-node", "index.js"), "rb") as f:
            self.node_zip = zip_of({"index.js": (f.read(), 0o644)})
        self.node_handler = os.path.join(fdir, "noop-node", "index.js")
        self.daemon = None
        self.nginx = None
        self.cache = {}  # results shared between benchmarks (e.g. nginx, wisp node)
        self.fn_seq = 0
        self.functions = []

    # -- helpers -----------------------------------------------------------------------------

    def n(self, full, quick):
        return quick if self.quick else full

    def raw_path(self, tag):
        self.fn_seq += 1
        return os.path.join(self.tmp, f"{tag}-{self.fn_seq}.txt")

    def loadgen_run(self, url, conns=1, requests=None, duration=None, body=None, headers=(),
                    threads=1, warmup=0, pause_us=0, timeout=660, cold_only=False):
        raw = self.raw_path("lg")
        cmd = [self.loadgen, "-j", "-o", raw, "-c", str(conns), "-t", str(threads),
               "-T", "120"]
        if duration is not None:
            cmd += ["-d", str(duration)]
        else:
            cmd += ["-n", str(requests)]
        if body is not None:
            cmd += ["-b", body]
        for h in headers:
            cmd += ["-H", h]
        if warmup:
            cmd += ["-w", str(warmup)]
        if pause_us:
            cmd += ["-p", str(pause_us)]
        cmd.append(url)
        p = run(cmd, timeout=timeout, check=False)
        try:
            res = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"loadgen failed ({p.returncode}): {p.stderr.strip()[-500:]}")
        res["dist"] = Dist(read_raw(raw, cold_only), res["elapsed_s"])
        os.unlink(raw)
        return res

    def spawn_run(self, argv, runs, env=(), warmup=3, burst=False, wrap=None, timeout=600,
                  api=False):
        raw = self.raw_path("sp")
        cmd = [self.spawn, "-j", "-o", raw, "-n", str(runs), "-w", str(warmup)]
        if burst:
            cmd.append("-P")
        if api:
            cmd.append("-a")
        for e in env:
            cmd += ["-e", e]
        cmd += ["--"] + list(argv)
        if wrap:
            cmd = wrap(cmd)
        p = run(cmd, timeout=timeout, check=False)
        try:
            res = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"spawn_baseline failed ({p.returncode}): "
                               f"{p.stderr.strip()[-500:]}")
        if res["failed"]:
            raise RuntimeError(f"{argv[0]}: {res['failed']} of {runs} runs failed: "
                               f"{p.stderr.strip()[-300:]}")
        res["dist"] = Dist(read_raw(raw), res["elapsed_s"])
        os.unlink(raw)
        return res

    def invoke_url(self, name):
        return f"{self.daemon.admin_url}/v1/functions/{name}/invoke"

    def wisp_load(self, name, **kw):
        kw.setdefault("body", "{}")
        headers = [self.daemon.auth_header(), "Content-Type: application/json"]
        return self.loadgen_run(self.invoke_url(name), headers=headers, **kw)

    def new_function(self, base, runtime, config):
        self.fn_seq += 1
        name = f"{base}-{self.fn_seq}"
        cfg = {"runtime": runtime, "memory_mb": 128, "timeout_s": 30}
        cfg.update(config)
        z = {"provided": self.c_zip, "python3": self.py_zip, "nodejs": self.node_zip}[runtime]
        self.daemon.deploy(name, cfg, z)
        self.functions.append(name)
        return name

    def drop_functions(self):
        """Deletes the functions of the benchmark that ran (their envs retire)."""
        while self.functions:
            name = self.functions.pop()
            if self.daemon is not None and self.daemon.proc.poll() is None:
                self.daemon.delete(name)

    def check_ok(self, res, what):
        bad = res["non2xx"] + res["errors"] + res["timeouts"]
        if bad:
            raise RuntimeError(f"{what}: {res['non2xx']} non-2xx, {res['errors']} errors, "
                               f"{res['timeouts']} timeouts of {res['requests']} "
                               f"| daemon: {self.daemon.log_tail(6) if self.daemon else ''}")

    def start_daemon(self, extra=(), env=None):
        if self.daemon is not None:
            self.daemon.stop()
        self.daemon = Daemon(self.a, self.tmp, extra, env)

    def start_nginx(self):
        if self.nginx is not None:
            return self.nginx
        nginx = shutil.which("nginx", path=CLEAN_PATH)
        if nginx is None:
            return None
        d = os.path.join(self.tmp, "nginx")
        os.makedirs(os.path.join(d, "logs"), exist_ok=True)
        port, pport = free_port(), free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""# nginx for wisp's benchmarks: `return 200` on loopback, no logging.
worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "{{}}"; }}
    }}
    # The same answer through a reverse proxy with keep-alive connections to
    # it: the least work of handing each request to another process and back.
    upstream answer {{ server 127.0.0.1:{port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{pport};
        location / {{
            proxy_pass http://answer;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
        proc = subprocess.Popen([nginx, "-p", d, "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={"PATH": CLEAN_PATH})
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    return None
                time.sleep(0.05)
        self.nginx = (proc, f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{pport}/")
        return self.nginx

    def cleanup(self):
        if self.daemon is not None:
            try:
                self.daemon.stop()
            except Exception:  # noqa: BLE001 - best effort at the end
                pass
            self.daemon = None
        if self.nginx is not None:
            stop_pid(self.nginx[0])
            self.nginx = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- header ------------------------------------------------------------------------------

    def header(self):
        """The run's machine facts. The page fault cost is there because it moves every
        start-up figure: ≈ 20 µs on this machine kind on 2026-11-27, when every start-up
        baseline was 3.5-4× slower than in earlier runs (the host's memory state)."""
        model = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        mem_gib = meminfo_kib("MemTotal") / 1048576
        version = run([os.path.join(self.a.build, "wisp"), "version"],
                      check=False).stdout.strip().split("\n")[0]
        version = re.sub(r"\s*server:.*", "", version)
        load = os.getloadavg()
        now = datetime.datetime.now(datetime.timezone.utc)
        self.rep.add(f"# wisp benchmarks — {now.strftime('%Y-%m-%d %H:%M UTC')}"
                     + (" (quick configuration: a smoke test, not a measurement)"
                        if self.quick else ""))
        self.rep.add()
        self.rep.table(["", ""], [
            ["machine", f"{os.cpu_count()} CPUs, {model}, {mem_gib:.1f} GiB RAM"],
            ["kernel", f"{platform.system()} {platform.release()}"],
            ["date", now.isoformat(timespec="seconds")],
            ["wisp", version.replace("\n", " ") or "?"],
            ["load average at start", f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"],
            ["first-touch page fault", f"{page_fault_us():.1f} µs per 4 KiB page (64 MiB "
                                       f"anonymous; every process start pays hundreds)"],
            ["configuration", "quick" if self.quick else "full"],
        ])
        self.rep.add("Latencies are end to end as the client sees them (loadgen: request "
                     "written → response read; spawn_baseline: spawn → wait returns). "
                     "Percentiles by nearest rank. Ratios are wisp ÷ baseline of the same run.")
        self.rep.add()

    # -- 1. cold starts ----------------------------------------------------------------------

    def cold_rounds(self, name, runtime, baseline_argv, baseline_env, runs, rounds, label,
                    pause_us=3000, why_pause="so the previous env has gone back to /next and "
                                              "retired"):
        """Alternates rounds of the baseline and of wisp's cold start."""
        fn = self.new_function(f"cold-{name}", runtime, {
            "handler": {"provided": "bootstrap", "python3": "app.handler",
                        "nodejs": "index.handler"}[runtime],
            "idle_timeout_s": 0})
        self.daemon.invoke(fn)  # the first start may pay one-time costs (package extraction)
        base = wisp = None
        cold = total = 0
        per = max(1, runs // rounds)
        for _ in range(rounds):
            b = self.spawn_run(baseline_argv, per, env=baseline_env, warmup=1)
            base = b["dist"] if base is None else base.merge(b["dist"])
            w = self.wisp_load(fn, conns=1, requests=per, pause_us=pause_us, cold_only=True)
            self.check_ok(w, f"cold start {name}")
            cold += w["cold"]
            total += w["requests"]
            wisp = w["dist"] if wisp is None else wisp.merge(w["dist"])
        # Throughput of sequential starts: 1 / mean latency (the pauses left out).
        wisp = Dist(wisp.values, sum(wisp.values) / 1e6)
        base = Dist(base.values, sum(base.values) / 1e6)
        self.cache[f"cold-{name}"] = wisp
        self.cache[f"spawn-{name}"] = base
        r50, r99 = ratio(wisp.p50, base.p50), ratio(wisp.p99, base.p99)
        self.rep.dist_table([
            (f"wisp cold start, {runtime} (idle_timeout_s 0)", wisp, fmt_ratio(r50),
             fmt_ratio(r99)),
            (label, base, "1.00×", "1.00×"),
        ], ["ratio p50", "ratio p99"])
        self.rep.add(f"Cold starts reported by X-Wisp-Cold-Start: {cold} of {total} invocations "
                     f"({pause_us / 1000:g} ms pause between invocations {why_pause}; only the "
                     f"cold ones are in the table).")
        return wisp, base, cold, total

    def bench_cold_provided(self):
        self.rep.add("## 1a. Cold start, `provided` (static C bootstrap)")
        self.rep.add()
        self.rep.add("wisp: `POST /v1/functions/F/invoke` of the no-op static C bootstrap "
                     "(bench/functions/noop-c) with `idle_timeout_s: 0`, so every invocation "
                     "creates an env (namespaces, cgroup, rootfs, seccomp, exec) and retires "
                     "it; one connection, invocations back to back. Baseline: posix_spawn + "
                     "exec + wait of the same binary, no isolation, with `WISP_BENCH_EXIT=1` "
                     "so it exits at the top of main() (it never reaches the Runtime API).")
        self.rep.add()
        runs = self.n(400, 10)
        wisp, base, cold, total = self.cold_rounds(
            "c", "provided", [self.bootstrap], ["WISP_BENCH_EXIT=1"], runs,
            self.n(4, 1), "baseline: spawn+exec+wait of the same binary")
        self.rep.target("1 cold provided", "p50 ≤ 2 ms", fmt_us(wisp.p50), wisp.p50 <= 2000)
        self.rep.target("1 cold provided", "p99 ≤ 6 ms", fmt_us(wisp.p99), wisp.p99 <= 6000)
        r = ratio(wisp.p50, base.p50)
        self.rep.target("1 cold provided", "p50 ≤ 4× spawn+exec+wait of the same binary",
                        fmt_ratio(r), r <= 4)
        self.rep.add()
        # The floor of a cold start: the same bootstrap answering one invocation over the
        # Runtime API, with no platform and no isolation (bench/spawn_baseline -a).
        floor = None
        for _ in range(self.n(2, 1)):
            f = self.spawn_run([self.bootstrap], max(1, runs // 2), warmup=1, api=True)
            floor = f["dist"] if floor is None else floor.merge(f["dist"])
        floor = Dist(floor.values, sum(floor.values) / 1e6)
        self.cache["floor-c"] = floor
        self.rep.add("The floor of that cold start, measured after it: the same bootstrap "
                     "spawned with `AWS_LAMBDA_RUNTIME_API` pointing at bench/spawn_baseline "
                     "(`-a`), which answers its first `GET /next` with `{}` and its `POST "
                     "/response` with 202 — a whole cold invocation of this binary with no "
                     "platform and no isolation.")
        self.rep.add()
        self.rep.dist_table([
            ("wisp cold start, provided (as above)", wisp, fmt_ratio(ratio(wisp.p50, floor.p50)),
             fmt_ratio(ratio(wisp.p99, floor.p99))),
            ("floor: spawn → one invocation over the Runtime API, no isolation", floor, "1.00×",
             "1.00×"),
        ], ["ratio p50", "ratio p99"])
        self.rep.add(f"What wisp adds to the floor (p50 − p50): **{fmt_us(wisp.p50 - floor.p50)}**"
                     f" (isolation, the daemon's HTTP handling, the spawner, the env's Runtime "
                     f"API server).")
        self.rep.add()
        # How much of that is the isolation itself: the same floor measured inside a wisp env.
        inside = self.floor_in_sandbox(max(1, runs // 2))
        self.cache["floor-c-sandbox"] = inside
        self.rep.add("The same floor measured inside a wisp env (a `provided` function whose "
                     "bootstrap, a shell script, runs a static build of bench/spawn_baseline "
                     "`-a` on the same bootstrap, then execs it to answer): every process it "
                     "starts is in the env's namespaces, cgroups and seccomp filter, as uid "
                     "65534, with its mounts — the isolation without the platform.")
        self.rep.add()
        self.rep.dist_table([
            ("floor inside a wisp env (isolation, no platform)", inside,
             fmt_ratio(ratio(inside.p50, floor.p50)), fmt_ratio(ratio(inside.p99, floor.p99))),
            ("floor on the host (as above)", floor, "1.00×", "1.00×"),
        ], ["ratio p50", "ratio p99"])
        self.rep.add(f"Of what wisp adds, the isolation accounts for "
                     f"{fmt_us(inside.p50 - floor.p50)} (p50 − p50) and the platform around it "
                     f"(the client's request and answer, the daemon, the spawner's bind, the "
                     f"wake-ups between the processes) for {fmt_us(wisp.p50 - inside.p50)}.")
        self.rep.add()
        # The same cold starts without exec stems (the switch is the daemon's: a second one).
        off = None
        self.drop_functions()
        self.start_daemon(env={"WISP_EXEC_STEMS": "0"})
        try:
            fn = self.new_function("cold-nostem", "provided",
                                   {"handler": "bootstrap", "idle_timeout_s": 0})
            self.daemon.invoke(fn)
            w = self.wisp_load(fn, conns=1, requests=max(1, runs // 2), pause_us=3000,
                               cold_only=True)
            self.check_ok(w, "cold start provided, exec stems off")
            off = Dist(w["dist"].values, sum(w["dist"].values) / 1e6)
        finally:
            self.drop_functions()
            self.start_daemon()
        self.rep.add("The same cold starts with exec stems off (`WISP_EXEC_STEMS=0`, a second "
                     "daemon, measured after the rest of this section):")
        self.rep.add()
        self.rep.dist_table([
            ("wisp cold start, provided, exec stems off", off,
             fmt_ratio(ratio(off.p50, floor.p50)), fmt_ratio(ratio(off.p99, floor.p99))),
            ("wisp cold start, provided (exec stems, as above)", wisp,
             fmt_ratio(ratio(wisp.p50, floor.p50)), fmt_ratio(ratio(wisp.p99, floor.p99))),
        ], ["ratio p50 to the floor", "ratio p99 to the floor"])
        self.rep.add(f"Exec stems: p50 {fmt_us(off.p50)} → {fmt_us(wisp.p50)} "
                     f"({fmt_ratio(ratio(wisp.p50, off.p50))}).")
        self.rep.add()

    def floor_in_sandbox(self, runs):
        """bench/spawn_baseline -a of the no-op bootstrap, run inside a wisp env: the
        latencies come back as the env's stderr lines (its logs)."""
        script = (f"#!/bin/sh\n/var/task/spawn_baseline -j -a -n {runs} -w 1 "
                  f"-o /tmp/lat.txt -- /var/task/noop >/dev/null || exit 1\n"
                  f"while read -r v; do echo \"lat $v\" >&2; done </tmp/lat.txt\n"
                  f"exec /var/task/noop\n")
        with open(self.bootstrap, "rb") as f:
            boot = f.read()
        with open(self.spawn + "-static", "rb") as f:
            tool = f.read()
        self.fn_seq += 1
        name = f"floor-in-sandbox-{self.fn_seq}"
        self.daemon.deploy(name, {"runtime": "provided", "handler": "bootstrap",
                                  "memory_mb": 256, "timeout_s": 120, "idle_timeout_s": 0},
                           zip_of({"bootstrap": (script.encode(), 0o755), "noop": (boot, 0o755),
                                   "spawn_baseline": (tool, 0o755)}))
        self.functions.append(name)
        self.daemon.invoke(name, timeout=180)
        values = []
        after = 0
        while True:
            st, _, body = self.daemon.request(
                "GET", f"/v1/functions/{name}/logs?after={after}&limit=10000")
            if st != 200:
                raise RuntimeError(f"logs of {name}: {st} {body[:200]!r}")
            doc = json.loads(body)
            for r in doc["logs"]:
                line = r.get("line", "")
                if r.get("stream") == "stderr" and line.startswith("lat "):
                    values.append(float(line.split()[1]))
            if not doc["logs"]:
                break
            after = doc["next"]
        if len(values) != runs:
            raise RuntimeError(f"floor inside the sandbox: {len(values)} of {runs} latencies")
        return Dist(values, sum(values) / 1e6)

    def bench_cold_python(self):
        self.rep.add("## 1b. Cold start, `python3`")
        self.rep.add()
        self.rep.add("wisp: the no-op handler (bench/functions/noop-python, `app.handler`), "
                     "`idle_timeout_s: 0`, one connection. Baseline: `/usr/bin/python3 -c pass` "
                     "started with an empty environment (`env -i`, without the extra exec of "
                     "env itself), the interpreter the runtime uses.")
        self.rep.add()
        self.rep.add("New python3 envs are forked from the zygote (DESIGN.md §4), through a spare "
                     "it forks ahead once idle for 5 ms; the spare takes its copy-on-write "
                     "faults while it waits. Isolated cold starts (250 ms apart, the spare "
                     "ready) are the target's measure, as for nodejs; back-to-back ones follow.")
        self.rep.add()
        wisp, base, _, _ = self.cold_rounds(
            "py", "python3", [PYTHON, "-c", "pass"], [], self.n(100, 3), self.n(4, 1),
            "baseline: env -i /usr/bin/python3 -c pass", pause_us=250000,
            why_pause="so that the zygote's spare is ready")
        r = ratio(wisp.p50, base.p50)
        self.rep.target("1 cold python3", "p50 ≤ 0.25× python3 -c pass", fmt_ratio(r), r <= 0.25)
        self.rep.add()
        self.rep.add("Back to back (3 ms pauses):")
        self.rep.add()
        self.cold_rounds("py-b2b", "python3", [PYTHON, "-c", "pass"], [], self.n(100, 3),
                         self.n(4, 1), "baseline: env -i /usr/bin/python3 -c pass")
        self.rep.add()

    def bench_cold_node(self):
        self.rep.add("## 1c. Cold start, `nodejs`")
        self.rep.add()
        self.rep.add("wisp: the no-op handler (bench/functions/noop-node, `index.handler`, "
                     "CommonJS), `idle_timeout_s: 0`, one connection. Baseline: "
                     "`/usr/bin/node -e 0` with an empty environment.")
        self.rep.add()
        self.rep.add("New nodejs envs are bound from *stems* (DESIGN.md §4): sandboxes whose "
                     "node started ahead of need, two kept ready, made once the spawner has "
                     "been idle for 20 ms. Isolated cold starts (the pools refilled between "
                     "them, as when cold starts are spread out) are the target's measure; "
                     "back-to-back cold starts use up the stems faster than node starts and "
                     "are shown after them, for the sustained rate.")
        self.rep.add()
        wisp, base, _, _ = self.cold_rounds(
            "node", "nodejs", [NODE, "-e", "0"], [], self.n(60, 3), self.n(3, 1),
            "baseline: env -i /usr/bin/node -e 0", pause_us=250000,
            why_pause="so that the stems are ready again")
        r = ratio(wisp.p50, base.p50)
        self.rep.target("1 cold nodejs", "p50 ≤ 0.5× node -e 0", fmt_ratio(r), r <= 0.5)
        self.rep.add()
        self.rep.add("Back to back (3 ms pauses: the stems run out):")
        self.rep.add()
        self.cold_rounds(
            "node-b2b", "nodejs", [NODE, "-e", "0"], [], self.n(60, 3), self.n(3, 1),
            "baseline: env -i /usr/bin/node -e 0")
        self.rep.add()

    # -- 2. warm path ------------------------------------------------------------------------

    def bench_warm(self):
        self.rep.add("## 2. Warm path (no-op `provided` function)")
        self.rep.add()
        self.rep.add("One connection, invocations back to back to a warm env (after a warm-up), "
                     "then 64 connections; nginx (Debian) answering `return 200` on loopback "
                     "is measured with the same client (bench/loadgen) in the same run. "
                     "*Added latency* is measured two ways: (a) wisp's p50 minus nginx's p50 "
                     "over one connection — everything wisp adds over a server that does "
                     "nothing, including the hop to the env over the Runtime API; (b) per "
                     "request, the client latency minus `X-Wisp-Duration-Ms` (the time the "
                     "daemon counts for the env: event handed over on /next → /response "
                     "received).")
        self.rep.add()
        ng = self.start_nginx()
        fn = self.new_function("warm-c", "provided", {"handler": "bootstrap",
                                                       "idle_timeout_s": 600})
        self.daemon.invoke(fn)
        dur1 = self.n(8, 1)
        w1 = self.wisp_load(fn, conns=1, duration=dur1, warmup=200)
        self.check_ok(w1, "warm, 1 connection")
        n1 = None
        if ng:
            n1 = self.loadgen_run(ng[1], conns=1, duration=dur1, warmup=200, body="{}",
                                  headers=["Content-Type: application/json"])
        add_a = w1["dist"].p50 - n1["dist"].p50 if n1 else float("nan")
        rows = [("wisp, 1 connection", w1["dist"],
                 fmt_ratio(ratio(w1["dist"].p50, n1["dist"].p50)) if n1 else "n/a",
                 f"{w1['warm']} warm / {w1['cold']} cold"),
                ("nginx return 200, 1 connection", n1["dist"] if n1 else None, "1.00×", "")]
        self.rep.dist_table(rows, ["ratio p50", "env reuse"])
        ad = w1["added_us"]
        self.rep.add(f"Added latency (a) wisp p50 − nginx p50: **{fmt_us(add_a)}**. "
                     f"(b) client latency − X-Wisp-Duration-Ms per request: p50 "
                     f"{fmt_us(ad['p50'])}, p90 {fmt_us(ad['p90'])}, p99 {fmt_us(ad['p99'])} "
                     f"(mean X-Wisp-Duration-Ms {w1['dur_ms_mean'] * 1000:.0f} µs, "
                     f"{ad['n']} requests carried it).")
        self.rep.add()
        self.rep.target("2 warm 1 conn", "p50 added ≤ 150 µs (a: vs nginx)", fmt_us(add_a),
                        add_a <= 150 if n1 else None)
        self.rep.target("2 warm 1 conn", "p50 added ≤ 150 µs (b: minus X-Wisp-Duration-Ms)",
                        fmt_us(ad["p50"]), ad["p50"] <= 150 if ad["n"] else None)
        self.rep.add()

        dur = self.n(10, 1)
        conns = 64
        w64 = self.wisp_load(fn, conns=conns, threads=2, duration=dur, warmup=5)
        self.check_ok(w64, "warm, 64 connections")
        n64 = None
        if ng:
            n64 = self.loadgen_run(ng[1], conns=conns, threads=2, duration=dur, warmup=5,
                                   body="{}", headers=["Content-Type: application/json"])
        envs64 = self.daemon.envs_by_state()
        np64 = None
        if ng:
            np64 = self.loadgen_run(ng[2], conns=conns, threads=2, duration=dur, warmup=5,
                                    body="{}", headers=["Content-Type: application/json"])
        r = ratio(w64["dist"].rate, n64["dist"].rate) if n64 else float("nan")
        # The same load on a function limited to one env per CPU (the rest queue).
        ncpu = os.cpu_count() or 1
        fnc = self.new_function("warm-c-conc", "provided", {
            "handler": "bootstrap", "idle_timeout_s": 600, "concurrency": ncpu})
        self.daemon.invoke(fnc)
        wc = self.wisp_load(fnc, conns=conns, threads=2, duration=dur, warmup=5)
        self.check_ok(wc, "warm, 64 connections, concurrency = CPUs")
        rc = ratio(wc["dist"].rate, n64["dist"].rate) if n64 else float("nan")
        self.rep.dist_table([
            ("wisp, 64 connections", w64["dist"], fmt_ratio(r),
             f"{w64['warm']} warm / {w64['cold']} cold"),
            (f"wisp, 64 connections, function concurrency {ncpu}", wc["dist"], fmt_ratio(rc),
             f"{wc['warm']} warm / {wc['cold']} cold"),
            ("nginx return 200, 64 connections", n64["dist"] if n64 else None, "1.00×", ""),
            ("nginx reverse proxy → that nginx (keep-alive), 64 connections",
             np64["dist"] if np64 else None,
             fmt_ratio(ratio(np64["dist"].rate, n64["dist"].rate)) if np64 else "n/a", ""),
        ], ["ratio req/s", "env reuse"])
        if np64:
            self.rep.add(
                f"The proxy row is a second baseline: any platform that runs the function in "
                f"another process forwards each request at least once, and nginx's own reverse "
                f"proxy does that at {fmt_ratio(ratio(np64['dist'].rate, n64['dist'].rate))} of "
                f"nginx's rate here. wisp ÷ nginx proxy: "
                f"{fmt_ratio(ratio(max(w64['dist'].rate, wc['dist'].rate), np64['dist'].rate))} "
                f"(best wisp variant).")
        r = max(r, rc) if not math.isnan(rc) else r
        self.rep.target("2 warm 64 conns", "≥ 0.5× nginx req/s (best variant)", fmt_ratio(r),
                        r >= 0.5 if n64 else None)
        self.rep.add(f"Envs after the first 64-connection run (wisp_envs by state): "
                     f"{json.dumps(envs64) if envs64 else 'n/a'}.")
        self.rep.add()
        self.cache["warm-fn"] = fn
        if not self.quick and shutil.which("wrk", path=CLEAN_PATH):
            self.warm_wrk(fn, ng)

    def warm_wrk(self, fn, ng):
        """The same 64-connection comparison with wrk (a Lua script for POST + token)."""
        script = os.path.join(self.tmp, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = "{}"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {self.daemon.token}"\n')

        def wrk(url):
            p = run(["wrk", "-t2", "-c64", "-d5s", "-s", script, url], check=False, timeout=60)
            m = re.search(r"Requests/sec:\s+([0-9.]+)", p.stdout)
            errs = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
            return (float(m.group(1)) if m else float("nan")), (int(errs.group(1)) if errs
                                                                 else 0)

        w, we = wrk(self.invoke_url(fn))
        n, _ = wrk(ng[1]) if ng else (float("nan"), 0)
        self.rep.add(f"Cross-check with wrk -t2 -c64 -d5s: wisp {fmt_rate(w)} "
                     f"({we} non-2xx), nginx {fmt_rate(n)}: ratio {fmt_ratio(ratio(w, n))}.")
        self.rep.add()

    # -- 3. env creation rate ----------------------------------------------------------------

    def bench_env_rate(self):
        self.rep.add("## 3. Env creation rate, sustained (create, invoke, retire)")
        self.rep.add()
        conns = self.n(8, 4)
        dur = self.n(10, 1)
        self.rep.add(
            f"{conns} clients invoke a no-op `provided` function back to back for {dur} s. "
            f"Two variants: (i) `idle_timeout_s: 0`, the plain bootstrap — wisp hands a queued "
            f"invocation to an env that has just answered, so not every invocation creates an "
            f"env: the rate counted is of envs created (X-Wisp-Cold-Start: 1) per second; "
            f"(ii) the same bootstrap with `WISP_BENCH_ONESHOT=1` in the function's env: it "
            f"answers one event and exits, so every invocation needs a new env (create, invoke, "
            f"retire on exit). Baseline: {conns} parallel loops of spawn+exec+wait of the same "
            f"binary (no isolation), for about the same number of starts.")
        self.rep.add()
        rows = []
        cpu = []  # machine CPU per env of each variant, µs
        best = 0.0
        for label, extra in (("idle_timeout_s 0", {}),
                             ("one-shot bootstrap", {"env": {"WISP_BENCH_ONESHOT": "1"}})):
            cfg = {"handler": "bootstrap", "idle_timeout_s": 0}
            cfg.update(extra)
            fn = self.new_function("rate-c", "provided", cfg)
            self.daemon.invoke(fn)
            b0 = machine_busy_s()
            w = self.wisp_load(fn, conns=conns, threads=2, duration=dur)
            self.wait_no_envs()
            time.sleep(SETTLE_S)
            busy = machine_busy_s() - b0
            self.check_ok(w, f"env creation rate ({label})")
            envs_s = w["cold"] / w["elapsed_s"] if w["elapsed_s"] else float("nan")
            best = max(best, envs_s)
            per_env = busy / w["cold"] * 1e6 if w["cold"] else float("nan")
            cpu.append(per_env)
            rows.append((f"wisp, {conns} clients, {label}", w["dist"],
                         fmt_rate(envs_s, " envs/s"), fmt_us(per_env),
                         f"{w['cold']} of {w['requests']}"))
        total = max(conns * 10, int(max(r[1].n for r in rows)))
        per = max(10, total // conns)
        base, base_cpu = self.spawn_loops(conns, per, ["-e", "WISP_BENCH_EXIT=1"])
        base_vals = base.values
        rows.append((f"baseline: {conns} × spawn+exec+wait", base,
                     fmt_rate(base.rate, " starts/s"), fmt_us(base_cpu), ""))
        # The same loops with one invocation each (spawn_baseline -a serves the one-shot
        # bootstrap's GET and POST itself): the invocation's own work without isolation.
        base1, base1_cpu = self.spawn_loops(conns, per, ["-a", "-e", "WISP_BENCH_ONESHOT=1"])
        rows.append((f"baseline + one invocation: {conns} × spawn_baseline -a", base1,
                     fmt_rate(base1.rate, " starts/s"), fmt_us(base1_cpu), ""))
        # The isolation alone: the same binary, exiting at once, in sandboxes made by wisp's
        # spawner (bench/sandbox_rate: the daemon's sandbox module, no daemon, no HTTP); then
        # the same with the one-shot bootstrap answering one event from the tool's minimal
        # Runtime API (the invocation's own work in an env, still without daemon or client).
        iso, iso_cpu = self.sandbox_rate(conns, len(base_vals), serve=False)
        if iso is not None:
            rows.append((f"isolation alone: {conns} sandboxes in flight", iso,
                         fmt_rate(iso.rate, " sandboxes/s"), fmt_us(iso_cpu), ""))
        one, one_cpu = self.sandbox_rate(conns, len(base_vals), serve=True)
        if one is not None:
            rows.append(("isolation + one invocation (one-shot, no daemon)", one,
                         fmt_rate(one.rate, " sandboxes/s"), fmt_us(one_cpu), ""))
        self.rep.dist_table(rows, ["envs created", "machine CPU per env", "cold starts"])
        time.sleep(0.5)
        ncpu = os.cpu_count() or 1
        least = min(cpu) if cpu else float("nan")
        self.rep.add(f"Ratio of the best wisp env rate to the baseline's start rate: "
                     f"{fmt_ratio(ratio(best, base.rate))}. Envs alive 0.5 s after the runs "
                     f"(wisp_envs by state, all functions): "
                     f"{json.dumps(self.daemon.envs_by_state())}.")
        self.rep.add()
        self.rep.add(
            f"Machine CPU per env: the whole machine's busy time (/proc/stat, kernel workers "
            f"included) from the start of a run until its envs are gone plus {SETTLE_S:.1f} s, "
            f"divided by the envs created (the baseline: by its starts); the client's and "
            f"the baseline tool's own work are in it. wisp's least: {fmt_us(least)} = "
            f"{fmt_ratio(ratio(least, base_cpu))} the baseline's {fmt_us(base_cpu)} per start. "
            f"At those costs {ncpu} fully busy CPUs could make at most "
            f"{fmt_rate(ratio(ncpu * 1e6, least), ' envs/s')} with wisp and "
            f"{fmt_rate(ratio(ncpu * 1e6, base_cpu), ' starts/s')} with bare spawns; "
            f"500 envs/s needs at most {fmt_us(ncpu * 1e6 / 500)} of machine CPU per env "
            f"here, the bare spawn included.")
        self.rep.add()
        if iso is not None and one is not None:
            wisp1 = cpu[1] if len(cpu) > 1 else float("nan")  # the one-shot variant
            self.rep.add(
                f"The parts of an env's cost (bench/sandbox_rate: wisp's spawner linked with the "
                f"daemon's sandbox module — its pools, network namespace reuse and exec stems "
                f"as the daemon has them —, no daemon; sandboxes of the same binary with the "
                f"limits of a 128 MB function, {conns} in flight, each from the request to its "
                f"exit reported, processes gone and cgroups removed): the isolation alone (the "
                f"binary exits at once, as in the baseline) {fmt_us(iso_cpu)} of machine CPU "
                f"per sandbox = {fmt_ratio(ratio(iso_cpu, base_cpu))} the baseline's, so the "
                f"isolation adds {fmt_us(iso_cpu - base_cpu)}; with one invocation (the one-shot "
                f"bootstrap answering the event {{}} from the tool's minimal Runtime API) "
                f"{fmt_us(one_cpu)}, so the invocation's own work in an env adds "
                f"{fmt_us(one_cpu - iso_cpu)} (without isolation: {fmt_us(base1_cpu - base_cpu)}, "
                f"and an isolated env with its invocation costs "
                f"{fmt_ratio(ratio(one_cpu, base1_cpu))} the bare start with its invocation); "
                f"wisp's one-shot variant {fmt_us(wisp1)}, so the platform (the client's "
                f"request and answer, the daemon, its Runtime API server) adds "
                f"{fmt_us(wisp1 - one_cpu)}. Each row is its own run of the machine's state: "
                f"differences under about 0.5 ms are within its noise.")
            self.rep.add()
        self.rep.target("3 env rate", "≥ 500 envs/s created (best variant)",
                        fmt_rate(best, " envs/s"), best >= 500)
        self.rep.add()

    def spawn_loops(self, conns, per, mode):
        """conns parallel bench/spawn_baseline loops of per starts of the no-op bootstrap
        (mode: its extra options): (Dist, machine CPU µs per start)."""
        procs = []
        time.sleep(0.5)
        b0 = machine_busy_s()
        t0 = time.monotonic()
        for i in range(conns):
            raw = self.raw_path("rate")
            cmd = [self.spawn, "-j", "-o", raw, "-n", str(per), "-w", "0"] + mode + \
                ["--", self.bootstrap]
            procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                           env={"PATH": CLEAN_PATH}), raw))
        vals = []
        for p, raw in procs:
            p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"spawn_baseline {' '.join(mode)} failed ({p.returncode})")
            vals += read_raw(raw)
            os.unlink(raw)
        d = Dist(vals, time.monotonic() - t0)
        time.sleep(SETTLE_S)
        cpu = (machine_busy_s() - b0) / len(vals) * 1e6 if vals else float("nan")
        return d, cpu

    def sandbox_rate(self, conns, total, serve):
        """(Dist, machine CPU µs per sandbox) of bench/sandbox_rate, or (None, nan). serve:
        each sandbox answers one invocation (-a, the one-shot bootstrap); else it exits."""
        tool = os.path.join(self.tools, "sandbox_rate")
        code = tempfile.mkdtemp(prefix="sbrate-code-", dir=self.tmp)
        os.chmod(code, 0o755)
        shutil.copy(self.bootstrap, os.path.join(code, "bootstrap"))
        os.chmod(os.path.join(code, "bootstrap"), 0o755)
        raw = self.raw_path("sbrate")
        time.sleep(0.5)
        b0 = machine_busy_s()
        mode = (["-a", "-e", "WISP_BENCH_ONESHOT=1", "-e", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"]
                if serve else ["-e", "WISP_BENCH_EXIT=1"])
        p = subprocess.run([tool, "-j", "-o", raw, "-c", str(conns), "-n", str(total)] + mode +
                           ["--", code, "/var/task/bootstrap"],
                           capture_output=True, text=True, timeout=600,
                           env={"PATH": CLEAN_PATH})
        time.sleep(SETTLE_S)
        busy = machine_busy_s() - b0
        if p.returncode != 0:
            self.rep.add(f"(sandbox_rate {'-a ' if serve else ''}not measured: exited "
                         f"{p.returncode}: {p.stderr.strip()[-300:]})")
            self.rep.add()
            return None, float("nan")
        res = json.loads(p.stdout.strip().splitlines()[-1])
        vals = read_raw(raw)
        os.unlink(raw)
        return Dist(vals, res["elapsed_s"]), busy / res["sandboxes"] * 1e6

    # -- 5. burst ----------------------------------------------------------------------------

    def bench_burst(self):
        self.rep.add("## 5. Burst: from zero to N concurrent envs")
        self.rep.add()
        n = self.n(200, 20)
        rounds = self.n(5, 1)
        hold = self.n(100, 50)
        self.rep.add(
            f"{n} connections are opened first, then {n} invocations of a no-op `provided` "
            f"function that has no env are sent at once; the time is from the first request "
            f"written to the last answer read, {rounds} round(s), each from zero envs "
            f"(`idle_timeout_s: 0`, and we wait until the envs are gone). Variant *noop*: "
            f"wisp may serve the burst with fewer than {n} envs (an env that has answered "
            f"takes the next queued event). Variant *held*: each handler sleeps {hold} ms, so "
            f"{n} envs must exist at once; its time includes those {hold} ms. Baseline: {n} "
            f"posix_spawns of the same binary back to back, then all reaped.")
        self.rep.add()
        rows = []
        loads = []  # how busy the machine was during each variant's rounds
        ncpu = os.cpu_count() or 1
        worst = 0.0
        for variant, event in (("noop", "{}"), ("held", f'{{"sleep_ms": {hold}}}')):
            fn = self.new_function(f"burst-{variant}", "provided",
                                   {"handler": "bootstrap", "idle_timeout_s": 0})
            self.daemon.invoke(fn)
            times, colds, dists = [], [], None
            busy = 0.0
            for _ in range(rounds):
                self.wait_no_envs()
                time.sleep(SETTLE_S)
                b0 = machine_busy_s()
                w = self.wisp_load(fn, conns=n, requests=n, threads=1, body=event)
                busy += machine_busy_s() - b0
                self.check_ok(w, f"burst {variant}")
                times.append(w["elapsed_s"] * 1e6)
                colds.append(w["cold"])
                dists = w["dist"] if dists is None else dists.merge(w["dist"])
            wt = Dist(times)
            loads.append(f"{variant} {busy:.2f} of {ncpu * sum(times) / 1e6:.2f} CPU-s "
                         f"({ratio(busy * 1e6, ncpu * sum(times)) * 100:.0f}%)")
            worst = max(worst, wt.max - (hold * 1000 if variant == "held" else 0))
            rows.append((f"wisp {variant}: time until all {n} answered", wt, "",
                         f"{min(colds)}-{max(colds)} of {n}"))
            rows.append((f"wisp {variant}: each invocation's latency", dists, "", ""))
        btimes = []
        for _ in range(rounds):
            b = self.spawn_run([self.bootstrap], n, env=["WISP_BENCH_EXIT=1"], warmup=0,
                               burst=True)
            btimes.append(b["elapsed_s"] * 1e6)
        bt = Dist(btimes)
        for i, r in enumerate(rows):
            if r[0].startswith("wisp") and "time until" in r[0]:
                rows[i] = (r[0], r[1], fmt_ratio(ratio(r[1].p50, bt.p50)), r[3])
        rows.append((f"baseline: {n} spawns, all reaped", bt, "1.00×", ""))
        self.rep.dist_table(rows, ["ratio p50", "cold starts (envs)"])
        self.rep.add(f"The machine's busy time during the rounds (/proc/stat, from the first "
                     f"request to the last answer), of what its CPUs could give: "
                     f"{'; '.join(loads)}.")
        self.rep.add()
        self.rep.target("5 burst", f"all {n} answered ≤ 1 s (worst round, held minus its "
                                   f"{hold} ms sleep)", fmt_us(worst), worst <= 1e6)
        self.rep.add()

    def wait_no_envs(self, limit_s=30):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            st = self.daemon.envs_by_state()
            if sum(st.values()) == 0:
                return
            time.sleep(0.05)

    # -- 4. density --------------------------------------------------------------------------

    def bench_density(self):
        self.rep.add("## 4. Density: idle warm `provided` envs")
        self.rep.add()
        k = self.n(self.a.density, 20)
        self.rep.add(f"A fresh daemon; no-op `provided` functions with `min_warm` adding up "
                     f"to {k} and a long idle timeout (`--max-envs` and `--memory-budget-mb` set far "
                     f"above). We wait until wisp_envs{{state=\"idle\"}} reaches {k} (or stops "
                     f"growing), then read: the daemon's own RSS growth (daemon + its helper "
                     f"processes that existed before, e.g. the spawner), the PSS of the env "
                     f"processes (/proc/PID/smaps_rollup), the cgroup memory charged to them, "
                     f"and the machine's MemAvailable drop (all kernel objects: namespaces, "
                     f"page tables, sockets, tmpfs).")
        self.rep.add()
        self.start_daemon()
        d = self.daemon
        time.sleep(0.3)
        before_pids = set(descendants(d.pid))
        platform_pids = [d.pid] + sorted(before_pids)
        rss0 = sum(rss_kib(p) for p in platform_pids)
        pss0 = sum(pss_kib(p) for p in platform_pids)
        avail0 = meminfo_kib("MemAvailable")
        # min_warm is at most 100 per function (registry rule): K envs are spread over
        # ceil(K / 100) functions.
        per_fn = min(k, 100)
        t0 = time.monotonic()
        left = k
        while left > 0:
            m = min(per_fn, left)
            fn = self.new_function("dense-c", "provided", {"handler": "bootstrap",
                                                           "idle_timeout_s": 86400})
            d.configure(fn, {"runtime": "provided", "handler": "bootstrap", "memory_mb": 128,
                             "timeout_s": 30, "idle_timeout_s": 86400, "min_warm": m})
            left -= m
        nfn = len(self.functions)
        method = f"{nfn} function(s) with min_warm ≤ {per_fn}"
        idle, last_change, last = 0.0, time.monotonic(), -1
        limit_s = self.n(600, 20)
        while time.monotonic() - t0 < limit_s:
            idle = d.envs_by_state().get("idle", 0)
            if idle >= k:
                break
            if idle != last:
                last, last_change = idle, time.monotonic()
            elif time.monotonic() - last_change > self.n(30, 8):
                break
            time.sleep(0.2)
        fill_s = time.monotonic() - t0
        time.sleep(0.5)
        states = d.envs_by_state()
        held = int(states.get("idle", 0))
        all_pids = descendants(d.pid)
        env_pids = [p for p in all_pids if p not in before_pids]
        rss1 = sum(rss_kib(p) for p in platform_pids)
        pss1 = sum(pss_kib(p) for p in platform_pids)
        env_pss = sum(pss_kib(p) for p in env_pids)
        env_rss = sum(rss_kib(p) for p in env_pids)
        avail1 = meminfo_kib("MemAvailable")
        cg = self.cgroup_usage(env_pids)
        iso = self.isolation_check(d.pid, env_pids)
        per = max(held, 1)
        rows = [
            ["idle envs held", f"{held} of {k} asked ({method})"],
            ["time to reach them", f"{fill_s:.2f} s ({held / fill_s:.0f} envs/s)"],
            ["processes in the envs", f"{len(env_pids)}"],
            ["daemon's own memory per env (RSS growth of daemon + helpers ÷ envs)",
             f"{(rss1 - rss0) / per:.1f} KiB (RSS {rss0 / 1024:.1f} → {rss1 / 1024:.1f} MiB; "
             f"PSS growth {(pss1 - pss0) / per:.1f} KiB/env)"],
            ["env processes, PSS per env", f"{env_pss / per:.1f} KiB (RSS {env_rss / per:.1f} "
                                           f"KiB)"],
            ["cgroup memory charged per env", cg],
            ["machine MemAvailable drop per env (everything, kernel included)",
             f"{(avail0 - avail1) / per:.1f} KiB"],
            ["isolation of the envs measured", iso],
        ]
        self.rep.table(["density", "value"], rows)
        self.rep.target("4 density", f"≥ {k} idle warm envs held", f"{held}", held >= k)
        self.rep.target("4 density", "daemon memory ≤ 64 KiB per env",
                        f"{(rss1 - rss0) / per:.1f} KiB", (rss1 - rss0) / per <= 64)
        t1 = time.monotonic()
        rc = d.stop()
        self.daemon = None
        self.functions.clear()
        left = [p for p in env_pids if os.path.exists(f"/proc/{p}")]
        self.rep.add(f"Daemon stop with {held} envs: {time.monotonic() - t1:.2f} s, exit "
                     f"status {rc}; env processes left afterwards: {len(left)}.")
        self.rep.add()
        self.start_daemon()

    def cgroup_usage(self, pids):
        """Memory charged to the envs' cgroups (v1 memory.usage_in_bytes or v2 memory.current)."""
        groups = set()
        for p in pids:
            try:
                with open(f"/proc/{p}/cgroup") as f:
                    for line in f:
                        _, ctrl, path = line.strip().split(":", 2)
                        if ctrl == "memory":
                            groups.add(("v1", path))
                        elif ctrl == "" and not any(g[0] == "v1" for g in groups):
                            groups.add(("v2", path))
            except (OSError, ValueError):
                continue
        v1 = [g for g in groups if g[0] == "v1"]
        use = v1 if v1 else list(groups)
        total, kmem, n = 0, 0, 0
        for kind, path in use:
            base = "/sys/fs/cgroup/memory" if kind == "v1" else "/sys/fs/cgroup/unified"
            f = "memory.usage_in_bytes" if kind == "v1" else "memory.current"
            try:
                with open(os.path.join(base + path, f)) as fh:
                    total += int(fh.read())
                n += 1
                if kind == "v1":
                    with open(os.path.join(base + path, "memory.kmem.usage_in_bytes")) as fh:
                        kmem += int(fh.read())
            except (OSError, ValueError):
                continue
        if n == 0:
            return "n/a (no memory cgroup readable)"
        out = f"{total / n / 1024:.1f} KiB over {n} cgroups"
        if kmem:
            out += f" (of which kernel {kmem / n / 1024:.1f} KiB)"
        return out

    def isolation_check(self, daemon_pid, pids):
        """Namespaces, seccomp, uid and no_new_privs of one env process vs the daemon."""
        if not pids:
            return "n/a (no env process found)"
        p = pids[-1]
        diff = []
        for ns in ("pid", "mnt", "net", "ipc", "uts", "cgroup"):
            try:
                if os.readlink(f"/proc/{p}/ns/{ns}") != os.readlink(f"/proc/{daemon_pid}/ns/{ns}"):
                    diff.append(ns)
            except OSError:
                pass
        uid = (proc_status(p, "Uid") or "?").split()[0]
        return (f"own ns: {','.join(diff) or 'none'}; Seccomp {proc_status(p, 'Seccomp')}; "
                f"NoNewPrivs {proc_status(p, 'NoNewPrivs')}; uid {uid}; CapEff "
                f"{proc_status(p, 'CapEff')}")

    # -- 6. peers ----------------------------------------------------------------------------

    def bench_peers(self):
        self.rep.add("## 6. Peers on the same machine")
        self.rep.add()
        rows = []
        runs = self.n(100, 3)
        base = self.cache.get("spawn-c")
        if base is None:
            base = self.spawn_run([self.bootstrap], runs, env=["WISP_BENCH_EXIT=1"])["dist"]
        wisp_c = self.cache.get("cold-c")
        rows.append(("wisp cold start, provided (from 1a)", wisp_c, "1.00×", ""))
        # crun: the same static binary from an OCI bundle.
        crun = shutil.which("crun", path=CLEAN_PATH)
        crun_note = ""
        if crun is None:
            rows.append(("crun run (OCI bundle, same binary)", None, "n/a", "crun not installed"))
        else:
            try:
                d, crun_note = self.crun_cold(crun, runs)
                rows.append(("crun run (OCI bundle, same binary)", d,
                             fmt_ratio(ratio(d.p50, wisp_c.p50)) if wisp_c else "n/a",
                             crun_note))
            except Exception as e:  # noqa: BLE001 - a peer that fails is reported, not fatal
                rows.append(("crun run (OCI bundle, same binary)", None, "n/a", str(e)[:200]))
        rows.append(("baseline: spawn+exec+wait of the binary", base,
                     fmt_ratio(ratio(base.p50, wisp_c.p50)) if wisp_c else "n/a", ""))
        self.rep.dist_table(rows, ["p50 vs wisp", "note"])
        if self.quick:
            self.rep.add("Node Lambda emulators: not run in the quick configuration.")
            self.rep.add()
            return
        self.peers_node()

    def crun_cold(self, crun, runs):
        """crun run of an OCI bundle holding the no-op bootstrap, measured by spawn_baseline.

        crun 1.8 refuses a hybrid cgroup layout (v1 controllers + a v2 tree with no
        controllers at /sys/fs/cgroup/unified); in a private mount namespace where that v2
        mount is gone crun sees plain v1 and uses it (cgroupfs manager, memory and pids
        limits as wisp sets them)."""
        bundle = os.path.join(self.tmp, "oci")
        os.makedirs(os.path.join(bundle, "rootfs"), exist_ok=True)
        shutil.copy(self.bootstrap, os.path.join(bundle, "rootfs", "bootstrap"))
        spec_dir = tempfile.mkdtemp(dir=self.tmp)
        run([crun, "spec"], cwd=spec_dir)
        with open(os.path.join(spec_dir, "config.json")) as f:
            spec = json.load(f)
        spec["process"]["args"] = ["/bootstrap"]
        spec["process"]["terminal"] = False
        spec["process"]["env"] = ["PATH=/usr/bin:/bin", "WISP_BENCH_EXIT=1"]
        spec["root"] = {"path": "rootfs", "readonly": True}
        spec.setdefault("linux", {})["resources"] = {"memory": {"limit": 128 << 20},
                                                     "pids": {"limit": 64}}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        hybrid = os.path.ismount("/sys/fs/cgroup/unified")
        ids = f"wisp-bench-{os.getpid()}-%i"

        def wrap(cmd):
            if not hybrid:
                return cmd
            inner = "umount /sys/fs/cgroup/unified && exec " + " ".join(
                f"'{c}'" for c in cmd)
            return ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]

        res = self.spawn_run([crun, "run", "--bundle", bundle, ids], runs, wrap=wrap)
        note = ("default `crun spec` namespaces (pid, net, ipc, uts, mount), read-only root, "
                "memory+pids limits")
        if hybrid:
            note += "; run in `unshare -m` with /sys/fs/cgroup/unified unmounted (hybrid host)"
        return res["dist"], note

    def peers_node(self):
        nm = os.path.join(self.a.root, "bench", "node_modules")
        cli = os.path.join(nm, "lambda-local", "build", "cli.js")
        self.rep.add("### Node Lambda emulators (same handler: bench/functions/noop-node)")
        self.rep.add()
        if not os.path.exists(cli):
            self.rep.add("lambda-local: not installed (npm install in bench/ failed or was "
                         "skipped); not measured.")
            self.rep.add()
            return
        rows = []
        wisp_cold = self.cache.get("cold-node")
        event = os.path.join(self.tmp, "event.json")
        with open(event, "w") as f:
            f.write("{}")
        env = ["PATH=/usr/bin:/bin", f"HOME={self.tmp}"]
        try:
            ll = self.spawn_run([NODE, cli, "-l", self.node_handler, "-h", "handler", "-e", event,
                                 "-v", "0"], self.n(30, 2), env=env, warmup=1)["dist"]
        except Exception as e:  # noqa: BLE001
            ll = None
            self.rep.add(f"lambda-local cold: failed: {str(e)[:200]}")
        rows.append(("wisp nodejs cold start (from 1c)", wisp_cold, "1.00×"))
        rows.append(("lambda-local CLI, one invocation (cold)", ll,
                     fmt_ratio(ratio(ll.p50, wisp_cold.p50)) if ll and wisp_cold else "n/a"))
        # Warm: lambda-local --watch serves POST {"event": ...} over HTTP.
        port = free_port()
        proc = subprocess.Popen([NODE, cli, "-l", self.node_handler, "-h", "handler", "-W",
                                 str(port), "-v", "0"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=dict(e.split("=", 1) for e in env))
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            url = f"http://127.0.0.1:{port}/"
            h = ["Content-Type: application/json"]
            l1 = self.loadgen_run(url, conns=1, duration=5, warmup=50, body='{"event":{}}',
                                  headers=h)
            l64 = self.loadgen_run(url, conns=64, threads=2, duration=5, warmup=2,
                                   body='{"event":{}}', headers=h)
        finally:
            stop_pid(proc)
        fn = self.new_function("warm-node", "nodejs", {"handler": "index.handler",
                                                        "idle_timeout_s": 600})
        self.daemon.invoke(fn)
        w1 = self.wisp_load(fn, conns=1, duration=5, warmup=50)
        w64 = self.wisp_load(fn, conns=64, threads=2, duration=5, warmup=2)
        self.check_ok(w1, "node warm")
        self.check_ok(w64, "node warm 64")
        rows += [("wisp nodejs warm, 1 connection", w1["dist"], "1.00×"),
                 ("lambda-local --watch warm, 1 connection", l1["dist"],
                  fmt_ratio(ratio(l1["dist"].p50, w1["dist"].p50))),
                 ("wisp nodejs warm, 64 connections", w64["dist"], "1.00×"),
                 ("lambda-local --watch warm, 64 connections", l64["dist"],
                  fmt_ratio(ratio(l64["dist"].p50, w64["dist"].p50)))]
        self.rep.dist_table(rows, ["p50 vs wisp"])
        self.rep.add(f"Warm throughput, 64 connections: wisp {fmt_rate(w64['dist'].rate)} vs "
                     f"lambda-local {fmt_rate(l64['dist'].rate)} (ratio wisp/lambda-local "
                     f"{fmt_ratio(ratio(w64['dist'].rate, l64['dist'].rate))}; "
                     f"lambda-local answered {l64['ok']} ok, {l64['non2xx']} non-2xx).")
        self.rep.add()
        self.peers_sls(nm, w1, w64)

    def peers_sls(self, nm, w1, w64):
        """serverless-offline 13 under the Serverless Framework 3: start-up and warm latency of
        the same handler through its Lambda Invoke endpoint."""
        sls = os.path.join(nm, "serverless", "bin", "serverless.js")
        if not os.path.exists(os.path.join(nm, "serverless-offline")) or not os.path.exists(sls):
            self.rep.add("serverless-offline: not installed; not measured.")
            self.rep.add()
            return
        svc = tempfile.mkdtemp(prefix="sls-", dir=self.tmp)
        shutil.copy(self.node_handler, os.path.join(svc, "index.js"))
        os.symlink(nm, os.path.join(svc, "node_modules"))
        with open(os.path.join(svc, "serverless.yml"), "w") as f:
            f.write("service: wispbench\nframeworkVersion: '3'\nprovider:\n  name: aws\n"
                    "  runtime: nodejs20.x\n  region: us-east-1\nfunctions:\n  noop:\n"
                    "    handler: index.handler\nplugins:\n  - serverless-offline\n")
        # Node 20.19+ lets require() load ES modules, which breaks the Framework 3 plugin
        # loader ("Cannot redefine property: _serverlessExternalPluginName"): turned off here.
        env = {"PATH": "/usr/bin:/bin", "HOME": svc, "SLS_TELEMETRY_DISABLED": "1",
               "SLS_NOTIFICATIONS_MODE": "off", "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench"}
        starts, l1, l64 = [], None, None
        for attempt in range(self.n(2, 1)):
            port, hport = free_port(), free_port()
            url = f"http://127.0.0.1:{port}/2015-03-31/functions/wispbench-dev-noop/invocations"
            t0 = time.monotonic()
            proc = subprocess.Popen([NODE, "--no-experimental-require-module", sls, "offline",
                                     "start", "--lambdaPort", str(port), "--httpPort",
                                     str(hport)], cwd=svc, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                up = False
                while time.monotonic() - t0 < 60 and proc.poll() is None:
                    try:
                        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                        c.request("POST", url[url.index("/2015"):], body=b"{}")
                        if c.getresponse().status == 200:
                            up = True
                            break
                    except OSError:
                        time.sleep(0.05)
                if not up:
                    self.rep.add("serverless-offline: did not answer within 60 s; not measured.")
                    self.rep.add()
                    return
                starts.append((time.monotonic() - t0) * 1e6)
                if attempt == 0:
                    l1 = self.loadgen_run(url, conns=1, duration=5, warmup=50, body="{}")
                    l64 = self.loadgen_run(url, conns=64, threads=2, duration=5, warmup=2,
                                           body="{}")
            finally:
                # The Framework may start helpers: the whole session we started goes.
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except OSError:
                    pass
                stop_pid(proc)
        st = Dist(starts)
        self.rep.dist_table([
            ("serverless-offline: start to first answer", st, "", ""),
            ("wisp nodejs warm, 1 connection", w1["dist"], "1.00×", ""),
            ("serverless-offline warm, 1 connection", l1["dist"],
             fmt_ratio(ratio(l1["dist"].p50, w1["dist"].p50)), ""),
            ("wisp nodejs warm, 64 connections", w64["dist"], "1.00×", ""),
            ("serverless-offline warm, 64 connections", l64["dist"],
             fmt_ratio(ratio(l64["dist"].p50, w64["dist"].p50)),
             f"{l64['ok']} ok, {l64['non2xx']} non-2xx"),
        ], ["p50 vs wisp", "note"])
        self.rep.add("serverless-offline 13.9 with the Serverless Framework 3.39 "
                     "(`SLS_TELEMETRY_DISABLED=1`, node started with "
                     "`--no-experimental-require-module`, which Framework 3 needs on Node "
                     "20.19+), invoked through its Lambda Invoke endpoint (`--lambdaPort`). "
                     "Its cold start is not separable from its own start-up: the first answer "
                     "after starting the process is given instead.")
        self.rep.add()

    # -- summary -----------------------------------------------------------------------------

    def summary(self):
        self.rep.add("## Targets of issue 4")
        self.rep.add()
        rows = []
        for bench, text, measured, met in self.rep.targets:
            mark = "met" if met else ("**NOT met**" if met is not None else "not measured")
            rows.append([bench, text, measured, mark])
        self.rep.table(["benchmark", "target", "measured", "status"], rows)
        if self.rep.failures:
            self.rep.add("Benchmarks that failed to run:")
            for f in self.rep.failures:
                self.rep.add(f"- {f}")
            self.rep.add()


BENCHMARKS = [
    ("cold-provided", "bench_cold_provided"),
    ("cold-python", "bench_cold_python"),
    ("cold-node", "bench_cold_node"),
    ("warm", "bench_warm"),
    ("env-rate", "bench_env_rate"),
    ("burst", "bench_burst"),
    ("density", "bench_density"),
    ("peers", "bench_peers"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--tools", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--density", type=int, default=2000, help="envs to try in the density run")
    args = ap.parse_args()
    only = [x for x in args.only.split(",") if x]
    s = Suite(args)
    ok = True
    try:
        s.header()
        s.start_daemon()
        for name, meth in BENCHMARKS:
            if only and name not in only:
                continue
            t0 = time.monotonic()
            try:
                getattr(s, meth)()
                s.drop_functions()
            except Exception as e:  # noqa: BLE001 - one benchmark's failure must not hide others
                ok = False
                msg = f"{name}: {type(e).__name__}: {e}"
                s.rep.failures.append(msg)
                s.rep.add(f"**{name} failed**: {e}")
                s.rep.add()
                if s.daemon is None or s.daemon.proc.poll() is not None:
                    try:
                        s.start_daemon()
                    except Exception as e2:  # noqa: BLE001
                        s.rep.failures.append(f"daemon restart: {e2}")
                        break
            print(f"[{name}: {time.monotonic() - t0:.1f} s]", file=sys.stderr, flush=True)
        s.summary()
    finally:
        s.cleanup()
        with open(args.out, "w") as f:
            f.write(s.rep.text())
    print(f"results written to {args.out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
