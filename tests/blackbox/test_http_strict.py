"""Black-box tests of hookd's HTTP/1.1 framing (issue 16, points 5 and 7):
only CRLF ends a line of a request head, so a bare LF or CR smuggles no
header past a proxy that reads it otherwise (400, connection closed,
nothing runs); and every request read is answered, pipelined and followed
by a half-close included.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_http_strict.py [-k NAME]
"""

import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Hookd, HookdTestCase, main, marker_hook  # noqa: E402

CONFIG = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 5s
kill_grace = 1s

[endpoint t]
path = /webhook
scheme = none

[admin]
listen = 127.0.0.1:0
"""

# Every event runs a hook that leaves its name in {tmp}/ran.
HOOKS = {"_default": marker_hook("_default"), "smuggled": marker_hook("smuggled")}

PIPELINED = 2000
PIPELINE_DEADLINE = 60.0  # seconds for all answers (about 1 s here)

STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")


def split_answers(data, consumed=None):
    """The answers in data, in order, as (status, headers bytes, body); the
    bytes of an answer cut short are left out. consumed: a list that gets
    the offset past the last whole answer."""
    out, at = [], 0
    while True:
        m = STATUS_LINE.match(data, at)
        end = data.find(b"\r\n\r\n", at)
        if not m or end < 0:
            if consumed is not None:
                consumed.append(at)
            return out
        head = data[m.end():end]
        n = re.search(rb"(?im)^content-length: *(\d+)\r?$", head)
        length = int(n.group(1)) if n else 0
        if end + 4 + length > len(data):
            return out
        out.append((int(m.group(1)), head, data[end + 4:end + 4 + length]))
        at = end + 4 + length


def answers_end(data):
    """The offset just past the last whole answer in data."""
    consumed = []
    split_answers(data, consumed)
    return consumed[0]


def exchange(port, data, half_close=False, timeout=10.0):
    """Sends data on a new connection (from a thread, so that answers are
    read while requests are still going out), half-closes when asked, and
    reads until hookd closes. Returns (bytes read, whether hookd closed the
    connection within timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = threading.Event()

    def send():
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # hookd closed early: what it answered tells
        sent.set()

    t = threading.Thread(target=send, daemon=True)
    t.start()
    got, closed = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
    finally:
        t.join(timeout)
        s.close()
    return got, closed


class BareLineEnds(HookdTestCase):
    """A bare LF or CR in a request head is a 400 and the connection closes."""

    BODY = b'{"event":"smuggled"}   '  # 23 bytes: what the smuggled length covers

    def smuggle(self, h, sep):
        """A request whose Content-Length hides behind `sep` in the line before
        it, followed by its body: hookd must not read the length."""
        assert len(self.BODY) == 23
        data = (b"POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                b"Dummy: x" + sep + b"Content-Length: 23\r\n\r\n" + self.BODY)
        return exchange(h.port, data)

    def assert_refused(self, h, got, closed, what):
        answers = split_answers(got)
        self.assertEqual([a[0] for a in answers], [400], "%s: %r" % (what, got))
        body = json.loads(answers[0][2])
        self.assertEqual(body.get("status"), "rejected", what)
        self.assertTrue(closed, "%s: hookd kept the connection open" % what)

    def test_bare_lf_smuggled_content_length(self):
        with Hookd(CONFIG, HOOKS) as h:
            got, closed = self.smuggle(h, b"\n")
            self.assert_refused(h, got, closed, "bare LF")
            self.assertIn(b"bare LF", got)
            # The control: with CRLF the same bytes are a delivery that runs.
            got, _ = self.smuggle(h, b"\r\n")
            self.assertEqual([a[0] for a in split_answers(got)], [200], got)
            self.assertEqual(h.ran(), ["smuggled"])

    def test_bare_cr_smuggled_content_length(self):
        with Hookd(CONFIG, HOOKS) as h:
            got, closed = self.smuggle(h, b"\r")
            self.assert_refused(h, got, closed, "bare CR")
            self.assertIn(b"bare CR", got)
            time.sleep(0.3)
            self.assertNothingRan(h)

    def test_bare_line_ends_in_every_place(self):
        """Request line, a header line, the head's end; as the only request
        on a connection or the second of two (the first is answered)."""
        heads = [
            b"POST /webhook HTTP/1.1\nHost: a\r\n\r\n",
            b"POST /webhook HTTP/1.1\rHost: a\r\n\r\n",
            b"POST /webhook\r HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\nPOST /webhook HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST /webhook HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
            b"POST /webhook HTTP/1.1\r\nHost\r: a\r\n\r\n",
            b"POST /webhook HTTP/1.1\r\nHost: a\r\n\n",
            b"POST /webhook HTTP/1.1\r\nHost: a\n\n",
            b"POST /webhook HTTP/1.1\r\nHost: a\n\r\n",
            b"POST /webhook HTTP/1.1\r\nHost: a\r\n\r\r\n",
        ]
        first = (b"POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 17\r\n\r\n{\"event\":\"first\"}")
        with Hookd(CONFIG, HOOKS) as h:
            for head in heads:
                got, closed = exchange(h.port, head + b'{"event":"x"}')
                self.assert_refused(h, got, closed, repr(head))
                got, closed = exchange(h.port, first + head)
                self.assertEqual([a[0] for a in split_answers(got)], [200, 400],
                                 "%r: %r" % (head, got))
                self.assertTrue(closed, repr(head))
            self.assertEqual(h.ran(), ["_default"] * len(heads))


class Pipelining(HookdTestCase):
    """Every request read is answered: pipelined requests followed by a
    half-close get as many answers as there were requests."""

    def pipeline(self, port, one, n=PIPELINED):
        started = time.monotonic()
        got, closed = exchange(port, one * n, half_close=True, timeout=PIPELINE_DEADLINE)
        took = time.monotonic() - started
        answers = split_answers(got)
        self.assertTrue(closed, "hookd did not close after the last answer (%.1f s)" % took)
        self.assertEqual(len(answers), n, "%d answers to %d requests" % (len(answers), n))
        self.assertEqual(answers_end(got), len(got), "bytes after the last whole answer")
        return answers

    def test_healthz_pipelined_then_half_close(self):
        with Hookd(CONFIG) as h:
            h.wait_log("admin listening")
            answers = self.pipeline(h.admin_port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertEqual({a[0] for a in answers}, {200})

    def test_healthz_pipelined_without_half_close(self):
        with Hookd(CONFIG) as h:
            h.wait_log("admin listening")
            one = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
            last = b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            got, closed = exchange(h.admin_port, one * (PIPELINED - 1) + last,
                                   timeout=PIPELINE_DEADLINE)
            self.assertTrue(closed)
            self.assertEqual(len(split_answers(got)), PIPELINED)

    def test_deliveries_pipelined_then_half_close(self):
        # An event no hook takes: a whole delivery (parsed, identified,
        # dispatched) that runs nothing, 200 "unhandled".
        with Hookd(CONFIG) as h:
            body = b'{"event":"nobody"}'
            one = (b"POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            answers = self.pipeline(h.port, one)
            self.assertEqual({a[0] for a in answers}, {200})
            self.assertEqual(json.loads(answers[-1][2]).get("status"), "unhandled")


if __name__ == "__main__":
    main()
