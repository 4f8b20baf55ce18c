"""The admin listener (README "Admin listener"): /healthz, /metrics (checked by promtool and
by parsing), counters that move as deliveries happen, 404/405 as JSON, and
an exit with all its connections open."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (base_config, metric, parse_metrics, promtool_check,  # noqa: E402
                     raw_exchange, sample_body)
from harness import http_request as request  # noqa: E402
from harness import ops_hookd as Daemon  # noqa: E402

OK_HOOK = "#!/bin/sh\necho ok\n"
FAIL_HOOK = "#!/bin/sh\necho failing >&2\nexit 3\n"


def slow_hook(seconds, marker="started"):
    return "#!/bin/sh\ntouch '{tmp}/%s'\nsleep %s\n" % (marker, seconds)


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class AdminTest(unittest.TestCase):

    def assertValidMetrics(self, text):
        ok, out = promtool_check(text)
        self.assertTrue(ok, "promtool check metrics failed:\n%s\n---\n%s" % (out, text))
        self.assertEqual(out.strip(), "", "promtool lint findings:\n" + out)
        return parse_metrics(text)

    def test_healthz_metrics_and_errors(self):
        with Daemon(base_config()) as d:
            self.assertIsNotNone(d.admin_port, "the admin listener logged its address")
            self.assertNotEqual(d.admin_port, d.port)
            r = d.admin("GET", "/healthz")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["content-type"], "application/json")
            self.assertEqual(r.json, {"status": "ok"})
            r = d.admin("GET", "/healthz?verbose=1")
            self.assertEqual(r.status, 200, "a query string does not change the path")
            r = d.admin("GET", "/metrics")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
            self.assertTrue(r.raw.endswith(b"\n") and not r.raw.endswith(b"\n\n"))
            s = self.assertValidMetrics(r.text)
            self.assertEqual(metric(s, "hookd_build_info", version=self._version()), 1)
            self.assertEqual(metric(s, "hookd_hooks_running"), 0)
            self.assertEqual(metric(s, "hookd_draining"), 0)
            self.assertGreater(metric(s, "hookd_start_time_seconds"), time.time() - 600)
            for path in ("/metrics", "/healthz"):
                for method in ("POST", "PUT", "DELETE", "HEAD"):
                    r = d.admin(method, path)
                    self.assertEqual(r.status, 405, (method, path))
                    self.assertEqual(r.headers.get("allow"), "GET")
                    if method != "HEAD":
                        self.assertEqual(r.json["status"], "rejected")
            for path in ("/webhook", "/metrics/", "/healthzz", "/Metrics"):
                r = d.admin("GET", path)
                self.assertEqual(r.status, 404, path)
                self.assertEqual(r.headers["content-type"], "application/json")
                self.assertEqual(r.json["status"], "rejected")
            # A HEAD answer has no body: the next answer on the connection
            # is read intact (admin and webhook listener alike), but that
            # the webhook listener closes a connection whose request it
            # refused (README "Hardening and limits").
            for port, path in ((d.admin_port, "/metrics"), (d.port, "/webhook")):
                raw = raw_exchange(port, ("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n"
                                          "GET /nothing HTTP/1.1\r\nHost: x\r\n"
                                          "Connection: close\r\n\r\n" % path).encode())
                first, rest = raw.split(b"\r\n\r\n", 1)
                self.assertTrue(first.startswith(b"HTTP/1.1 405 "), raw)
                if port == d.port:
                    self.assertIn(b"\r\nConnection: close\r\n", first + b"\r\n", raw)
                    self.assertEqual(rest, b"", raw)
                else:
                    self.assertTrue(rest.startswith(b"HTTP/1.1 404 "), raw)
            # The webhook listener does not answer admin paths.
            r = request(d.port, "GET", "/metrics")
            self.assertEqual(r.status, 404)
            # The admin's HTTP layer gives its own errors as JSON too.
            raw = raw_exchange(d.admin_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            self.assertTrue(raw.startswith(b"HTTP/1.1 411 "), raw[:80])
            self.assertIn(b'"status":"rejected"', raw)
            self.assertEqual(d.stop(), 0)

    def _version(self):
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "meson.build")) as f:
            import re
            return re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)

    def test_admin_off_by_default(self):
        with Daemon(base_config(admin=False)) as d:
            self.assertIsNone(d.admin_port)
            self.assertNotIn("admin", d.log_text())
            self.assertEqual(d.stop(), 0)

    def test_counters_move(self):
        hooks = {"build:start": OK_HOOK, "build:failure": FAIL_HOOK,
                 "build:abort": "#!/bin/sh\nkill -KILL $$\n",
                 "build:slow": "#!/bin/sh\nsleep 5\n",
                 "build:broken": None}  # an empty directory: no hooks, ok
        cfg = base_config(extra="\n[event build:slow]\ntimeout = 300ms\n",
                          extra_server="kill_grace = 200ms\nmax_body = 2KiB\n")
        with Daemon(cfg, hooks=hooks) as d:
            before = self.assertValidMetrics(d.scrape())
            self.assertEqual(metric(before, "hookd_deliveries_total", endpoint="northflank",
                                    event="build:start", outcome="ok"), 0)
            self.assertEqual(d.deliver().status, 200)
            self.assertEqual(d.deliver().status, 200)
            dup = d.deliver(event_id="same-id")
            self.assertEqual(dup.status, 200)
            self.assertEqual(d.deliver(event_id="same-id").json["status"], "duplicate")
            self.assertEqual(d.deliver(sample_body("build:failure")).status, 500)
            self.assertEqual(d.deliver(sample_body("build:abort")).status, 500)
            self.assertEqual(d.deliver(sample_body("build:slow")).status, 504)
            self.assertEqual(d.deliver(sample_body("nothing:here")).json["status"], "unhandled")
            # A resend of a delivery that had no route: a duplicate with none.
            self.assertEqual(d.deliver(sample_body("nothing:here"), event_id="none-id").status, 200)
            self.assertEqual(d.deliver(sample_body("nothing:here"),
                                       event_id="none-id").json["status"], "duplicate")
            # Rejections, one of each kind the server decides.
            self.assertEqual(d.deliver(token="wrong").status, 401)
            self.assertEqual(d.deliver(token="wrong").status, 401)
            self.assertEqual(request(d.port, "GET", "/webhook").status, 405)
            self.assertEqual(request(d.port, "POST", "/nope", b"{}").status, 404)
            self.assertEqual(d.deliver(headers={"Content-Type": "text/plain"}).status, 415)
            self.assertEqual(d.deliver(body=b"[1,2]").status, 400)
            self.assertEqual(d.deliver(body=b"x" * 4096).status, 413)
            raw = raw_exchange(d.port, b"POST /webhook HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n")
            self.assertTrue(raw.startswith(b"HTTP/1.1 411 "), raw[:60])
            raw = raw_exchange(d.port, b"POST /webhook HTTP/1.1\r\nX-Big: " +
                               b"a" * 20000 + b"\r\n\r\n")
            self.assertTrue(raw.startswith(b"HTTP/1.1 431 "), raw[:60])

            s = self.assertValidMetrics(d.scrape())
            # Each delivery once, by the route that matched ("other": none,
            # or answered before routing). A duplicate counts under the
            # route of the event it resent, never under the event's own name.
            D = "hookd_deliveries_total"
            for event, outcome, n in (("build:start", "ok", 3), ("build:start", "duplicate", 1),
                                      ("other", "duplicate", 1),
                                      ("build:failure", "failed", 1),
                                      ("build:abort", "failed", 1), ("build:slow", "failed", 1),
                                      ("other", "unhandled", 2)):
                self.assertEqual(metric(s, D, endpoint="northflank", event=event,
                                        outcome=outcome), n, (event, outcome))
            self.assertEqual(sum(v for (n, _), v in s.items() if n == D), 10)
            self.assertFalse([k for k in s if k[0] == D and ("event", "nothing:here") in k[1]])
            A = "hookd_attempts_total"
            for event, outcome, n in (("build:start", "ok", 3), ("build:failure", "failed", 1),
                                      ("build:abort", "failed", 1), ("build:slow", "timeout", 1),
                                      ("other", "unhandled", 2)):
                self.assertEqual(metric(s, A, endpoint="northflank", event=event,
                                        outcome=outcome), n, (event, outcome))
            self.assertEqual(sum(v for (n, _), v in s.items() if n == A), 8, "no attempt for a duplicate")
            # The answers, as hookd_deliveries_total counted them before.
            P = "hookd_responses_total"
            self.assertEqual(metric(s, P, endpoint="northflank", status="ok", code="200"), 3)
            self.assertEqual(metric(s, P, endpoint="northflank", status="duplicate", code="200"), 2)
            self.assertEqual(metric(s, P, endpoint="northflank", status="failed", code="500"), 2)
            self.assertEqual(metric(s, P, endpoint="northflank", status="timeout", code="504"), 1)
            self.assertEqual(metric(s, P, endpoint="northflank", status="unhandled", code="200"), 2)
            R = "hookd_hook_runs_total"
            self.assertEqual(metric(s, R, hook="build:start", outcome="ok"), 3)
            self.assertEqual(metric(s, R, hook="build:failure", outcome="failed"), 1)
            self.assertEqual(metric(s, R, hook="build:abort", outcome="signal"), 1)
            self.assertEqual(metric(s, R, hook="build:slow", outcome="timeout"), 1)
            self.assertEqual(sum(v for (n, _), v in s.items() if n == R), 6)
            H = "hookd_hook_duration_seconds"
            self.assertEqual(metric(s, H + "_count"), 6)
            self.assertEqual(metric(s, H + "_bucket", le="+Inf"), 6)
            self.assertGreaterEqual(metric(s, H + "_sum"), 0.3, "the timed-out hook ran 300ms")
            self.assertLessEqual(metric(s, H + "_bucket", le="0.25"), 5)
            self.assertEqual(metric(s, H + "_bucket", le="1800"), 6)
            # Buckets are cumulative.
            les = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in s.items()
                          if n == H + "_bucket"), key=lambda x: x[0])
            self.assertEqual([v for _, v in les], sorted(v for _, v in les))
            J = "hookd_rejections_total"
            for code, reason, n in (("401", "unauthorized", 2), ("405", "method_not_allowed", 1),
                                    ("404", "not_found", 1), ("415", "unsupported_media_type", 1),
                                    ("400", "bad_request", 1), ("413", "body_too_large", 1),
                                    ("411", "length_required", 1), ("431", "headers_too_large", 1)):
                self.assertEqual(metric(s, J, code=code, reason=reason), n, code)
            self.assertEqual(d.stop(), 0)

    def test_gauges_overload_and_drain(self):
        """hooks running and deliveries queued while hooks run; 503 overload
        counted; /healthz 503 and hookd_draining 1 while SIGTERM drains."""
        cfg = base_config(extra_server="max_running = 1\nmax_queued = 1\n")
        hooks = {"build:start": "#!/bin/sh\ntouch \"{tmp}/run.$HOOK_ID\"\n"
                                # bounded: a test that fails leaves no hook behind
                                "i=0; while [ ! -e '{tmp}/go' ] && [ $i -lt 600 ]; do "
                                "sleep 0.05; i=$((i+1)); done\n"}
        with Daemon(cfg, hooks=hooks) as d:
            results = {}

            def send(i):
                results[i] = d.deliver(event_id="g-%d" % i)

            t1 = threading.Thread(target=send, args=(1,))
            t1.start()
            wait_for(lambda: os.path.exists(os.path.join(d.tmp, "run.g-1")), what="first hook")
            t2 = threading.Thread(target=send, args=(2,))
            t2.start()
            wait_for(lambda: metric(parse_metrics(d.scrape()), "hookd_deliveries_queued") == 1,
                     what="one delivery queued")
            s = self.assertValidMetrics(d.scrape())
            self.assertEqual(metric(s, "hookd_hooks_running"), 1)
            self.assertEqual(metric(s, "hookd_deliveries_running"), 1)
            P = "hookd_deliveries_pending"
            self.assertEqual(metric(s, P, state="running"), 1)
            self.assertEqual(metric(s, P, state="queued"), 1)
            self.assertEqual(metric(s, P, state="retry_wait"), 0)
            # max_queued = 1 is full: the third is turned away with 503.
            r = d.deliver(event_id="g-3")
            self.assertEqual(r.status, 503)
            s = parse_metrics(d.scrape())
            self.assertEqual(metric(s, "hookd_rejections_total", code="503", reason="overloaded"), 1)
            self.assertEqual(metric(s, "hookd_responses_total", endpoint="northflank",
                                    status="overloaded", code="503"), 1)
            self.assertEqual(sum(v for (n, _), v in s.items()
                                 if n == "hookd_deliveries_total"), 0, "none ended yet")

            # SIGTERM while two deliveries are in: healthz turns 503 at once,
            # /metrics keeps answering, and both deliveries still finish.
            self.assertEqual(d.admin("GET", "/healthz").status, 200)
            d.send_signal(signal.SIGTERM)
            wait_for(lambda: d.admin("GET", "/healthz").status == 503, what="healthz 503")
            r = d.admin("GET", "/healthz")
            self.assertEqual(r.json, {"status": "draining"})
            s = self.assertValidMetrics(d.scrape())
            self.assertEqual(metric(s, "hookd_draining"), 1)
            self.assertIsNone(d.proc.poll(), "hookd waits for the running hook")
            open(os.path.join(d.tmp, "go"), "w").close()
            t1.join(10)
            t2.join(10)
            self.assertEqual(results[1].status, 200)
            self.assertEqual(results[2].status, 200)
            self.assertEqual(d.stop(), 0)

    def test_deliveries_by_endpoint(self):
        # Label escaping itself is tested in tests/unit/test_metrics.c (an
        # endpoint name cannot hold a quote); here: one series an endpoint.
        cfg = base_config(extra="\n[endpoint eu.prod:b-1]\npath = /other\nscheme = none\n")
        with Daemon(cfg, hooks={"build:start": OK_HOOK}) as d:
            self.assertEqual(d.deliver().status, 200)
            self.assertEqual(d.deliver(path="/other").status, 200)
            self.assertEqual(d.deliver(path="/other").status, 200)
            s = self.assertValidMetrics(d.scrape())
            D = "hookd_deliveries_total"
            self.assertEqual(metric(s, D, endpoint="northflank", event="build:start",
                                    outcome="ok"), 1)
            self.assertEqual(metric(s, D, endpoint="eu.prod:b-1", event="build:start",
                                    outcome="ok"), 2)
            self.assertEqual(d.stop(), 0)

    def test_retried_delivery_counted_once(self):
        """An async delivery failing twice (exit 75) then ok: three attempts,
        one delivery ended ok; waiting for its retry it is pending
        retry_wait. A delivery its match skips and one a hook skips count as
        skipped, each once."""
        hooks = {"build:start": "#!/bin/sh\n[ \"$HOOK_ATTEMPT\" -ge 3 ] || exit 75\n",
                 "deploy": "#!/bin/sh\nexit 78\n"}
        cfg = base_config(extra_server="state_dir = state\n",
                          extra="\n[event build]\nmode = async\nretry_backoff = 700ms\n"
                          "match = data.build.branch!=skip-me\n\n[status]\n78 = skip\n")
        with Daemon(cfg, hooks=hooks) as d:
            self.assertEqual(d.deliver().status, 202)
            P = "hookd_deliveries_pending"
            wait_for(lambda: metric(parse_metrics(d.scrape()), P, state="retry_wait") == 1,
                     what="a delivery waiting for its retry")
            D, A = "hookd_deliveries_total", "hookd_attempts_total"
            wait_for(lambda: metric(parse_metrics(d.scrape()), D, endpoint="northflank",
                                    event="build:start", outcome="ok") == 1,
                     timeout=15, what="the delivery to end ok")
            s = self.assertValidMetrics(d.scrape())
            lbl = dict(endpoint="northflank", event="build:start")
            self.assertEqual(metric(s, A, outcome="failed", **lbl), 2)
            self.assertEqual(metric(s, A, outcome="ok", **lbl), 1)
            self.assertEqual(metric(s, D, outcome="failed", **lbl), 0, "retried, not failed")
            self.assertEqual(metric(s, "hookd_responses_total", endpoint="northflank",
                                    status="accepted", code="202"), 1)
            for state in ("queued", "running", "retry_wait"):
                self.assertEqual(metric(s, P, state=state), 0, state)
            body = json.loads(sample_body("build:start"))
            body["data"]["build"]["branch"] = "skip-me"
            self.assertEqual(d.deliver(json.dumps(body).encode()).status, 202)
            self.assertEqual(d.deliver(sample_body("deploy")).json["status"], "skipped")
            wait_for(lambda: metric(parse_metrics(d.scrape()), D, outcome="skipped", **lbl) == 1,
                     what="the async delivery skipped")
            s = self.assertValidMetrics(d.scrape())
            self.assertEqual(metric(s, D, endpoint="northflank", event="deploy",
                                    outcome="skipped"), 1)
            self.assertEqual(metric(s, "hookd_hook_runs_total", hook="deploy",
                                    outcome="skipped"), 1)
            R = "hookd_hook_runs_total"
            self.assertEqual(metric(s, R, hook="build:start", outcome="ok"), 1)
            self.assertEqual(metric(s, R, hook="build:start", outcome="failed"), 2,
                             "not run for the skipped one")
            self.assertEqual(d.stop(), 0)

    def test_resend_and_replay_count_the_delivery_once(self):
        """hookd_deliveries_total counts each delivery once, when it first
        ends: a sender's resend of a failed sync delivery and a replay run
        it again, which hookd_attempts_total counts (and
        hookd_responses_total the resend's answer)."""
        hooks = {"build:start": "#!/bin/sh\n[ -e '{tmp}/ran' ] && exit 0\n"
                                "touch '{tmp}/ran'\nexit 3\n"}
        cfg = base_config(extra_server="state_dir = state\n")
        with Daemon(cfg, hooks=hooks) as d:
            self.assertEqual(d.deliver(event_id="once-1").status, 500)
            self.assertEqual(d.deliver(event_id="once-1").status, 200, "the resend")
            self.assertEqual(d.deliver(event_id="once-1").json["status"], "duplicate")
            D, A = "hookd_deliveries_total", "hookd_attempts_total"
            lbl = dict(endpoint="northflank", event="build:start")
            s = self.assertValidMetrics(d.scrape())
            self.assertEqual(metric(s, D, outcome="failed", **lbl), 1)
            self.assertEqual(metric(s, D, outcome="ok", **lbl), 0, "counted again at its resend")
            self.assertEqual(metric(s, D, outcome="duplicate", **lbl), 1)
            self.assertEqual(metric(s, A, outcome="failed", **lbl), 1)
            self.assertEqual(metric(s, A, outcome="ok", **lbl), 1)
            self.assertEqual(metric(s, "hookd_responses_total", endpoint="northflank",
                                    status="ok", code="200"), 1)
            p = d.cli("replay", "once-1")
            self.assertEqual(p.returncode, 0, p)
            wait_for(lambda: metric(parse_metrics(d.scrape()), A, outcome="ok", **lbl) == 2,
                     what="the replay to run")
            s = self.assertValidMetrics(d.scrape())
            self.assertEqual(sum(v for (n, _), v in s.items() if n == D), 2,
                             "a replay counts as an attempt only")
            self.assertEqual(d.stop(), 0)

    def test_sample_alerts(self):
        """The README's sample alerts (examples/prometheus/hookd-alerts.yml)
        pass their promtool unit tests: retries that end ok alert nobody."""
        tool = harness.find_promtool()
        self.assertIsNotNone(tool, "promtool not found")
        data = os.path.join(harness.SOURCE, "tests", "data")
        p = subprocess.run([tool, "test", "rules", "hookd-alerts.test.yml"], cwd=data,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("SUCCESS", p.stdout)

    def test_reload_counted(self):
        with Daemon(base_config()) as d:
            d.send_signal(signal.SIGHUP)
            d.wait_line("config reloaded")
            with open(d.config_path, "a") as f:
                f.write("\n[server]\nbogus_key = 1\n")
            n = len(d.lines)
            d.send_signal(signal.SIGHUP)
            d.wait_line("reload failed", start=n)
            s = self.assertValidMetrics(d.scrape())
            self.assertEqual(metric(s, "hookd_config_reloads_total", result="ok"), 1)
            self.assertEqual(metric(s, "hookd_config_reloads_total", result="failed"), 1)
            self.assertEqual(d.stop(), 0)

    def test_exit_with_admin_at_max_connections(self):
        """The admin listener pauses at its 64 connections. Exiting with
        all of them open frees them one by one; the first one freed must
        not re-enable a listener that was freed already."""
        config = harness.NF_CONFIG + "\n[admin]\nlisten = 127.0.0.1:0\n"
        with Daemon(config) as h:
            aport = h.admin_port
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


if __name__ == "__main__":
    harness.main()
