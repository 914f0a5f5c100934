"""network.py - tries to reach the network from inside the sandbox.

Tries: a TCP connection to event["host"]:event["port"] (default 1.1.1.1:53
and the host's own loopback services if given, e.g. the daemon's admin port
127.0.0.1:7701), a DNS lookup of event["name"] (default example.com), and a
UDP send. Expect everything to fail: the sandbox's network namespace has only
its own loopback, so 127.0.0.1 there is not the host's.
Event: {"host": "127.0.0.1", "port": 7701, "timeout": 2,
        "targets": [["10.0.0.1", 22], ...], "name": "example.com"}.
Answers {"connect": {"host:port": {"ok": bool, "error": ...}}, "dns": {...},
"udp": {...}, "interfaces": [...]}.
"""
import os
import socket


def _connect(host, port, timeout):
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            return {"ok": True, "peer": "%s:%d" % s.getpeername()[:2]}
    except OSError as e:
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}


def handler(event, context):
    timeout = float(event.get("timeout", 2))
    targets = [tuple(t) for t in event.get("targets", [])]
    if "host" in event:
        targets.insert(0, (event["host"], event.get("port", 80)))
    if not targets:
        targets = [("1.1.1.1", 53), ("127.0.0.1", 7701)]
    result = {"connect": {"%s:%s" % t: _connect(t[0], t[1], timeout) for t in targets}}
    name = event.get("name", "example.com")
    try:
        result["dns"] = {"ok": True, "value": sorted({a[4][0] for a in socket.getaddrinfo(name, 80)})}
    except OSError as e:
        result["dns"] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"hello", ("1.1.1.1", 53))
        result["udp"] = {"ok": True}
    except OSError as e:
        result["udp"] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    try:
        result["interfaces"] = [name for _, name in socket.if_nameindex()]
    except OSError as e:
        result["interfaces"] = "error: %s" % e
    result["proxy_env"] = {k: v for k, v in os.environ.items() if "proxy" in k.lower()}
    return result
