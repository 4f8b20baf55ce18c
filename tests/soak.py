#!/usr/bin/env python3
"""Soak test (issue 4, item 6): for a bounded time, several threads send
mixed deliveries to one hookd as fast as they can -- valid ones, wrong
tokens, bad JSON, oversize bodies, hooks that time out, fail or chatter,
async ones, duplicates, 404s, keep-alive runs, and connections dropped
mid-request or while their hook runs -- then hookd's RSS, open fds,
children and zombies are compared with what they were after a warm-up.
Any growth past a small margin fails.

    python3 tests/soak.py [SECONDS] [--threads N]

SECONDS defaults to 20 (the CI run); the figures in tests/bench/RESULTS.md come from 300.
With HOOKD_TEST_JOURNAL=postgresql the journal is a PostgreSQL one
(tests/blackbox/pgserver.py's server; the harness's {journal}).
$HOOKD_BIN is the daemon (default build/hookd); $HOOKD_WRAPPER is honoured.
Exit 0 on success, 1 on growth or an unexpected answer.
"""

import argparse
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "blackbox"))
from harness import (binary_has_asan, children, cpu_seconds, descendants,  # noqa: E402
                     fd_count, recv_response, sh, status_kb)
from harness import hardened_hookd as Daemon  # noqa: E402

TOKEN = "soak-token-1b7e"

CONFIG = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 2s
kill_grace = 200ms
max_body = 16KiB
read_timeout = 2s
idle_timeout = 3s
max_running = 8
max_queued = 32
include_output = yes
state_dir = {tmp}/state
{journal}
journal_max = 2000

[event slow]
timeout = 300ms

[endpoint soak]
path = /webhook
scheme = gitlab
secret = %s

[endpoint async]
path = /async
scheme = gitlab
secret = %s
mode = async
retries = 0
""" % (TOKEN, TOKEN)

HOOK = sh("""
case "$HOOK_EVENT" in
  fail) echo "failing"; exit 1 ;;
  slow) trap '' TERM; sleep 5 ;;
  chatty) i=0; while [ $i -lt 200 ]; do echo "line $i of chatter"; i=$((i+1)); done ;;
  bg) sleep 1 & ;;
esac
exit 0
""")

# kind -> (weight, acceptable statuses; None: the connection is dropped)
KINDS = {
    "ok": (10, {200, 503}),
    "fail": (3, {500, 503}),
    "slow": (1, {504, 503}),
    "chatty": (2, {200, 503}),
    "bg": (2, {200, 503}),
    "async": (2, {202, 503}),
    # A few ids shared by six threads: one may arrive while another thread's
    # delivery of it still runs, and that is a 409 (README "Delivery guarantees"), not a fault.
    "duplicate": (2, {200, 409, 503}),
    "unhandled": (0, {200}),
    "wrong_token": (4, {401}),
    "bad_json": (3, {400}),
    "oversize": (2, {413}),
    "not_found": (2, {404}),
    "keepalive": (3, {200, 503}),
    "drop_mid_request": (3, None),
    "drop_while_running": (2, None),
    "drop_mid_headers": (2, None),
}


def request_bytes(path, body, token=TOKEN, extra=""):
    head = ("POST %s HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
            "X-Gitlab-Token: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (path, token, len(body), extra))
    return head.encode() + body


def body_for(kind, **kw):
    d = {"object_kind": kind, "n": random.randint(0, 1 << 30)}
    d.update(kw)
    return json.dumps(d).encode()


class Load:
    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}
        self.bad = []

    def count(self, kind, status):
        with self.lock:
            key = (kind, status)
            self.counts[key] = self.counts.get(key, 0) + 1

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=15)

    def exchange(self, data):
        s = self.connect()
        try:
            s.sendall(data)
            return recv_response(s, 15)[0]
        finally:
            s.close()

    def one(self, kind):
        if kind in ("ok", "fail", "slow", "chatty", "bg"):
            return self.exchange(request_bytes("/webhook", body_for(kind)))
        if kind == "async":
            return self.exchange(request_bytes("/async", body_for("ok"), extra=(
                "Idempotency-Key: %s\r\n" % uuid.uuid4().hex)))
        if kind == "duplicate":
            key = "Idempotency-Key: dup-%d\r\n" % random.randint(0, 50)
            return self.exchange(request_bytes("/webhook", body_for("ok"), extra=key))
        if kind == "wrong_token":
            return self.exchange(request_bytes("/webhook", body_for("ok"), token="nope"))
        if kind == "bad_json":
            return self.exchange(request_bytes("/webhook", b'{"object_kind": "ok", '))
        if kind == "oversize":
            s = self.connect()
            try:
                body = b"{" + b" " * (64 * 1024) + b"}"
                try:
                    s.sendall(request_bytes("/webhook", body))
                except OSError:
                    pass
                return recv_response(s, 15)[0]
            finally:
                s.close()
        if kind == "not_found":
            return self.exchange(request_bytes("/nowhere", body_for("ok")))
        if kind == "keepalive":
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                st = None
                for _ in range(3):
                    c.request("POST", "/webhook", body_for("ok"), {
                        "Content-Type": "application/json", "X-Gitlab-Token": TOKEN})
                    r = c.getresponse()
                    r.read()
                    st = r.status
                    if st != 200:
                        break
                return st
            finally:
                c.close()
        if kind == "drop_mid_request":
            s = self.connect()
            data = request_bytes("/webhook", body_for("ok"))
            s.sendall(data[:len(data) - 5])
            s.close()
            return None
        if kind == "drop_mid_headers":
            s = self.connect()
            s.sendall(b"POST /webhook HTTP/1.1\r\nX-Gitlab-Tok")
            s.close()
            return None
        if kind == "drop_while_running":
            s = self.connect()
            s.sendall(request_bytes("/webhook", body_for(random.choice(["ok", "slow"]))))
            time.sleep(0.01)
            s.close()
            return None
        raise ValueError(kind)

    def worker(self, seed):
        rnd = random.Random(seed)
        kinds = [k for k, (w, _) in KINDS.items() for _ in range(w)]
        while not self.stop.is_set():
            kind = rnd.choice(kinds)
            try:
                st = self.one(kind)
            except OSError as e:
                st = "error: %s" % e
            want = KINDS[kind][1]
            self.count(kind, st)
            if want is not None and st not in want:
                with self.lock:
                    if len(self.bad) < 20:
                        self.bad.append((kind, st))

    def run(self, seconds, threads):
        ts = [threading.Thread(target=self.worker, args=(i,), daemon=True)
              for i in range(threads)]
        for t in ts:
            t.start()
        self.stop.wait(seconds)
        self.stop.set()
        for t in ts:
            t.join(30)

    def total(self):
        return sum(self.counts.values())


def snapshot(pid):
    live, zombies = children(pid)
    return {"rss_kb": status_kb(pid, "VmRSS"), "fds": fd_count(pid), "children": len(live),
            "zombies": len(zombies), "descendants": len(descendants(pid))}


def settle(pid, want_fds, timeout=10.0):
    """Waits for the load's tail to finish: no children, fds back."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = snapshot(pid)
        if s["children"] == 0 and s["zombies"] == 0 and s["fds"] <= want_fds:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    return snapshot(pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seconds", nargs="?", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=6)
    args = ap.parse_args()
    asan = binary_has_asan()
    env = {}
    if asan:
        # ASan keeps freed memory in a quarantine (256 MB by default) and
        # grows RSS until it is full; a small one shows real growth sooner.
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                               ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
                               ).lstrip(":")
    # Margins: RSS after the run may exceed RSS after the warm-up by this
    # much (SQLite's page cache and malloc's arenas settle slowly).
    rss_margin_kb = 24 * 1024 if asan else 4 * 1024
    warm = max(3.0, min(30.0, args.seconds / 4))

    with Daemon(CONFIG, {"_default": HOOK}, env=env) as h:
        pid = h.pid
        load = Load(h.port)
        print("soak: hookd pid %d on port %d, %d threads, warm-up %.0fs, run %.0fs%s"
              % (pid, h.port, args.threads, warm, args.seconds, " (ASan build)" if asan else ""))
        load.run(warm, args.threads)
        base_fds = fd_count(pid)
        before = settle(pid, base_fds)
        cpu0 = cpu_seconds(pid)
        load = Load(h.port)
        t0 = time.monotonic()
        load.run(args.seconds, args.threads)
        took = time.monotonic() - t0
        cpu = cpu_seconds(pid) - cpu0
        after = settle(pid, before["fds"])
        peak = status_kb(pid, "VmHWM")
        # Still serving.
        final = load.exchange(request_bytes("/webhook", body_for("ok")))
        rc = h.stop(check=False)

    n = load.total()
    print("requests: %d in %.1fs (%.0f/s), hookd CPU %.1fs" % (n, took, n / took, cpu))
    by_kind = {}
    for (kind, st), c in sorted(load.counts.items(), key=lambda kv: str(kv[0])):
        by_kind.setdefault(kind, []).append("%s:%d" % (st, c))
    for kind in KINDS:
        if kind in by_kind:
            print("  %-18s %s" % (kind, " ".join(by_kind[kind])))
    print("%-12s %10s %10s" % ("", "before", "after"))
    for k in ("rss_kb", "fds", "children", "zombies", "descendants"):
        print("%-12s %10d %10d" % (k, before[k], after[k]))
    print("peak RSS     %10d kB" % peak)

    problems = []
    if load.bad:
        problems.append("unexpected answers: %r" % load.bad)
    if after["rss_kb"] - before["rss_kb"] > rss_margin_kb:
        problems.append("RSS grew by %d kB (margin %d kB)"
                        % (after["rss_kb"] - before["rss_kb"], rss_margin_kb))
    if after["fds"] > before["fds"]:
        problems.append("open fds grew from %d to %d" % (before["fds"], after["fds"]))
    for k in ("children", "zombies"):
        if after[k]:
            problems.append("%d %s left" % (after[k], k))
    if final != 200:
        problems.append("a delivery after the run got %r" % final)
    if rc != 0:
        problems.append("hookd exited %r on SIGTERM" % rc)
    if n < args.seconds * 5:
        problems.append("only %d requests went through" % n)
    for p in problems:
        print("FAIL: " + p)
    print("soak: %s" % ("FAILED" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
