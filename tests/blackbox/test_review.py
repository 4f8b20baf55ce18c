"""Black-box tests from a review of the daemon's core: event-loop lifetime
bugs (a cascade of deliveries that finish at once, answers still being
written at SIGTERM) and README "Command line" and "HTTP answers" corners no other file covers.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_review.py [-k NAME]
"""

import json
import os
import re
import resource
import signal
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NF_CONFIG, NF_PREFIX, NF_TOKEN, Hookd, new_id, sample_body, sh  # noqa: E402


def cfg(extra_server="", extra=""):
    """NF_CONFIG with extra [server] lines and extra sections."""
    return NF_CONFIG.replace("kill_grace = 1s\n", "kill_grace = 1s\n" + extra_server) + extra


def nf_request(event_id, body=None, path="/webhook"):
    """The bytes of one Northflank delivery (Connection: close)."""
    body = body if body is not None else sample_body()
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "%sToken: %s\r\n%sEvent-Id: %s\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n"
            % (path, NF_PREFIX, NF_TOKEN, NF_PREFIX, event_id, len(body)))
    return head.encode() + body


def read_all(s, timeout=15.0):
    """Everything s sends until EOF (or timeout)."""
    s.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        got += chunk
    return got


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def admin_port(h):
    line = h.wait_log("msg=\"admin listening\"", timeout=5) or \
        h.wait_log("admin listening", timeout=5)
    m = re.search(r'addr="?[0-9.]+:(\d+)', line or "")
    if not m:
        raise AssertionError("no admin listening line")
    return int(m.group(1))


def metric(h, port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


class Base(harness.HookdTestCase):

    def daemon(self, config=NF_CONFIG, hooks=None, **kw):
        return Hookd(config, hooks, secrets=[NF_TOKEN], **kw)


# A hook that holds its slot until {tmp}/go exists (bounded: 20 s).
HOLD = sh("echo x > '{tmp}/holding'\n"
          "i=0; while [ ! -e '{tmp}/go' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done")


class TestLifetime(Base):

    def test_many_queued_deliveries_failing_to_spawn(self):
        """A slot freed while many deliveries wait for it: each next one
        fails to spawn at once (bad interpreter) and so frees its slot at
        once. That cascade must not nest one call frame a delivery (a
        stack overflow with a long queue); every delivery is answered.
        hookd runs with a small stack so a queue of 150 stands for a
        max_queued of thousands at the default 8 MiB."""
        n = 150
        config = cfg("max_running = 1\nmax_queued = 1000\n",
                     "\n[admin]\nlisten = 127.0.0.1:0\n[event hold]\ntimeout = 30s\n")
        hooks = {"hold": HOLD, "build:start": "#!/nonexistent/interpreter\n"}
        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        small = 256 * 1024
        resource.setrlimit(resource.RLIMIT_STACK, (small if hard == resource.RLIM_INFINITY
                                                   or hard >= small else hard, hard))
        try:
            h = self.daemon(config, hooks)
        finally:
            resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))
        with h:
            aport = admin_port(h)
            held = json.loads(sample_body())
            held["event"] = "hold"
            first = socket.create_connection(("127.0.0.1", h.port), timeout=15)
            first.sendall(nf_request(new_id(), json.dumps(held).encode()))
            self.assertTrue(h.wait_file("holding", timeout=10), "the holding hook did not start")
            socks = []
            try:
                for _ in range(n):
                    s = socket.create_connection(("127.0.0.1", h.port), timeout=15)
                    s.sendall(nf_request(new_id()))
                    socks.append(s)
                wait_for(lambda: metric(h, aport, "hookd_deliveries_queued") == n,
                         what="%d deliveries queued" % n)
                open(h.path("go"), "w").close()
                self.assertIn(b" 200 ", read_all(first).split(b"\r\n", 1)[0])
                for s in socks:
                    r = harness.parse_raw_response(read_all(s))
                    self.assertIsNotNone(r, "no answer: hookd died?")
                    body = self.assertAnswer(r, 500)
                    self.assertIn("exec failed", body["hooks"][0]["error"])
            finally:
                first.close()
                for s in socks:
                    s.close()

    def test_sigterm_answer_written_whole_before_exit(self):
        """SIGTERM while a delivery runs: it finishes, and its sender gets
        the whole answer even when that answer is larger than the socket
        buffers and the sender reads it slowly; hookd exits after that."""
        n = 250
        # Each hook's output tail is 4 KiB of control bytes: about 24 KiB of
        # JSON escapes each in the answer, about 1 MiB in all.
        noisy = sh("head -c 4096 /dev/zero | tr '\\0' '\\1'")
        hooks = {"build:start/%02d" % i: noisy for i in range(n)}
        hooks["build:start/00"] = sh("echo x > '{tmp}/started'\n"
                                     "i=0; while [ ! -e '{tmp}/go' ] && [ $i -lt 200 ]; "
                                     "do sleep 0.05; i=$((i+1)); done")
        with self.daemon(cfg("include_output = yes\n", "[event build:start]\ntimeout = 20s\n"),
                         hooks) as h:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(15)
            try:
                s.connect(("127.0.0.1", h.port))
                s.sendall(nf_request(new_id()))
                self.assertTrue(h.wait_file("started", timeout=10), "the first hook did not start")
                h.send_signal(signal.SIGTERM)
                self.assertTrue(h.wait_log("SIGTERM received", timeout=5))
                open(h.path("go"), "w").close()
                self.assertTrue(h.wait_log("msg=delivery", timeout=20), "no delivery line")
                time.sleep(0.5)  # the sender is slow to read
                r = harness.parse_raw_response(read_all(s, timeout=20))
            finally:
                s.close()
            self.assertIsNotNone(r, "no answer")
            length = int(r.headers.get("content-length", "-1"))
            self.assertEqual(len(r.raw), length, "the answer was cut short")
            body = self.assertAnswer(r, 200)
            self.assertEqual(len(body["hooks"]), n)
            self.assertEqual(h.wait_exit(), 0)

    def test_async_delivery_with_unreadable_hooks_dir_is_not_unhandled(self):
        """An async delivery reads its route when it runs. A hooks dir that
        cannot be read then is a failure (as it is for a sync delivery:
        500 "cannot read hooks dir"), never "no route": "unhandled" would
        record it as succeeded and it could never be retried or replayed."""
        config = cfg("state_dir = {tmp}/state\n") + "mode = async\n"
        with self.daemon(config, {"build:start": sh("echo ran >> '{tmp}/ran'")}) as h:
            os.rename(h.hooks, h.hooks + ".away")
            r = h.northflank()
            self.assertEqual(self.assertAnswer(r, 202).get("status"), "accepted")
            line = h.wait_log("msg=delivery", "id=" + h.last_id, "http=", "mode=async",
                              regex=r"status=(?!accepted)", timeout=10)
            self.assertIsNotNone(line, "the async run was not logged")
            self.assertIn("status=failed", line)
            self.assertIn("http=500", line)
            self.assertIn("cannot read hooks dir", line)
            os.rename(h.hooks + ".away", h.hooks)
            # Not a duplicate: it failed, so a resend runs it again.
            r = h.northflank(event_id=h.last_id)
            self.assertEqual(self.assertAnswer(r, 202).get("status"), "accepted")
            self.assertTrue(h.wait_file("ran", timeout=10), "the resend did not run")

    def test_exit_with_admin_at_max_connections(self):
        """The admin listener pauses at its 64 connections. Exiting with
        all of them open frees them one by one; the first one freed must
        not re-enable a listener that was freed already."""
        config = cfg(extra="\n[admin]\nlisten = 127.0.0.1:0\n")
        with self.daemon(config) as h:
            aport = admin_port(h)
            socks = []
            try:
                for _ in range(64):
                    socks.append(socket.create_connection(("127.0.0.1", aport), timeout=5))
                time.sleep(0.5)  # every one accepted: the 64th pauses the listener
                h.send_signal(signal.SIGTERM)
                self.assertEqual(h.wait_exit(), 0, "\n".join(h.logs()[-30:]))
                self.assertEqual(harness.sanitizer_lines(h.log_text()), [])
            finally:
                for s in socks:
                    s.close()


# --------------------------------------------------------------------------
# README "HTTP answers": the answer table's order, where two rows apply at once

MARK = {"_default": sh("echo _default >> '{tmp}/ran'"),
        "build:start": sh("echo build:start >> '{tmp}/ran'")}


class TestAnswerOrder(Base):

    def test_404_before_405(self):
        with self.daemon(hooks=MARK) as h:
            for method in ("GET", "PUT", "DELETE"):
                with self.subTest(method=method):
                    r = h.request(method, "/nope", b"{}" if method == "PUT" else None)
                    self.assertAnswer(r, 404)
                    self.assertIsNone(r.header("Allow"))
            self.assertNothingRan(h)

    def test_head_is_405_without_a_body(self):
        with self.daemon(hooks=MARK) as h:
            got, err = h.raw(b"HEAD /webhook HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
            head, _, rest = got.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 405 "), got)
            self.assertIn(b"\r\nAllow: POST", head)
            self.assertIn(b"application/json", head)
            self.assertEqual(rest, b"", "a HEAD answer carries no body")
            self.assertNothingRan(h)

    def test_405_before_403_before_401(self):
        config = NF_CONFIG + "allow_from = 10.0.0.0/8\n"
        with self.daemon(config, MARK) as h:
            r = h.request("GET", "/webhook")
            self.assertAnswer(r, 405)
            self.assertEqual(r.header("Allow"), "POST")
            r = h.northflank(token="wrong")
            self.assertAnswer(r, 403)
            r = h.northflank()
            self.assertAnswer(r, 403)
            self.assertNothingRan(h)

    def test_401_before_415_and_400(self):
        """Credentials are checked before the media type and the body."""
        with self.daemon(hooks=MARK) as h:
            cases = [("text/plain", b"{}"), ("application/json", b"not json"),
                     ("application/json", b"[1]"), ("text/plain", b"not json"),
                     ("application/x-www-form-urlencoded", b"payload=%7B%7D")]
            for ct, body in cases:
                with self.subTest(ct=ct, body=body):
                    r = h.northflank(body=body, token="wrong", content_type=ct,
                                     event_type=None)
                    b = self.assertAnswer(r, 401)
                    self.assertEqual(b.get("status"), "rejected")
                    r = h.northflank(body=body, token=None, content_type=ct,
                                     event_type=None)
                    self.assertAnswer(r, 401)
            self.assertNothingRan(h)

    def test_415_before_400(self):
        with self.daemon(hooks=MARK) as h:
            for ct in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
                       "application/jsonx", "text/json"):
                with self.subTest(ct=ct):
                    r = h.northflank(body=b"not json", content_type=ct, event_type=None)
                    self.assertAnswer(r, 415)
            self.assertNothingRan(h)

    def test_413_before_401(self):
        with self.daemon(cfg("max_body = 1KiB\n"), MARK) as h:
            r = h.northflank(body=b"{" + b" " * 2048 + b"}", token="wrong", event_type=None)
            self.assertAnswer(r, 413)
            self.assertNothingRan(h)

    def test_400_before_duplicate(self):
        """A resend of a delivery that succeeded, with a body that is not
        an event object: 400, not "duplicate"."""
        with self.daemon(hooks=MARK) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 200)
            r = h.northflank(body=b"[]", event_id=eid, event_type=None)
            self.assertAnswer(r, 400)
            r = h.northflank(event_id=eid)
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "duplicate")
            self.assertEqual(h.ran(), ["build:start"])

    def test_unhandled_answer_says_why(self):
        """README "HTTP answers": "error" holds a short reason when status is not ok; an
        async delivery with no route already logs "no hook for this event"."""
        with self.daemon(hooks={"other": MARK["build:start"]}) as h:
            b = self.assertAnswer(h.northflank(event="billing:paid"), 200)
            self.assertEqual(b.get("status"), "unhandled")
            self.assertEqual(b.get("error"), "no hook for this event")
            line = h.wait_log("msg=delivery", "status=unhandled")
            self.assertIn('error="no hook for this event"', line)

    def test_503_overload_is_not_an_attempt(self):
        """A delivery turned away with 503 (max_queued) is not recorded:
        its resend runs (it is neither a duplicate nor still pending)."""
        config = cfg("max_running = 1\nmax_queued = 0\n", "[event hold]\ntimeout = 30s\n")
        with self.daemon(config, {"hold": HOLD, "build:start": MARK["build:start"]}) as h:
            held = json.loads(sample_body())
            held["event"] = "hold"
            first = socket.create_connection(("127.0.0.1", h.port), timeout=15)
            try:
                first.sendall(nf_request(new_id(), json.dumps(held).encode()))
                self.assertTrue(h.wait_file("holding", timeout=10))
                eid = new_id()
                r = h.northflank(event_id=eid)
                self.assertEqual(self.assertAnswer(r, 503).get("status"), "overloaded")
                self.assertTrue(r.header("Retry-After"))
                open(h.path("go"), "w").close()
                read_all(first)
            finally:
                first.close()
            r = h.northflank(event_id=eid)
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "ok")
            self.assertEqual(h.ran(), ["build:start"])


# --------------------------------------------------------------------------
# README "Command line"

TWO_ENDPOINTS = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 1s
kill_grace = 200ms

[endpoint first]
path = /first
scheme = none

[endpoint second]
path = /second
scheme = none
hooks_dir = {tmp}/second.d
"""

DUMP = sh("echo \"$HOOK_ENDPOINT $HOOK_HOOK\" >> '{tmp}/ran'")


class TestCommandLine(Base):

    def setUp(self):
        self.h = Hookd(TWO_ENDPOINTS, {"build:start": DUMP}, start=False)
        self.h.write_hook("build:start", DUMP, hooks_dir=self.h.path("second.d"))
        self.h.write_hook("slow", sh("sleep 5"), hooks_dir=self.h.path("second.d"))
        self.h.write_hook("three", sh("exit 3"))
        self.payload = self.h.write_file("p.json", json.dumps({"event": "x", "n": 1}))

    def tearDown(self):
        self.h.cleanup()

    def cli(self, *args, config=True, **kw):
        return harness.run_cli(list(args), config=self.h.config_path if config else None, **kw)

    def test_config_option_forms_and_env_default(self):
        for args, env in ((["-c", self.h.config_path, "check"], None),
                          (["--config", self.h.config_path, "check"], None),
                          (["--config=" + self.h.config_path, "check"], None),
                          (["check", "-c", self.h.config_path], None),
                          (["check"], {"HOOKD_CONFIG": self.h.config_path})):
            with self.subTest(args=args, env=env):
                p = harness.run_cli(args, env=env)
                self.assertEqual(p.returncode, 0, p)
                self.assertIn(b"/second", p.stdout)
        # -c wins over $HOOKD_CONFIG.
        p = harness.run_cli(["-c", self.h.config_path, "check"],
                            env={"HOOKD_CONFIG": self.h.path("missing.ini")})
        self.assertEqual(p.returncode, 0, p)
        p = harness.run_cli(["check"], env={"HOOKD_CONFIG": self.h.path("missing.ini")})
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b"missing.ini", p.stderr)
        p = harness.run_cli(["check", "-c"])
        self.assertEqual(p.returncode, 2, p)

    def test_run_and_env_endpoint_option(self):
        p = self.cli("run", "build:start", self.payload)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout)["endpoint"], "first")
        p = self.cli("run", "--endpoint", "second", "build:start", self.payload)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout)["endpoint"], "second")
        self.assertEqual(self.h.ran(), ["first", "build:start", "second", "build:start"])
        p = self.cli("env", "build:start", self.payload, "--endpoint", "second")
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(b"HOOK_ENDPOINT=second\n", p.stdout)
        self.assertIn(b"HOOK_REMOTE_ADDR=\n", p.stdout)
        self.assertIn(b"HOOK_N=1\n", p.stdout)
        self.assertIn(b"HOOK_EVENT=build:start\n", p.stdout, "EVENT overrides the payload's")
        self.assertNotIn(b"HOOK_INTEGRATION_ID", p.stdout, "no sender headers")
        for cmd in ("run", "env"):
            with self.subTest(cmd=cmd):
                p = self.cli(cmd, "--endpoint", "third", "build:start", self.payload)
                self.assertEqual(p.returncode, 2, p)
                self.assertTrue(p.stderr.strip())
        self.assertEqual(len(self.h.ran()), 4)

    def test_run_exit_follows_the_mapped_status(self):
        # No hook: 200 unhandled, exit 0.
        p = self.cli("run", "nothing:here", self.payload)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout)["status"], "unhandled")
        # Exit 3 with the default map: 500, exit 1.
        p = self.cli("run", "three", self.payload)
        self.assertEqual(p.returncode, 1, p)
        self.assertEqual(json.loads(p.stdout)["status"], "failed")
        # The same exit mapped to 2xx: exit 0.
        self.h.write_config(TWO_ENDPOINTS + "\n[status]\n3 = 202\n")
        p = self.cli("run", "three", self.payload)
        self.assertEqual(p.returncode, 0, p)
        # The time limit: 504, exit 1.
        p = self.cli("run", "--endpoint", "second", "slow", self.payload, timeout=20)
        self.assertEqual(p.returncode, 1, p)
        b = json.loads(p.stdout)
        self.assertEqual(b["status"], "timeout")
        self.assertIsNone(b["hooks"][0]["exit"])
        self.assertIn("timed out after 1s", b["hooks"][0]["error"])

    def test_run_payload_errors_exit_2(self):
        big = self.h.write_file("big.json", json.dumps({"event": "x", "pad": "x" * (1 << 20)}))
        for args in (("run", "build:start", big), ("run", "build:start", self.h.path("none.json")),
                     ("env", "build:start", self.h.path("none.json")),
                     ("run", "build:start", self.payload, "extra")):
            with self.subTest(args=args):
                p = self.cli(*args)
                self.assertEqual(p.returncode, 2, p)
                self.assertTrue(p.stderr.strip())
        self.assertEqual(self.h.ran(), [])

    def test_command_arguments_counted(self):
        for args in (("check", "x"), ("serve", "x"), ("events", "x"), ("show",),
                     ("show", "a", "b"), ("replay",), ("replay", "a", "b")):
            with self.subTest(args=args):
                p = self.cli(*args, timeout=5)
                self.assertEqual(p.returncode, 2, p)
                self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1, p)


if __name__ == "__main__":
    harness.main()
