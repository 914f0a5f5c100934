#!/usr/bin/python3
"""The HTTP server of a real daemon under bad and heavy input: malformed
requests, pipelining, keep-alive, chunked bodies, 100-continue, header and body
limits, thousands of concurrent connections; the daemon stays up throughout."""
import os
import re
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from wisplib import Daemon, Tap


def conn(d):
    s = socket.create_connection(("127.0.0.1", d.admin_port), timeout=10)
    return s


def read_all(s, until=None, limit=1 << 20):
    data = b""
    s.settimeout(5)
    while len(data) < limit:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
        if until and data.count(until[0]) >= until[1]:
            break
    return data


t = Tap(14)
with Daemon() as d:
    healthy = conn(d)
    bad = conn(d)
    bad.sendall(b"GARBAGE\x00\x01 / HTTP/9.9\r\n\r\n")
    r = read_all(bad)
    t.ok(r.startswith(b"HTTP/1.1 400"), "malformed request: 400", r[:100])
    healthy.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    r = read_all(healthy, (b"HTTP/1.1", 1))
    t.ok(r.startswith(b"HTTP/1.1 200"), "another connection is unharmed", r[:100])
    healthy.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    r = read_all(healthy, (b"HTTP/1.1", 1))
    t.ok(r.startswith(b"HTTP/1.1 200"), "keep-alive: second request on the same connection", r[:100])

    s = conn(d)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3 +
              b"GET /nope HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + d.token.encode() + b"\r\n\r\n")
    r = read_all(s, (b"HTTP/1.1 ", 4))
    codes = re.findall(rb"HTTP/1\.1 (\d{3}) ", r)
    t.eq("pipelined requests answered in order", codes, [b"200", b"200", b"200", b"404"])

    s = conn(d)
    body = b'{"runtime":"python3","handler":"app.handler"}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    s.sendall(b"PUT /v1/functions/chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Authorization: Bearer " + d.token.encode() + b"\r\n\r\n" + chunks + b"0\r\n\r\n")
    r = read_all(s, (b"HTTP/1.1", 1))
    t.ok(r.startswith(b"HTTP/1.1 201"), "chunked request body", r[:200])

    s = conn(d)
    s.sendall(b"PUT /v1/functions/cont HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\nAuthorization: Bearer %s\r\n\r\n" % (len(body), d.token.encode()))
    r = read_all(s, (b"HTTP/1.1 100", 1))
    t.ok(r.startswith(b"HTTP/1.1 100 Continue"), "Expect: 100-continue gets 100", r[:100])
    s.sendall(body)
    r = read_all(s, (b"HTTP/1.1 201", 1))
    t.ok(b"HTTP/1.1 201" in r, "then the request completes", r[:200])

    s = conn(d)
    s.sendall(b"PUT /v1/functions/x/code HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              b"Content-Length: 999999999999\r\nAuthorization: Bearer %s\r\n\r\n" % d.token.encode())
    r = read_all(s)
    t.ok(r.startswith(b"HTTP/1.1 413"), "oversized body announced: 413 before any body is sent", r[:100])

    s = conn(d)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n")
    r = read_all(s)
    t.ok(r.startswith(b"HTTP/1.1 431"), "header block too large: 431", r[:100])

    # thousands of concurrent connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    socks = []
    try:
        for _ in range(3000):
            socks.append(socket.create_connection(("127.0.0.1", d.admin_port), timeout=10))
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        okc = 0
        for s in socks:
            if read_all(s, (b"HTTP/1.1 200", 1), 4096).startswith(b"HTTP/1.1 200"):
                okc += 1
        t.eq("3000 concurrent connections all answered", okc, 3000)
    finally:
        for s in socks:
            s.close()

    s = conn(d)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    r = read_all(s)
    t.ok(r.startswith(b"HTTP/1.1 200") and b"onnection: close" in r, "Connection: close honoured", r[:200])
    s = conn(d)
    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    r = read_all(s)
    t.ok(r.startswith(b"HTTP/1.1 200") or r.startswith(b"HTTP/1.0 200"), "HTTP/1.0 request", r[:100])
    st, _, _ = d.request("GET", "/healthz", token=False)
    t.eq("daemon still healthy", st, 200)
    t.eq("daemon exits 0", d.stop(), 0)
sys.exit(1 if t.failed else 0)
