"""Black-box tests of what an unauthenticated client can hold (issue 16,
points 1 and 2): requests refused from their head before any body byte is
read (and their connection closed), the bound on body bytes being read
(max_buffered), the longest-idle connection closed to admit a new one at
max_connections, and max_connections_per_client. Each attack of the issue
is run against the daemon and its RSS read from /proc/PID/status.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_limits.py [-k NAME]
"""

import base64
import errno
import json
import os
import re
import resource
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NF_PREFIX, NF_TOKEN, binary_has_asan, cpu_seconds,  # noqa: E402
                     post_json, read_until_closed, recv_response, sh, status_kb,
                     wait_until)
from harness import hardened_hookd as Daemon  # noqa: E402

MIB = 1024 * 1024
MARK = sh("echo \"$HOOK_EVENT\" >> '{tmp}/ran'")


def config(server=""):
    """[server] lines over the defaults here, a northflank endpoint at
    /webhook, a github one at /gh, a bearer token one at /tok, an HTTP Basic
    one at /basic and one at /local open only to 10.9.9.9."""
    keys = {"listen": "127.0.0.1:0", "hooks_dir": "{hooks}", "timeout": "5s"}
    for line in server.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            keys[k.strip()] = v.strip()
    return ("[server]\n" + "".join("%s = %s\n" % kv for kv in keys.items()) +
            "\n[endpoint nf]\npath = /webhook\nscheme = northflank\nsecret = %s\n" % NF_TOKEN +
            "\n[endpoint gh]\npath = /gh\nscheme = github\nsecret = gh-secret-0123456789\n"
            "\n[endpoint tok]\npath = /tok\nscheme = token\nsecret = tok-secret-0123456789\n"
            "event = alert\n"
            "\n[endpoint basic]\npath = /basic\nscheme = basic\n"
            "secret = alice:pw-0123456789abcdef\nevent = alert\n"
            "\n[endpoint local]\npath = /local\nscheme = none\nallow_from = 10.9.9.9/32\n")


def raise_nofile(n):
    """Raises this process's fd limit (the daemon inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < n:
        raise unittest.SkipTest("needs %d fds, the hard limit is %d" % (n, hard))


def head(method="POST", path="/webhook", length=MIB, token=None, extra=""):
    h = "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % (method, path)
    if token:
        h += "%sToken: %s\r\n" % (NF_PREFIX, token)
    h += "Content-Length: %d\r\n%s\r\n" % (length, extra)
    return h.encode()


def delivery(i=0):
    body = json.dumps({"event": "build:start", "n": i}).encode()
    return body, {NF_PREFIX + "Token": NF_TOKEN, NF_PREFIX + "Event-Id": "lim-%d-%f" %
                  (i, time.time())}


def connect(port, source="127.0.0.1", timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def all_read_by_server(s):
    """Whether everything client socket s sent has been read by its peer
    (on 127.0.0.1): nothing in s's send queue nor in the peer's receive
    queue, from /proc/net/tcp."""
    def addr(sa):
        ip, port = sa[:2]
        return "%08X:%04X" % (int.from_bytes(socket.inet_aton(ip), "little"), port)
    me, peer = addr(s.getsockname()), addr(s.getpeername())
    tx = rx = None
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            w = line.split()
            queues = w[4].split(":")
            if (w[1], w[2]) == (me, peer):
                tx = int(queues[0], 16)
            elif (w[1], w[2]) == (peer, me):
                rx = int(queues[1], 16)
    return tx == 0 and rx == 0


def closed_soon(s, timeout=3.0):
    """Whether the peer closes s within timeout (what it sent is dropped)."""
    return read_until_closed(s, timeout)[1]


def rss_kb(pid):
    return status_kb(pid, "VmRSS")


def measured_env():
    """The daemon's environment for an RSS measurement: an ASan build keeps
    freed memory in its quarantine (256 MiB by default), which is not
    hookd's to bound; a small one keeps its checks and the measurement."""
    if not binary_has_asan():
        return None
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=4"}


class Base(unittest.TestCase):
    maxDiff = None

    def assertNothingRan(self, h):
        self.assertIsNone(h.read("ran"), "a hook ran")


class TestRefuseFromHead(Base):

    def test_refused_before_the_body_without_100_continue(self):
        """Each answer the head decides comes before any body byte is sent,
        never after a 100 Continue, with Connection: close, and the
        connection closes."""
        cases = [
            ("404", head(path="/nowhere"), 404),
            ("405", head(method="PUT"), 405),
            ("403", head(path="/local"), 403),
            ("401 token missing", head(), 401),
            ("401 token wrong", head(token="not-the-token"), 401),
            ("401 signature header missing", head(path="/gh"), 401),
            ("401 bearer token missing", head(path="/tok"), 401),
            ("401 bearer token wrong",
             head(path="/tok", extra="Authorization: Bearer tok-secret-wrong\r\n"), 401),
            ("401 basic wrong password",
             head(path="/basic", extra="Authorization: Basic %s\r\n" %
                  base64.b64encode(b"alice:not-the-password").decode()), 401),
        ]
        with Daemon(config(), {"_default": MARK}) as h:
            for name, data, want in cases:
                with self.subTest(name):
                    s = h.socket()
                    s.sendall(data[:-2] + b"Expect: 100-continue\r\n\r\n")
                    st, hdrs, body = recv_response(s, timeout=5)
                    self.assertEqual(st, want, body)
                    self.assertEqual(hdrs.get("connection"), "close", hdrs)
                    self.assertEqual(json.loads(body)["status"], "rejected")
                    self.assertTrue(closed_soon(s), "the connection stayed open")
                    s.close()
            # A refused request without a body closes its connection too.
            s = h.socket()
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            st, hdrs, _ = recv_response(s)
            self.assertEqual((st, hdrs.get("connection")), (404, "close"))
            self.assertTrue(closed_soon(s))
            s.close()
            # The right token: 100 Continue, then the body, then the answer.
            body, _ = delivery()
            s = h.socket()
            s.sendall(head(length=len(body), token=NF_TOKEN,
                           extra="Expect: 100-continue\r\n"))
            s.settimeout(5)
            self.assertEqual(s.recv(25), b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(body)
            st, _, raw = recv_response(s)
            self.assertEqual(st, 200, raw)
            s.close()
            self.assertEqual(h.read("ran"), "build:start\n")

    def test_attack_1_memory_before_authentication(self):
        """512 connections each announce 1 MiB without a token, send
        1 MiB - 1 bytes and stall, twice: hookd's RSS stays within 64 MiB
        of idle (it was max_connections x max_body)."""
        n = 512
        raise_nofile(2 * n + 256)
        with Daemon(config("read_timeout = 30s"), {"_default": MARK}, env=measured_env()) as h:
            body, hdrs = delivery()
            self.assertEqual(post_json(h.port, body, headers=hdrs)[0], 200)
            idle = rss_kb(h.pid)
            peak = idle
            chunk = b"x" * 65536
            for rnd in range(2):
                socks = []
                for _ in range(n):
                    s = h.socket()
                    s.sendall(head())
                    s.setblocking(False)
                    socks.append([s, MIB - 1])
                # Send what hookd takes, for at most 8 s all told.
                deadline = time.monotonic() + 8
                while time.monotonic() < deadline and any(left for _, left in socks):
                    for entry in socks:
                        s, left = entry
                        if not left:
                            continue
                        try:
                            entry[1] -= s.send(chunk[:min(left, len(chunk))])
                        except BlockingIOError:
                            pass
                        except OSError:
                            entry[1] = 0  # refused and closed: nothing to send
                    peak = max(peak, rss_kb(h.pid))
                time.sleep(0.5)  # stalled
                peak = max(peak, rss_kb(h.pid), status_kb(h.pid, "VmHWM") if rnd else 0)
                for s, _ in socks:
                    s.close()
            grew = (max(peak, status_kb(h.pid, "VmHWM")) - idle) / 1024
            print("attack 1: %d connections x 2, RSS idle %d MiB, grew by %.1f MiB"
                  % (n, idle // 1024, grew))
            self.assertLess(grew, 64, "RSS grew by %.1f MiB" % grew)
            body, hdrs = delivery(1)
            self.assertEqual(post_json(h.port, body, headers=hdrs)[0], 200)

    def test_max_buffered_bounds_stalled_bodies_with_a_valid_token(self):
        """With the right token, bodies announced and stalled hold at most
        max_buffered: 64 requests of 1 MiB each, 8 MiB of room, RSS grows by
        far less than 64 MiB; the others wait with reading paused."""
        n = 64
        raise_nofile(2 * n + 256)
        with Daemon(config("max_buffered = 8MiB\nread_timeout = 30s"),
                    {"_default": MARK}, env=measured_env()) as h:
            body, hdrs = delivery()
            self.assertEqual(post_json(h.port, body, headers=hdrs)[0], 200)
            idle = rss_kb(h.pid)
            socks = []
            for _ in range(n):
                s = h.socket()
                s.sendall(head(token=NF_TOKEN))
                s.setblocking(False)
                socks.append([s, MIB - 1])
            chunk = b"x" * 65536
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                for entry in socks:
                    s, left = entry
                    if left:
                        try:
                            entry[1] -= s.send(chunk[:min(left, len(chunk))])
                        except (BlockingIOError, OSError):
                            pass
            grew = (status_kb(h.pid, "VmHWM") - idle) / 1024
            sent = sum(MIB - 1 - left for _, left in socks) / MIB
            print("max_buffered 8 MiB: %d stalled 1 MiB bodies (%.0f MiB sent), RSS grew "
                  "by %.1f MiB" % (n, sent, grew))
            self.assertLess(grew, 8 + 24, "RSS grew by %.1f MiB" % grew)
            for s, _ in socks:
                s.close()

    def test_a_body_waits_for_room_then_is_read(self):
        """A body that does not fit max_buffered waits (no 100 Continue),
        and is read once the body before it is done (which keeps a pace
        that makes its deadline: else it gives its room up, see
        TestStalledBodies)."""
        with Daemon(config("max_buffered = 1MiB\nread_timeout = 20s"), {"_default": MARK}) as h:
            big = json.dumps({"event": "big", "pad": ""}).encode()
            big = big[:-2] + b"p" * (MIB - len(big)) + b'"}'  # all of the room
            a = h.socket()
            a.sendall(head(length=len(big), token=NF_TOKEN) + big[:MIB // 2])
            # hookd has read that half body (so a holds the room), however
            # slowly the machine let it get there.
            self.assertTrue(wait_until(lambda: all_read_by_server(a), 10),
                            "hookd did not read the first half of the body")
            small, _ = delivery()
            b = h.socket()
            b.sendall(head(length=len(small), token=NF_TOKEN,
                           extra="Expect: 100-continue\r\n"))
            b.settimeout(1.0)
            with self.assertRaises(socket.timeout, msg="100 Continue while there was no room"):
                b.recv(100)
            a.sendall(big[MIB // 2:])
            st, _, raw = recv_response(a)
            self.assertEqual(st, 200, raw)
            b.settimeout(5)
            self.assertEqual(b.recv(25), b"HTTP/1.1 100 Continue\r\n\r\n")
            b.sendall(small)
            st, _, raw = recv_response(b)
            self.assertEqual(st, 200, raw)
            a.close()
            b.close()
            self.assertEqual(sorted(h.read("ran").split()), ["big", "build:start"])

    def test_a_body_that_never_gets_room_is_503_retry_after(self):
        """A request still waiting for room at its read deadline: 503 with
        Retry-After (hookd's load, not the client's pace), nothing runs.
        The body holding the room is on a pace to make its own deadline
        (nearly all sent), so it keeps it."""
        with Daemon(config("max_buffered = 1MiB\nread_timeout = 2s"), {"_default": MARK}) as h:
            b = h.socket()  # its read deadline runs from here
            time.sleep(0.5)
            a = h.socket()
            # Holds the 1 MiB and stalls, nearly whole.
            a.sendall(head(token=NF_TOKEN) + b"{" + b"x" * (MIB - 10000))
            sent = time.monotonic()
            # hookd has read it (a holds the room), within b's deadline.
            self.assertTrue(wait_until(lambda: all_read_by_server(a), 1.2),
                            "hookd did not read a's body")
            time.sleep(max(0.0, 0.5 - (time.monotonic() - sent)))
            small, _ = delivery()
            b.sendall(head(length=len(small), token=NF_TOKEN,
                           extra="Expect: 100-continue\r\n"))
            t0 = time.monotonic()
            st, hdrs, raw = recv_response(b, timeout=5)
            self.assertEqual(st, 503, raw)
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertIn("retry-after", hdrs)
            self.assertIn(b"max_buffered", raw)
            st, _, _ = recv_response(a, timeout=5)
            self.assertEqual(st, 408)
            a.close()
            b.close()
            self.assertNothingRan(h)
            body, hdrs = delivery(2)
            self.assertEqual(post_json(h.port, body, headers=hdrs)[0], 200)


class TestStalledBodies(Base):

    def test_stalled_bodies_without_credentials_do_not_keep_deliveries_out(self):
        """A signature scheme can check its credential only with the body:
        16 clients with a made-up GitHub signature announce 1 MiB, send one
        byte and stall, under max_buffered = 8MiB. A body that at its pace
        cannot be whole by its read deadline gives its room up (408) once
        another waits for room, so a delivery is answered within seconds,
        not after their read deadline (it was 503 then)."""
        with Daemon(config("max_buffered = 8MiB\nread_timeout = 10s"),
                    {"_default": MARK}) as h:
            socks = []
            for _ in range(16):
                s = h.socket()
                s.sendall(("POST /gh HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=%s\r\n"
                           "X-GitHub-Event: push\r\nContent-Type: application/json\r\n"
                           "Content-Length: %d\r\n\r\n{" % ("0" * 64, MIB)).encode())
                socks.append(s)
            time.sleep(0.3)
            body, hdrs = delivery()
            t0 = time.monotonic()
            st, raw = post_json(h.port, body, headers=hdrs, timeout=15)
            took = time.monotonic() - t0
            self.assertEqual(st, 200, raw)
            self.assertLess(took, 4.0)
            self.assertEqual(recv_response(socks[0], timeout=5)[0], 408)
            for s in socks:
                s.close()
            self.assertEqual(h.read("ran"), "build:start\n")


class TestTrickledHead(Base):

    def trickle(self, h, first, unit, conns=10, head_bytes=30000):
        """hookd's CPU seconds while conns connections each send first, then
        unit a send (TCP_NODELAY, paced: about one read each) up to
        head_bytes, never ending the head."""
        socks = []
        for _ in range(conns):
            s = h.socket()
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(first)
            socks.append(s)
        c0 = cpu_seconds(h.pid)
        deadline = time.monotonic() + 20
        for _ in range(head_bytes // len(unit)):
            for s in socks:
                s.sendall(unit)
            time.sleep(0.0005)
            self.assertLess(time.monotonic(), deadline)
        for s in socks:
            s.close()
        time.sleep(0.3)
        return cpu_seconds(h.pid) - c0

    def test_a_trickled_head_is_searched_once(self):
        """A head sent a few bytes a read is searched for its end once, not
        once a read: 10 clients trickling 30 KB of short header lines (or
        of empty lines before a request line) cost the loop about what 30
        KB of one long line does, that is about the reads. It was
        quadratic: each read searched every line again (1.5 s against
        0.2 s here)."""
        with Daemon(config("max_headers = 32KiB\nread_timeout = 30s"),
                    {"_default": MARK}) as h:
            flat = self.trickle(h, b"POST /webhook HTTP/1.1\r\nX-A: ", b"aaaaa")
            lines = self.trickle(h, b"POST /webhook HTTP/1.1\r\n", b"X:y\r\n")
            blank = self.trickle(h, b"", b"\r\n\r\n", head_bytes=30000)
            self.assertLess(lines, 2.5 * flat + 0.2, (lines, flat))
            self.assertLess(blank, 2.5 * flat + 0.2, (blank, flat))
            self.assertNothingRan(h)


class TestRejectedLog(Base):

    def test_a_flood_of_refusals_is_not_a_flood_of_log_lines(self):
        """400 refusals with long, attacker-made paths in well under a
        second: at most 50 "rejected" lines that second, each path cut to
        128 bytes; the rest are counted in one line with the next refusal."""
        with Daemon(config(), {"_default": MARK}) as h:
            long_path = "/" + "A" * 2000
            t0 = time.monotonic()
            for i in range(400):
                s = h.socket()
                s.sendall(("GET %s%d HTTP/1.1\r\nHost: x\r\n\r\n" % (long_path, i)).encode())
                self.assertEqual(recv_response(s)[0], 404)
                s.close()
            took = time.monotonic() - t0
            time.sleep(1.1)
            s = h.socket()
            s.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(recv_response(s)[0], 404)
            s.close()
            self.assertIsNotNone(h.wait_log("path=/after"), h.log_text()[-2000:])
            lines = [ln for ln in h.log_text().splitlines() if "msg=rejected" in ln]
            # One line for /after, at most 50 a second for the flood; the
            # limit counts by the clock's seconds, and a flood of under a
            # second may still span two of them.
            self.assertLessEqual(len(lines) - 1, 50 * (int(took) + 2), took)
            self.assertLess(len(lines), 401)
            self.assertTrue(all(len(ln) < 600 for ln in lines), max(map(len, lines)))
            self.assertIn("A" * 127 + "...", lines[0])
            counted = [ln for ln in h.log_text().splitlines() if "rejections not logged" in ln]
            self.assertTrue(counted, h.log_text()[-2000:])
            n = sum(int(re.search(r"count=(\d+)", ln).group(1)) for ln in counted)
            self.assertEqual(n + len(lines), 401)
            self.assertNothingRan(h)


class TestSlots(Base):

    def test_attack_2_held_connections_do_not_keep_a_delivery_out(self):
        """1,024 sockets send `GET / HTTP/1.1` and keep the connection,
        1,024 more never send anything, twice: a valid delivery is answered
        within 1 s each time."""
        n = 1024
        raise_nofile(3 * n + 512)
        with Daemon(config(), {"_default": MARK}) as h:
            for rnd in range(2):
                socks = []
                try:
                    for i in range(n):
                        s = h.socket()
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        socks.append(s)
                    for i in range(n):
                        socks.append(h.socket())
                    time.sleep(0.5)
                    body, hdrs = delivery(rnd)
                    t0 = time.monotonic()
                    st, raw = post_json(h.port, body, headers=hdrs, timeout=10)
                    took = time.monotonic() - t0
                    print("attack 2, round %d: delivery answered %d in %.0f ms"
                          % (rnd + 1, st, took * 1000))
                    self.assertEqual(st, 200, raw)
                    self.assertLess(took, 1.0)
                finally:
                    for s in socks:
                        s.close()
            self.assertEqual(h.read("ran"), "build:start\nbuild:start\n")

    def test_longest_idle_connection_makes_room(self):
        """At max_connections the longest-idle connection is closed for a
        new one; a connection in the middle of a request is not."""
        with Daemon(config("max_connections = 4\nmax_connections_per_client = 0"),
                    {"_default": MARK}) as h:
            busy = h.socket()
            busy.sendall(b"POST /webhook HTTP/1.1\r\n")  # a request under way
            time.sleep(0.1)
            idle = []
            for _ in range(3):
                idle.append(h.socket())
                time.sleep(0.1)
            body, hdrs = delivery()
            self.assertEqual(post_json(h.port, body, headers=hdrs, timeout=5)[0], 200)
            self.assertTrue(closed_soon(idle[0], 2), "the longest-idle one was not closed")
            for s in idle[1:]:
                s.settimeout(0.2)
                with self.assertRaises(socket.timeout, msg="a newer idle one was closed"):
                    s.recv(1)
            busy.sendall(b"Host: x\r\n\r\n")
            st, _, _ = recv_response(busy)
            self.assertEqual(st, 401)  # answered: it kept its slot
            for s in [busy] + idle:
                s.close()

    def test_max_connections_per_client(self):
        """One address holds at most max_connections_per_client: past it
        its own longest-idle connection is closed, and with none idle the
        new connection is; other addresses are not affected."""
        with Daemon(config("max_connections_per_client = 3"), {"_default": MARK}) as h:
            try:
                other = connect(h.port, "127.0.0.2")
            except OSError as e:
                if e.errno == errno.EADDRNOTAVAIL:
                    self.skipTest("127.0.0.2 is not a local address here")
                raise
            idle = [other]
            for _ in range(2):
                idle.append(connect(h.port, "127.0.0.2"))
                time.sleep(0.1)
            fourth = connect(h.port, "127.0.0.2")
            self.assertTrue(closed_soon(idle[0], 2), "its longest-idle one stayed")
            # Now all three busy: a fourth is refused.
            busy = [fourth] + idle[1:]
            for s in busy:
                s.sendall(b"POST /webhook HTTP/1.1\r\n")
            time.sleep(0.2)
            refused = connect(h.port, "127.0.0.2")
            self.assertTrue(closed_soon(refused, 2), "a fourth busy connection was taken")
            body, hdrs = delivery()
            self.assertEqual(post_json(h.port, body, headers=hdrs, timeout=5)[0], 200)
            for s in busy + [idle[0], refused]:
                s.close()
            self.assertIsNotNone(h.wait_log("connection refused", "max_connections_per_client"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
